//! The workflow engine: one way to run a workspace's workflow, whatever started it (by
//! hand, an event, a schedule, a rerun, or an application's generate, which runs the
//! seeded `build-application` workflow). A run is a row of `workflow_runs`: its input,
//! and for every action as far as the run went its settings as run (templates
//! rendered), output, error, attempts and duration, written after each action so a run
//! in progress shows where it is. An action that fails is tried again after a wait that
//! doubles (its `retries`, `backoff_ms`); one that still fails ends the run as failed.
//!
//! What each action kind does is [`Workflows::act`]; what starts runs is [`triggers`];
//! the settings' rules are [`spec`]; the JavaScript sandbox is [`sandbox`]; outgoing HTTP
//! is [`outgoing`]; WorkflowService is [`api`].

pub mod api;
pub mod outgoing;
pub mod sandbox;
pub mod spec;
pub mod triggers;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use kiln_common::{
    Db, GrpcChannel, ServiceError, TokenKeys,
    db::{Id, RowExt, is_unique_violation},
    queue::JobQueue,
    templating, with_db, with_db_read,
};
use kiln_proto::v1::{CreateEntityRequest, UpdateEntityRequest, entity_service_client::EntityServiceClient};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use self::{
    outgoing::Outgoing,
    spec::{ActionSpec, WorkflowSpec},
};

/// The queues a `publish_event` action may put jobs on, by name.
pub type Queues = HashMap<String, Arc<dyn JobQueue>>;

/// The longest wait between two attempts of an action, however many came before.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Workflows {
    db: Db,
    queues: Arc<Queues>,
    outgoing: Outgoing,
    /// EntityService (model-svc), where record actions write, as the workflow's owner.
    entities: GrpcChannel,
    keys: TokenKeys,
}

/// What starts a run, as its row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Manual,
    OnEvent,
    Schedule,
    Rerun,
}

impl Started {
    pub fn as_str(self) -> &'static str {
        match self {
            Started::Manual => "manual",
            Started::OnEvent => "on_event",
            Started::Schedule => "schedule",
            Started::Rerun => "rerun",
        }
    }
}

/// A run that has started: its row is written, its actions are still to run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: Uuid,
    pub workspace: Uuid,
    workflow: Uuid,
    name: String,
    /// Whose name record actions write in: the workflow's owner.
    owner: Uuid,
    spec: Result<WorkflowSpec, String>,
    input: Value,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: Uuid,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The jobs it queued: (queue, job id, payload).
    pub published: Vec<(String, String, Value)>,
}

/// One action's result, as `workflow_runs.actions` keeps it.
#[derive(Debug, Clone, Serialize)]
struct ActionResult {
    name: String,
    kind: String,
    status: &'static str,
    input: Value,
    output: Value,
    error: Option<String>,
    attempts: u32,
    started_at: chrono::DateTime<chrono::Utc>,
    duration_ms: i64,
}

/// A workflow row, as runs need it.
struct Stored {
    name: String,
    trigger: Value,
    actions: Value,
    enabled: bool,
    owner: Option<Uuid>,
}

