//! Prompts, end to end: versions that never change with a current pointer, two people
//! saving on the same version (one wins, the other is told the current one), a content
//! change made through the records routes kept as a version, diffs, render errors per
//! variable, and test runs: rendered only without a provider, sent to a local endpoint
//! that speaks the OpenAI chat-completions shape with one, the key kept encrypted.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};

use crate::harness::{Backend, TestApp, assert_error, spawn_app, spawn_app_with, token};

crate::on_every_backend!(
    two_people_saving_one_version_get_one_success_and_one_conflict,
    test_runs_render_and_call_the_workspace_provider,
);

/// A local endpoint in the OpenAI chat-completions shape: it answers the one user
/// message in upper case with token counts, keeps every request, and refuses any key
/// but `sk-good-…` with 401 and an OpenAI-style error.
#[derive(Clone)]
struct ChatEndpoint {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl ChatEndpoint {
    async fn start() -> Self {
        type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;
        async fn complete(
            State(seen): State<Seen>,
            headers: HeaderMap,
            Json(body): Json<Value>,
        ) -> (StatusCode, Json<Value>) {
            seen.lock().unwrap().push((headers.clone(), body.clone()));
            let key = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !key.starts_with("Bearer sk-good-") {
                let error =
                    json!({ "error": { "message": "Incorrect API key provided", "type": "invalid_request_error" } });
                return (StatusCode::UNAUTHORIZED, Json(error));
            }
            let asked = body["messages"][0]["content"].as_str().unwrap_or_default();
            let words = asked.split_whitespace().count() as i64;
            let answer = json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": asked.to_uppercase() }, "finish_reason": "stop" }],
                "usage": { "prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words }
            });
            (StatusCode::OK, Json(answer))
        }
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new().route("/v1/chat/completions", post(complete)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        ChatEndpoint { addr, seen }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A user and a prompt of theirs made through the records routes; its id.
async fn with_prompt(app: &TestApp, email: &str) -> (String, String) {
    let access = token(&app.register(email).await, "access_token");
    let prompt = json!({
        "name": "Describe a model",
        "category": "docs",
        "type": "llm",
        "content": "Describe {{ model }}.\nKeep it short.\n",
        "variables": ["model", { "name": "tone", "default": "plain" }]
    });
    let (status, made) = app.post_with_token("/api/v1/prompts", &access, prompt).await;
    assert_eq!(status, 201, "{made}");
    (access, made["record"]["id"].as_str().unwrap().to_string())
}

fn fields(error: &Value) -> Vec<String> {
    error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap().to_string()).collect()
}

async fn two_people_saving_one_version_get_one_success_and_one_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, id) = with_prompt(&app, "editor@example.com").await;

    // Made through the records routes, the prompt still has its version 1.
    let (status, versions) = app.get_with_token(&format!("/api/v1/prompts/{id}/versions"), &access).await;
    assert_eq!(status, 200, "{versions}");
    let listed = versions["versions"].as_array().unwrap();
    assert_eq!((listed.len(), listed[0]["version"].as_i64()), (1, Some(1)), "{versions}");
    assert_eq!(listed[0]["content"], "Describe {{ model }}.\nKeep it short.\n");

