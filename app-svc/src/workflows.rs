//! Running a workspace's workflows, as far as this version goes: the `manual` trigger and
//! the `publish_event` action, which puts a job (its payload's strings rendered with
//! tera against the run's input) on a named queue. Each run is recorded in
//! `workflow_runs` with every action's status, output, error and duration; an action of
//! a kind this version does not run fails the run, saying so.

use std::{collections::HashMap, sync::Arc, time::Instant};

use anyhow::Context;
use kiln_common::{
    Db, ServiceError,
    db::{Id, RowExt},
    queue::JobQueue,
    templating, with_db, with_db_read,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::types::Json;
use uuid::Uuid;

/// The queues a `publish_event` action may put jobs on, by name.
pub type Queues = HashMap<String, Arc<dyn JobQueue>>;

#[derive(Clone)]
pub struct Workflows {
    db: Db,
    queues: Arc<Queues>,
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
    output: Value,
    error: Option<String>,
    duration_ms: i64,
}

impl Workflows {
    pub fn new(db: Db, queues: Queues) -> Self {
        Workflows { db, queues: Arc::new(queues) }
    }

    /// Runs the workflow `id` of `workspace` by hand, with `input` as its context, and
    /// records the run. FAILED_PRECONDITION when it is missing, disabled or not manual.
    pub async fn run_manual(
        &self,
        workspace: Uuid,
        user: Uuid,
        id: Uuid,
        input: Value,
    ) -> Result<RunOutcome, ServiceError> {
        let row = with_db_read!(&self.db, pool => {
            match sqlx::query("SELECT name, \"trigger\", actions, enabled FROM workflows WHERE id = $1 AND workspace_id = $2")
                .bind(Id(id)).bind(Id(workspace)).fetch_optional(pool).await
            {
                Ok(Some(row)) => Ok(Some((
                    row.text("name")?,
                    row.json("trigger")?,
                    row.json("actions")?,
                    row.boolean("enabled").unwrap_or(true),
                ))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .context("reading a workflow")?;
        let Some((name, trigger, actions, enabled)) = row else {
            return Err(ServiceError::FailedPrecondition(format!("workflow {id} was deleted")));
        };
        if !enabled {
            return Err(ServiceError::FailedPrecondition(format!("workflow `{name}` is disabled")));
        }
        let trigger_kind = trigger.get("kind").and_then(Value::as_str).unwrap_or_default();
        if trigger_kind != "manual" {
            return Err(ServiceError::FailedPrecondition(format!(
                "workflow `{name}` is triggered by `{trigger_kind}`, not by hand"
            )));
        }
        let run_id = Id::new();
        let started = kiln_common::db::now();
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO workflow_runs (id, workspace_id, workflow_id, trigger, status, input, created_by, started_at) \
                 VALUES ($1, $2, $3, 'manual', 'running', $4, $5, $6)",
            )
            .bind(run_id).bind(Id(workspace)).bind(Id(id)).bind(Json(&input)).bind(Id(user)).bind(started)
            .execute(pool).await.map(|_| ())
        })
        .context("recording a workflow run")?;

        let mut results = Vec::new();
        let mut published = Vec::new();
        let mut error = None;
        for action in actions.as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = action.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let kind = action.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            let began = Instant::now();
            let outcome = self.run_action(&kind, action.get("config").unwrap_or(&Value::Null), &input).await;
            let duration_ms = i64::try_from(began.elapsed().as_millis()).unwrap_or(i64::MAX);
            match outcome {
                Ok((output, job)) => {
                    published.extend(job);
                    results.push(ActionResult { name, kind, status: "succeeded", output, error: None, duration_ms });
                }
                Err(reason) => {
                    let message = format!("action `{name}` ({kind}): {reason}");
                    results.push(ActionResult {
                        name,
                        kind,
                        status: "failed",
                        output: Value::Null,
                        error: Some(reason),
                        duration_ms,
                    });
                    error = Some(message);
                    break;
                }
            }
        }
        let status = if error.is_some() { "failed" } else { "succeeded" };
        let finished = kiln_common::db::now();
        with_db!(&self.db, pool => {
            sqlx::query("UPDATE workflow_runs SET status = $2, actions = $3, error = $4, finished_at = $5 WHERE id = $1")
                .bind(run_id).bind(status).bind(Json(&serde_json::to_value(&results).unwrap_or_default())).bind(error.as_deref()).bind(finished)
                .execute(pool).await.map(|_| ())
        })
        .context("recording a workflow run")?;
        Ok(RunOutcome { run_id: run_id.0, error, published })
    }

    /// Runs one action; its output, and the job it queued, if it did.
    async fn run_action(
        &self,
        kind: &str,
        config: &Value,
        input: &Value,
    ) -> Result<(Value, Option<(String, String, Value)>), String> {
        match kind {
            "publish_event" => {
                let queue_name = config.get("queue").and_then(Value::as_str).ok_or("config.queue is required")?;
                let queue = self.queues.get(queue_name).ok_or_else(|| format!("there is no queue `{queue_name}`"))?;
                let payload = rendered(config.get("payload").unwrap_or(&Value::Null), input)?;
                let job = queue
                    .enqueue(&payload)
                    .await
                    .map_err(|e| format!("queue `{queue_name}` refused the job: {e:#}"))?;
                let output = json!({ "queue": queue_name, "job_id": job, "payload": payload });
                Ok((output, Some((queue_name.to_string(), job, payload))))
            }
            other => Err(format!("actions of kind `{other}` are not run by this version")),
        }
    }

    /// The run's record, as JSON (for tests and, later, the runs API).
    pub async fn run(&self, workspace: Uuid, run_id: Uuid) -> Result<Option<Value>, ServiceError> {
        let run = with_db_read!(&self.db, pool => {
            match sqlx::query("SELECT workflow_id, status, actions, error FROM workflow_runs WHERE id = $1 AND workspace_id = $2")
                .bind(Id(run_id)).bind(Id(workspace)).fetch_optional(pool).await
            {
                Ok(Some(row)) => Ok(Some(json!({
                    "workflow_id": row.id("workflow_id")?.to_string(),
                    "status": row.text("status")?,
                    "actions": row.json("actions")?,
                    "error": row.text("error").ok(),
                }))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .context("reading a workflow run")?;
        Ok(run)
    }
}

/// `template` with every string in it rendered against `input`.
fn rendered(template: &Value, input: &Value) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => Value::String(templating::render("payload", text, input)?),
        Value::Array(items) => Value::Array(items.iter().map(|item| rendered(item, input)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| Ok((key.clone(), rendered(value, input)?)))
                .collect::<Result<Map<String, Value>, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_strings_are_rendered_everywhere() {
        let payload = json!({ "build_id": "{{ build.id }}", "nested": ["{{ workspace.id }}", 3] });
        let input = json!({ "build": { "id": "b1" }, "workspace": { "id": "w1" } });
        assert_eq!(rendered(&payload, &input).unwrap(), json!({ "build_id": "b1", "nested": ["w1", 3] }));
        assert!(rendered(&json!("{{ missing.x }}"), &input).unwrap_err().starts_with("line 1"));
    }
}
