//! The workspace's typed contract (`/api/v1/proto`, `kiln.ws.<workspace_slug>.v1`): derived
//! from the models as they are now, field numbers kept across renames and never reused,
//! each workspace seeing only its own. On every backend (the mesh asks app-svc for the
//! workspace's slug over the network).

use prost::Message as _;
use serde_json::json;

use crate::harness::{Backend, TestApp, assert_error, spawn_app, token};

crate::on_every_backend!(
    the_contract_follows_model_changes_with_stable_numbers,
    each_workspace_has_its_own_slug_and_contract,
);

/// `/api/v1/proto` as text, and the descriptor set's file for the package.
async fn contract(app: &TestApp, access: &str) -> (String, prost_types::FileDescriptorProto) {
    let response = app.http.get(app.url("/api/v1/proto")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    let source = response.text().await.unwrap();
    let response = app.http.get(app.url("/api/v1/proto/descriptor")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let set = prost_types::FileDescriptorSet::decode(response.bytes().await.unwrap()).unwrap();
    let file = set.file.into_iter().find(|f| f.package().starts_with("kiln.ws.")).expect("the workspace's file");
    (source, file)
}

/// (name, number) of each field of `message`.
fn numbers(file: &prost_types::FileDescriptorProto, message: &str) -> Vec<(String, i32)> {
    let message = file.message_type.iter().find(|m| m.name() == message).expect("the message");
    message.field.iter().map(|f| (f.name().to_string(), f.number())).collect()
}

async fn the_contract_follows_model_changes_with_stable_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (status, profile) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["user"]["workspace_slug"], "ada");

    let (source, file) = contract(&app, &access).await;
    assert!(source.contains("package kiln.ws.ada.v1;"), "{source}");
    assert!(file.message_type.is_empty(), "system models are kiln.v1's: {source}");

    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
        { "name": "due", "type": "date" },
    ]});
    let (status, created) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{created}");
    let id = created["model"]["id"].as_str().unwrap().to_string();
    let given: Vec<i64> =
        created["model"]["fields"].as_array().unwrap().iter().map(|f| f["number"].as_i64().unwrap()).collect();
    assert_eq!(given, [16, 17, 18, 19]);
    let (source, file) = contract(&app, &access).await;
    assert!(source.contains("service InvoiceService {"), "{source}");
    assert!(source.contains("  optional string amount = 17;"), "{source}");
    assert!(source.contains("  optional Status status = 18;"), "{source}");
    let expected = [("id", 1), ("created_at", 2), ("updated_at", 3), ("created_by", 4)];
    let mut expected: Vec<(String, i32)> = expected.iter().map(|(n, i)| (n.to_string(), *i)).collect();
    expected.extend([("number", 16), ("amount", 17), ("status", 18), ("due", 19)].map(|(n, i)| (n.into(), i)));
    assert_eq!(numbers(&file, "Invoice"), expected);

    // `amount` renamed to `total`, `due` dropped, `note` added; numbers sent are ignored.
    let change = json!({ "confirm_data_loss": true, "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "total", "type": "decimal", "previous_name": "amount", "number": 99 },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
        { "name": "note", "type": "long_text", "number": 19 },
    ]});
    let (status, changed) =
        app.send(reqwest::Method::PUT, &format!("/api/v1/models/{id}"), &access, Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["model"]["reserved_fields"], json!([{ "number": 19, "name": "due" }]));
    let (source, file) = contract(&app, &access).await;
    let user_fields: Vec<(String, i32)> = numbers(&file, "Invoice").into_iter().skip(4).collect();
    assert_eq!(user_fields, [("number", 16), ("total", 17), ("status", 18), ("note", 20)].map(|(n, i)| (n.into(), i)));
    assert!(source.contains("reserved 19;") && source.contains("reserved \"due\";"), "{source}");

    // Without a token: the contract is the caller's workspace's, so there is none.
    let response = app.http.get(app.url("/api/v1/proto")).send().await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_error(status, &body, 401, "unauthenticated");
    app.stop().await;
}

async fn each_workspace_has_its_own_slug_and_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = token(&app.register("ada@example.com").await, "access_token");
    let (status, created) = app.post_with_token("/api/v1/models", &ada, json!({ "name": "Ledger" })).await;
    assert_eq!(status, 201, "{created}");
    // Another Ada: the slug is taken, so hers has a suffix.
    let other = token(&app.register("ada@other.example").await, "access_token");
    let (_, profile) = app.get_with_token("/api/v1/auth/profile", &other).await;
    let slug = profile["user"]["workspace_slug"].as_str().unwrap().to_string();
    assert!(slug.starts_with("ada_") && slug.len() == "ada_".len() + 6, "{slug}");
    let (source, file) = contract(&app, &other).await;
    assert!(source.contains(&format!("package kiln.ws.{slug}.v1;")), "{source}");
    assert!(!source.contains("Ledger") && file.message_type.is_empty(), "{source}");
    app.stop().await;
}