impl Workflows {
    pub fn new(db: Db, queues: Queues, outgoing: Outgoing, entities: GrpcChannel, keys: TokenKeys) -> Self {
        Workflows { db, queues: Arc::new(queues), outgoing, entities, keys }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn stored(&self, workspace: Uuid, id: Uuid) -> Result<Option<Stored>, ServiceError> {
        let row = with_db_read!(&self.db, pool => {
            match sqlx::query("SELECT name, \"trigger\", actions, enabled, created_by FROM workflows WHERE id = $1 AND workspace_id = $2")
                .bind(Id(id)).bind(Id(workspace)).fetch_optional(pool).await
            {
                Ok(Some(row)) => Ok(Some(Stored {
                    name: row.text("name")?,
                    trigger: row.json("trigger")?,
                    actions: row.json("actions")?,
                    enabled: row.boolean("enabled").unwrap_or(true),
                    owner: row.opt_id("created_by")?,
                })),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .context("reading a workflow")?;
        Ok(row)
    }

    /// Starts a run of workflow `id`: checks it and records the run as running. `event`
    /// names the event that started it, and a second start for the same event is `None`
    /// (the bus delivers at least once). FAILED_PRECONDITION for a workflow that is gone,
    /// or disabled when `enabled_only`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        workspace: Uuid,
        actor: Option<Uuid>,
        id: Uuid,
        started: Started,
        input: Value,
        event: Option<Uuid>,
        rerun_of: Option<Uuid>,
        enabled_only: bool,
    ) -> Result<Option<Run>, ServiceError> {
        let Some(stored) = self.stored(workspace, id).await? else {
            return Err(ServiceError::FailedPrecondition(format!("workflow {id} was deleted")));
        };
        if enabled_only && !stored.enabled {
            return Err(ServiceError::FailedPrecondition(format!("workflow `{}` is disabled", stored.name)));
        }
        let spec = spec::parse(&stored.trigger, &stored.actions).map_err(|broken| {
            let reasons: Vec<String> = broken.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
            format!("the workflow's settings are not valid: {}", reasons.join("; "))
        });
        let run_id = Id::new();
        let started_at = kiln_common::db::now();
        let inserted = with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO workflow_runs (id, workspace_id, workflow_id, trigger, status, input, created_by, started_at, event_id, rerun_of) \
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9)",
            )
            .bind(run_id).bind(Id(workspace)).bind(Id(id)).bind(started.as_str()).bind(Json(&input))
            .bind(actor.map(Id)).bind(started_at).bind(event.map(Id)).bind(rerun_of.map(Id))
            .execute(pool).await.map(|_| ())
        });
        match inserted {
            Ok(()) => {}
            Err(e) if event.is_some() && is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(anyhow::Error::from(e).context("recording a workflow run").into()),
        }
        metrics::counter!("kiln_workflow_runs_started_total", "trigger" => started.as_str()).increment(1);
        let owner = stored.owner.or(actor).unwrap_or_default();
        Ok(Some(Run { id: run_id.0, workspace, workflow: id, name: stored.name, owner, spec, input }))
    }

    /// Runs `run`'s actions in order and records how each went; the run's end.
    pub async fn finish(&self, run: Run) -> RunOutcome {
        let began = Instant::now();
        let mut results = Vec::new();
        let mut published = Vec::new();
        let mut error = None;
        match &run.spec {
            Err(why) => error = Some(why.clone()),
            Ok(spec) => {
                let mut context = run_context(&run);
                for (index, action) in spec.actions.iter().enumerate() {
                    let (result, job) = self.attempt(&run, index, action, &context).await;
                    published.extend(job);
                    let failed =
                        result.error.clone().map(|e| format!("action `{}` ({}): {e}", action.name, action.kind));
                    context["steps"][&action.name] = result.output.clone();
                    metrics::counter!("kiln_workflow_actions_total", "kind" => action.kind.clone(), "status" => result.status)
                        .increment(1);
                    results.push(result);
                    self.record(&run, "running", &results, None).await;
                    if failed.is_some() {
                        error = failed;
                        break;
                    }
                }
            }
        }
        let status = if error.is_some() { "failed" } else { "succeeded" };
        self.record(&run, status, &results, error.as_deref()).await;
        metrics::counter!("kiln_workflow_runs_total", "status" => status).increment(1);
        metrics::histogram!("kiln_workflow_run_seconds").record(began.elapsed().as_secs_f64());
        if let Some(error) = &error {
            tracing::info!(run = %run.id, workflow = %run.workflow, name = %run.name, %error, "a workflow run failed");
        }
        RunOutcome { run_id: run.id, error, published }
    }

    /// Writes where `run` is; a failure to write is logged (the run goes on: its actions'
    /// effects happened either way).
    async fn record(&self, run: &Run, status: &str, results: &[ActionResult], error: Option<&str>) {
        let actions = serde_json::to_value(results).unwrap_or_default();
        let finished = (status != "running").then(kiln_common::db::now);
        let written = with_db!(&self.db, pool => {
            sqlx::query("UPDATE workflow_runs SET status = $2, actions = $3, error = $4, finished_at = $5 WHERE id = $1")
                .bind(Id(run.id)).bind(status).bind(Json(&actions)).bind(error).bind(finished)
                .execute(pool).await.map(|_| ())
        });
        if let Err(e) = written {
            tracing::warn!(run = %run.id, error = %e, "could not record a workflow run's progress");
        }
    }

    /// Runs one action until it succeeds or its retries are spent.
    async fn attempt(
        &self,
        run: &Run,
        index: usize,
        action: &ActionSpec,
        context: &Value,
    ) -> (ActionResult, Option<(String, String, Value)>) {
        let started_at = kiln_common::db::now();
        let began = Instant::now();
        // A script's source is JavaScript, not a template.
        let settings = Value::Object(action.config.clone());
        let input = if action.kind == "script" { Ok(settings) } else { rendered(&settings, context) };
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let outcome = match &input {
                Ok(settings) => self.act(run, index, action, settings, context).await,
                // A template that does not render now will not later either.
                Err(why) => break Err(format!("its settings do not render: {why}")),
            };
            match outcome {
                Ok(done) => break Ok(done),
                Err(why) if attempts > action.retries => break Err(why),
                Err(why) => {
                    let wait = action.backoff.saturating_mul(1 << (attempts - 1).min(16)).min(MAX_RETRY_WAIT);
                    tracing::debug!(run = %run.id, action = %action.name, attempt = attempts, error = %why, ?wait, "retrying an action");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let duration_ms = i64::try_from(began.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, output, error, job) = match outcome {
            Ok((output, job)) => ("succeeded", output, None, job),
            Err(why) => ("failed", Value::Null, Some(why), None),
        };
        let result = ActionResult {
            name: action.name.clone(),
            kind: action.kind.clone(),
            status,
            input: input.map(|settings| redacted(&settings)).unwrap_or(Value::Null),
            output,
            error,
            attempts,
            started_at,
            duration_ms,
        };
        (result, job)
    }

    /// What each kind of action does, with its settings rendered; its output, and the
    /// job it queued if it did.
    async fn act(
        &self,
        run: &Run,
        index: usize,
        action: &ActionSpec,
        settings: &Value,
        context: &Value,
    ) -> Result<(Value, Option<(String, String, Value)>), String> {
        let text = |key: &str| settings.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        match action.kind.as_str() {
            "publish_event" => {
                let queue_name = text("queue");
                let queue = self.queues.get(&queue_name).ok_or_else(|| format!("there is no queue `{queue_name}`"))?;
                // A job speaks for the run's workspace only: consumers check it (the build
                // worker builds only that workspace's builds).
                let mut payload = settings.get("payload").cloned().unwrap_or(Value::Null);
                match payload.as_object_mut() {
                    Some(fields) => {
                        fields.insert("workspace_id".into(), json!(run.workspace.to_string()));
                    }
                    None => return Err("its payload must be an object".into()),
                }
                // The job carries the run's trace: its worker's work joins it.
                let mut job = payload.clone();
                if let (Some(fields), Some(trace)) = (job.as_object_mut(), kiln_common::telemetry::traceparent()) {
                    fields.insert(kiln_common::telemetry::TRACEPARENT.into(), json!(trace));
                }
                let job =
                    queue.enqueue(&job).await.map_err(|e| format!("queue `{queue_name}` refused the job: {e:#}"))?;
                let output = json!({ "queue": queue_name, "job_id": job, "payload": payload });
                Ok((output, Some((queue_name, job, payload))))
            }
            "http_request" => {
                let method = match settings.get("method").and_then(Value::as_str).unwrap_or("POST") {
                    "GET" => reqwest::Method::GET,
                    "PUT" => reqwest::Method::PUT,
                    "PATCH" => reqwest::Method::PATCH,
                    "DELETE" => reqwest::Method::DELETE,
                    _ => reqwest::Method::POST,
                };
                let mut request = self.outgoing.request(method, &text("url"))?.timeout(action.http_timeout());
                for (name, value) in settings.get("headers").and_then(Value::as_object).into_iter().flatten() {
                    request = request.header(name.as_str(), value.as_str().unwrap_or_default());
                }
                request = match settings.get("body") {
                    None | Some(Value::Null) => request,
                    Some(Value::String(text)) => request.body(text.clone()),
                    Some(body) => request.json(body),
                };
                Ok((sent(request).await?, None))
            }
            "send_webhook" => {
                let body = match settings.get("body") {
                    None | Some(Value::Null) => context.get("input").cloned().unwrap_or(Value::Null),
                    Some(body) => body.clone(),
                };
                let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
                // The same id on every attempt: a receiver can tell a retry from a new message.
                let id = format!("msg_{}_{index}", run.id.simple());
                let mut request = self
                    .outgoing
                    .request(reqwest::Method::POST, &text("url"))?
                    .timeout(action.http_timeout())
                    .header("content-type", "application/json");
                let secret = text("secret");
                if !secret.is_empty() {
                    for (name, value) in
                        outgoing::signature_headers(&secret, &id, chrono::Utc::now().timestamp(), &body)
                    {
                        request = request.header(name, value);
                    }
                }
                let mut output = sent(request.body(body)).await?;
                output["webhook_id"] = json!(id);
                Ok((output, None))
            }
            "create_record" | "update_record" => {
                let record: kiln_proto::wkt::Struct = serde_json::from_value(settings["record"].clone())
                    .map_err(|_| "its record is not an object of fields".to_string())?;
                let mut entities = EntityServiceClient::new(self.entities.clone());
                let written = if action.kind == "create_record" {
                    let request = CreateEntityRequest { model: text("model"), record: Some(record) };
                    entities.create_entity(self.as_owner(run, request).await?).await.map(|r| r.into_inner().record)
                } else {
                    let request = UpdateEntityRequest {
                        model: text("model"),
                        id: text("id"),
                        record: Some(record),
                        partial: true,
                    };
                    entities.update_entity(self.as_owner(run, request).await?).await.map(|r| r.into_inner().record)
                };
                let written = written.map_err(|status| describe_status(&status))?;
                Ok((serde_json::to_value(written.unwrap_or_default()).unwrap_or_default(), None))
            }
            "script" => {
                let source = action.config.get("source").and_then(Value::as_str).unwrap_or_default().to_string();
                let limits = action.script_limits();
                let input = context.clone();
                Ok((
                    sandbox::run_bounded(move || sandbox::run_script(&source, &input, limits), limits.time).await?,
                    None,
                ))
            }
            other => Err(format!("actions of kind `{other}` are not run by this version")),
        }
    }

    /// `message` as a call made by the run's workflow owner, in the run's workspace: a
    /// token of the owner's automation session (one per user and workspace, never handed
    /// out; signing out, even everywhere, does not stop the workspace's workflows, so a
    /// revoked one is opened again).
    async fn as_owner<T>(&self, run: &Run, message: T) -> Result<tonic::Request<T>, String> {
        let session =
            Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("kiln-workflows:{}:{}", run.owner, run.workspace).as_bytes());
        let now = kiln_common::db::now();
        let opened = with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, workspace_id, created_at, last_used_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (id) DO UPDATE SET revoked_at = NULL",
            )
            .bind(Id(session)).bind(Id(run.owner)).bind(Id(run.workspace)).bind(now)
            .execute(pool).await.map(|_| ())
        });
        opened.map_err(|e| format!("could not act as the workflow's owner: {e}"))?;
        let token = self
            .keys
            .issue(run.owner, run.workspace, session)
            .map_err(|e| format!("could not act as the workflow's owner: {e:#}"))?;
        let mut request = tonic::Request::new(message);
        let bearer = format!("Bearer {token}").parse().map_err(|_| "a token is not header text".to_string())?;
        request.metadata_mut().insert("authorization", bearer);
        Ok(request)
    }
}