    // Two people opened version 1 and both save.
    let edit = |content: &str, note: &str| json!({ "content": content, "variables": [{ "name": "model", "required": true }], "change_note": note, "base_version": 1 });
    let path = format!("/api/v1/prompts/{id}/versions");
    let (first, second) = tokio::join!(
        app.post_with_token(&path, &access, edit("Describe {{ model }} in detail.\nKeep it short.\n", "more detail")),
        app.post_with_token(&path, &access, edit("Summarise {{ model }}.\n", "shorter")),
    );
    let mut answers = [first, second];
    answers.sort_by_key(|(status, _)| *status);
    let [(won, saved), (lost, refused)] = answers;
    assert_eq!(won, 201, "{saved}");
    assert_eq!(saved["version"]["version"], 2, "{saved}");
    let error = assert_error(lost, &refused, 409, "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("version 2 is current"), "{refused}");
    assert_eq!(error["details"][0]["field"], "base_version", "{refused}");
    assert_eq!(error["details"][0]["description"], "version 2 is current", "{refused}");

    // The prompt follows its current version; version 1 is as it was.
    let (_, prompt) = app.get_with_token(&format!("/api/v1/prompts/{id}"), &access).await;
    assert_eq!(prompt["record"]["current_version"].as_f64(), Some(2.0), "{prompt}");
    assert_eq!(prompt["record"]["content"], saved["version"]["content"]);
    let (_, first) = app.get_with_token(&format!("/api/v1/prompts/{id}/versions/1"), &access).await;
    assert_eq!(first["version"]["content"], "Describe {{ model }}.\nKeep it short.\n", "{first}");

    // The one who lost saves their edit again, on version 2.
    let winner = saved["version"]["change_note"].as_str().unwrap().to_string();
    let mut retry = match winner.as_str() {
        "more detail" => edit("Summarise {{ model }}.\n", "shorter"),
        _ => edit("Describe {{ model }} in detail.\nKeep it short.\n", "more detail"),
    };
    retry["base_version"] = json!(2);
    let (status, third) = app.post_with_token(&path, &access, retry).await;
    assert_eq!((status, third["version"]["version"].as_i64()), (201, Some(3)), "{third}");
    let loser = third["version"]["change_note"].as_str().unwrap().to_string();

    // A change through the records routes is kept as a version of its own.
    let patch = Some(json!({ "content": "Summarise {{ model }} in one line.\n" }));
    let (status, body) = app.send(reqwest::Method::PATCH, &format!("/api/v1/prompts/{id}"), &access, patch).await;
    assert_eq!(status, 200, "{body}");
    let (_, versions) = app.get_with_token(&path, &access).await;
    let listed: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["change_note"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [(4, "saved through the records API"), (3, loser.as_str()), (2, winner.as_str()), (1, "")],
        "{versions}"
    );

    // Diffs between any two versions (to: absent is the current one).
    let detailed = if winner == "more detail" { 2 } else { 3 };
    let (status, diff) = app.get_with_token(&format!("/api/v1/prompts/{id}/diff?from=1&to={detailed}"), &access).await;
    assert_eq!(status, 200, "{diff}");
    let lines: Vec<(&str, &str)> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["op"].as_str().unwrap_or("equal"), l["text"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        lines,
        [
            ("delete", "Describe {{ model }}."),
            ("insert", "Describe {{ model }} in detail."),
            ("equal", "Keep it short.")
        ],
        "{diff}"
    );
    let header = format!("--- version 1\n+++ version {detailed}\n");
    assert!(diff["unified"].as_str().unwrap().starts_with(&header), "{diff}");
    assert_eq!(diff["variables_removed"], json!(["tone"]), "{diff}");
    let (_, latest) = app.get_with_token(&format!("/api/v1/prompts/{id}/diff?from=3"), &access).await;
    assert_eq!(latest["to"], 4, "{latest}");

    // A save of the text alone keeps the variables, so the new version still renders.
    let (status, text_only) =
        app.post_with_token(&path, &access, json!({ "content": "Name {{ model }}.", "base_version": 4 })).await;
    assert_eq!(status, 201, "{text_only}");
    assert_eq!(text_only["version"]["variables"][0]["name"], "model", "{text_only}");
    let test = format!("/api/v1/prompts/{id}/test");
    let (status, run) = app.post_with_token(&test, &access, json!({ "variables": { "model": "Invoice" } })).await;
    assert_eq!((status, run["rendered"].as_str()), (201, Some("Name Invoice.")), "{run}");

    // Wrong inputs: each named.
    let broken = json!({ "content": "Describe {{ model", "variables": [{ "name": "model" }, { "name": "no spaces" }, { "name": "model" }] });
    let (status, body) = app.post_with_token(&path, &access, broken).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(fields(&error), ["variables[1].name", "variables[2].name", "content"], "{body}");
    let (status, body) = app.get_with_token(&format!("/api/v1/prompts/{id}/versions/9"), &access).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get_with_token(&format!("/api/v1/prompts/{id}/diff?from=0"), &access).await;
    assert_eq!(fields(&assert_error(status, &body, 400, "invalid_argument")), ["from"]);
    let (status, body) = app.get_with_token("/api/v1/prompts/not-an-id/versions", &access).await;
    assert_eq!(fields(&assert_error(status, &body, 400, "invalid_argument")), ["id"]);
    let bad = json!({ "name": "x", "type": "llm", "content": "{% if %}" });
    let (status, body) = app.post_with_token("/api/v1/prompts", &access, bad).await;
    assert_eq!(
        fields(&assert_error(status, &body, 400, "invalid_argument")),
        ["content"],
        "the records routes check it too"
    );

    // Deleting a prompt takes its versions with it.
    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/v1/prompts/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let (status, body) = app.get_with_token(&path, &access).await;
    assert_error(status, &body, 404, "not_found");
    app.stop().await;
}

async fn test_runs_render_and_call_the_workspace_provider(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.webhook_allow_private = true).await;
    let endpoint = ChatEndpoint::start().await;
    let (access, id) = with_prompt(&app, "tester@example.com").await;
    let test = format!("/api/v1/prompts/{id}/test");

    // Render errors name each variable.
    let (status, body) = app.post_with_token(&test, &access, json!({ "variables": { "colour": "red" } })).await;
    let error = assert_error(status, &body, 400, "invalid_argument");
    assert_eq!(fields(&error), ["variables.colour", "variables.model"], "{body}");

    // No provider: the render is kept, and the run says why nothing was sent.
    let (status, body) = app.get_with_token("/api/v1/prompt-provider", &access).await;
    assert_eq!((status, body.get("provider")), (200, None), "{body}");
    let (status, run) = app.post_with_token(&test, &access, json!({ "variables": { "model": "Invoice" } })).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["run"]["status"], "rendered", "{run}");
    assert_eq!(run["rendered"], "Describe Invoice.\nKeep it short.\n");
    assert!(run["run"]["error"].as_str().unwrap().contains("no provider is configured"), "{run}");
    assert!(endpoint.requests().is_empty());

    // A provider: its key kept encrypted and never shown.
    let provider = json!({ "url": endpoint.base_url(), "model": "tiny-1", "key": "sk-good-secret-9876" });
    let (status, set) = app.send(reqwest::Method::PUT, "/api/v1/prompt-provider", &access, Some(provider)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!((&set["provider"]["has_key"], &set["provider"]["key_hint"]), (&json!(true), &json!("9876")), "{set}");
    assert!(!set.to_string().contains("sk-good-secret"), "{set}");
    let stored = kiln_common::with_db!(&app.db, pool => {
        sqlx::query_scalar::<_, Vec<u8>>("SELECT sealed_key FROM prompt_providers").fetch_one(pool).await.unwrap()
    });
    assert!(!stored.windows(10).any(|w| w == b"secret-987"), "the key is not kept in the clear");

    let asked = json!({ "variables": { "model": "Invoice", "tone": "dry" } });
    let (status, run) = app.post_with_token(&test, &access, asked).await;
    assert_eq!(status, 201, "{run}");
    let run = &run["run"];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], "DESCRIBE INVOICE.\nKEEP IT SHORT.\n");
    assert_eq!((run["prompt_tokens"].as_i64(), run["total_tokens"].as_i64()), (Some(5), Some(10)), "{run}");
    assert_eq!(run["model"], "tiny-1");
    // int64 travels as a string in proto JSON.
    assert!(run["latency_ms"].as_str().is_some_and(|ms| ms.parse::<i64>().is_ok_and(|ms| ms >= 0)), "{run}");
    let requests = endpoint.requests();
    let (headers, body) = requests.last().unwrap();
    assert_eq!(headers["authorization"], "Bearer sk-good-secret-9876");
    assert_eq!(body["model"], "tiny-1");
    assert_eq!(body["messages"][0], json!({ "role": "user", "content": "Describe Invoice.\nKeep it short.\n" }));

    // A key the endpoint refuses: the run is kept as failed, with the endpoint's words.
    let wrong = json!({ "url": endpoint.base_url(), "model": "tiny-1", "key": "sk-bad-1" });
    let (status, _) = app.send(reqwest::Method::PUT, "/api/v1/prompt-provider", &access, Some(wrong)).await;
    assert_eq!(status, 200);
    let (status, failed) = app.post_with_token(&test, &access, json!({ "variables": { "model": "Order" } })).await;
    assert_eq!(status, 201, "{failed}");
    assert_eq!(failed["run"]["status"], "failed", "{failed}");
    assert!(failed["run"]["error"].as_str().unwrap().contains("Incorrect API key provided"), "{failed}");

    // Changing the model alone keeps the key.
    let renamed = json!({ "url": endpoint.base_url(), "model": "tiny-2" });
    let (_, kept) = app.send(reqwest::Method::PUT, "/api/v1/prompt-provider", &access, Some(renamed)).await;
    assert_eq!(
        (&kept["provider"]["model"], &kept["provider"]["key_hint"]),
        (&json!("tiny-2"), &json!("ad-1")),
        "{kept}"
    );

    // Every run is listed, newest first.
    let (status, runs) = app.get_with_token(&format!("/api/v1/prompts/{id}/test-runs"), &access).await;
    assert_eq!(status, 200, "{runs}");
    let statuses: Vec<&str> = runs["runs"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "succeeded", "rendered"], "{runs}");

    // Wrong provider settings, each named; removing it goes back to rendering only.
    let bad = json!({ "url": "ftp://example.com", "model": "" });
    let (status, body) = app.send(reqwest::Method::PUT, "/api/v1/prompt-provider", &access, Some(bad)).await;
    assert_eq!(fields(&assert_error(status, &body, 400, "invalid_argument")), ["url", "model"], "{body}");
    let (status, _) = app.send(reqwest::Method::DELETE, "/api/v1/prompt-provider", &access, None).await;
    assert_eq!(status, 204);
    let (status, body) = app.send(reqwest::Method::DELETE, "/api/v1/prompt-provider", &access, None).await;
    assert_error(status, &body, 404, "not_found");
    app.stop().await;
}

/// Outgoing calls to a provider keep to public addresses unless the operator allows
/// others, as workflows and webhooks do.
#[tokio::test]
async fn a_provider_on_a_private_address_is_refused_by_default() {
    let app = spawn_app(Backend::Sqlite).await;
    let endpoint = ChatEndpoint::start().await;
    let (access, id) = with_prompt(&app, "private@example.com").await;
    let provider = json!({ "url": endpoint.base_url(), "model": "tiny-1", "key": "sk-good-1" });
    let (status, _) = app.send(reqwest::Method::PUT, "/api/v1/prompt-provider", &access, Some(provider)).await;
    assert_eq!(status, 200);
    let test = format!("/api/v1/prompts/{id}/test");
    let (status, run) = app.post_with_token(&test, &access, json!({ "variables": { "model": "Invoice" } })).await;
    assert_eq!((status, &run["run"]["status"]), (201, &json!("failed")), "{run}");
    assert!(run["run"]["error"].as_str().unwrap().contains("KILN_WEBHOOK_ALLOW_PRIVATE"), "{run}");
    assert!(endpoint.requests().is_empty(), "nothing was sent");
    app.stop().await;
}