/// What a run's templates, conditions and scripts see: the input's own keys at the top
/// (the build workflow reads `build.id`), the input itself, the workflow, the workspace,
/// the run, and each finished action's output under `steps.<name>`.
fn run_context(run: &Run) -> Value {
    let mut context = match &run.input {
        Value::Object(fields) => fields.clone(),
        _ => Map::new(),
    };
    context.insert("input".into(), run.input.clone());
    context.insert("workflow".into(), json!({ "id": run.workflow.to_string(), "name": run.name }));
    context.insert("workspace".into(), json!({ "id": run.workspace.to_string() }));
    context.insert("run".into(), json!({ "id": run.id.to_string() }));
    context.insert("steps".into(), json!({}));
    Value::Object(context)
}

/// Settings as a run's record shows them: secrets and credentials masked.
fn redacted(settings: &Value) -> Value {
    let mut shown = settings.clone();
    if let Some(secret) = shown.get_mut("secret").filter(|s| s.is_string()) {
        *secret = json!("***");
    }
    if let Some(headers) = shown.get_mut("headers").and_then(Value::as_object_mut) {
        for (name, value) in headers.iter_mut() {
            let lower = name.to_ascii_lowercase();
            if ["authorization", "cookie", "proxy-authorization"].contains(&lower.as_str())
                || lower.contains("key")
                || lower.contains("token")
                || lower.contains("secret")
            {
                *value = json!("***");
            }
        }
    }
    shown
}

/// An error with its causes, as one line: reqwest's own message rarely says why.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    chain
}

/// Sends `request`; a response other than 2xx is the action's failure.
async fn sent(request: reqwest::RequestBuilder) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    let body = outgoing::response_body(response).await;
    if !status.is_success() {
        let shown = match &body {
            Value::String(text) => text.chars().take(200).collect(),
            other => other.to_string().chars().take(200).collect::<String>(),
        };
        return Err(format!("answered {status}: {shown}"));
    }
    Ok(json!({ "status": status.as_u16(), "body": body }))
}

/// A gRPC error of another service as a run's error.
fn describe_status(status: &tonic::Status) -> String {
    let details = tonic_types::StatusExt::get_error_details(status);
    let fields: Vec<String> = details
        .bad_request()
        .map(|bad| bad.field_violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        format!("{:?}: {}", status.code(), status.message())
    } else {
        format!("{:?}: {} ({})", status.code(), status.message(), fields.join("; "))
    }
}

/// `template` with every string in it rendered against `context`. A string that is one
/// `{{ path }}` and nothing else takes the value at that path as it is (a number stays a
/// number, an object an object), so settings can pass values on with their types.
fn rendered(template: &Value, context: &Value) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => match sole_path(text).and_then(|path| lookup(context, path)) {
            Some(value) => value.clone(),
            None => Value::String(templating::render("setting", text, context)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| rendered(item, context)).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), rendered(value, context)?)))
                .collect::<Result<Map<String, Value>, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The dotted path of a template that is exactly `{{ a.b.c }}`.
fn sole_path(text: &str) -> Option<&str> {
    let path = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let plain = !path.is_empty()
        && path.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    plain.then_some(path)
}

fn lookup<'a>(context: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(context, |value, part| match value {
        Value::Object(fields) => fields.get(part),
        Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_rendered_everywhere_and_sole_values_keep_their_type() {
        let payload = json!({ "build_id": "{{ build.id }}", "nested": ["{{ workspace.id }}", 3], "n": "{{ steps.calc.total }}", "text": "total {{ steps.calc.total }}" });
        let context =
            json!({ "build": { "id": "b1" }, "workspace": { "id": "w1" }, "steps": { "calc": { "total": 1200.5 } } });
        assert_eq!(
            rendered(&payload, &context).unwrap(),
            json!({ "build_id": "b1", "nested": ["w1", 3], "n": 1200.5, "text": "total 1200.5" })
        );
        assert!(rendered(&json!("{{ missing.x }} and more"), &context).unwrap_err().starts_with("line 1"));
        // A path that is not there renders as tera would: an error that says where.
        assert!(rendered(&json!("{{ missing.x }}"), &context).is_err());
    }
}
