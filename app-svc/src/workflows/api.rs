//! WorkflowService: workflows, typed, over the records of the `workflows` kind (so a
//! trigger or action that breaks a rule of [`super::spec`] is refused here as on the
//! generic routes, by the kind's rules), and their runs: execute, list, read, rerun.

use kiln_common::{
    Authenticator, Principal, ServiceError,
    db::{Id, RowExt},
    paging::Paging,
    with_db_read,
};
use kiln_proto::{
    v1::{
        Action, ActionResult, CreateWorkflowRequest, CreateWorkflowResponse, DeleteWorkflowRequest,
        DeleteWorkflowResponse, ExecuteWorkflowRequest, ExecuteWorkflowResponse, GetWorkflowRequest,
        GetWorkflowResponse, GetWorkflowRunRequest, GetWorkflowRunResponse, ListWorkflowRunsRequest,
        ListWorkflowRunsResponse, ListWorkflowsRequest, ListWorkflowsResponse, RerunWorkflowRunRequest,
        RerunWorkflowRunResponse, Trigger, UpdateWorkflowRequest, UpdateWorkflowResponse, Workflow, WorkflowRun,
        workflow_service_server::WorkflowService,
    },
    wkt::Struct,
};
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Started, Workflows};
use crate::typed::{KindRecords, Record, text, time};

#[derive(Clone)]
pub struct WorkflowApi {
    pub records: KindRecords,
    pub auth: Authenticator,
    pub engine: Workflows,
}

const KIND: &str = "workflows";

/// A JSON value as a Struct: an object as it is, anything else as `{"value": …}`.
fn struct_of(value: &Value) -> Option<Struct> {
    match value {
        Value::Null => None,
        Value::Object(_) => serde_json::from_value(value.clone()).ok(),
        other => serde_json::from_value(json!({ "value": other })).ok(),
    }
}

fn object_of(value: Option<Struct>) -> Value {
    value.and_then(|s| serde_json::to_value(s).ok()).unwrap_or_else(|| json!({}))
}

fn trigger_of(value: &Value) -> Trigger {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let events = match value.get("events") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Trigger { kind: text("kind"), model: text("model"), events, cron: text("cron"), condition: text("condition") }
}

fn trigger_json(trigger: Option<Trigger>) -> Value {
    let Some(trigger) = trigger else { return Value::Null };
    let mut json = Map::new();
    json.insert("kind".into(), json!(trigger.kind));
    for (key, value) in [("model", trigger.model), ("cron", trigger.cron), ("condition", trigger.condition)] {
        if !value.is_empty() {
            json.insert(key.into(), json!(value));
        }
    }
    if !trigger.events.is_empty() {
        json.insert("events".into(), json!(trigger.events));
    }
    Value::Object(json)
}

fn action_of(value: &Value) -> Action {
    let number = |key: &str| value.get(key).and_then(super::spec::whole).unwrap_or_default() as i32;
    Action {
        name: value.get("name").and_then(Value::as_str).unwrap_or_default().into(),
        kind: value.get("kind").and_then(Value::as_str).unwrap_or_default().into(),
        config: value.get("config").and_then(struct_of),
        retries: number("retries"),
        backoff_ms: number("backoff_ms"),
    }
}

fn actions_json(actions: Vec<Action>) -> Value {
    Value::Array(
        actions
            .into_iter()
            .map(|action| {
                let mut json = json!({ "name": action.name, "kind": action.kind, "config": object_of(action.config) });
                if action.retries != 0 {
                    json["retries"] = json!(action.retries);
                }
                if action.backoff_ms != 0 {
                    json["backoff_ms"] = json!(action.backoff_ms);
                }
                json
            })
            .collect(),
    )
}

fn workflow_of(record: &Record) -> Workflow {
    Workflow {
        id: text(record, "id"),
        name: text(record, "name"),
        description: text(record, "description"),
        trigger: Some(trigger_of(record.get("trigger").unwrap_or(&Value::Null))),
        actions: record
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(action_of).collect())
            .unwrap_or_default(),
        enabled: record.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        created_at: time(record, "created_at"),
        updated_at: time(record, "updated_at"),
    }
}

fn record_of(
    name: String,
    description: String,
    trigger: Option<Trigger>,
    actions: Vec<Action>,
    enabled: bool,
) -> Record {
    let record = json!({
        "name": name,
        "description": description,
        "trigger": trigger_json(trigger),
        "actions": actions_json(actions),
        "enabled": enabled,
    });
    record.as_object().cloned().unwrap_or_default()
}

/// A run's row as the API shows it.
fn run_of(row: &impl RowExt) -> Result<WorkflowRun, sqlx::Error> {
    let actions = row.json("actions")?;
    let steps: Vec<ActionResult> = actions
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|step| {
                    let text = |key: &str| step.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
                    ActionResult {
                        action: text("name"),
                        status: text("status"),
                        output: step.get("output").and_then(struct_of),
                        error: text("error"),
                        kind: text("kind"),
                        input: step.get("input").and_then(struct_of),
                        attempts: step.get("attempts").and_then(Value::as_i64).unwrap_or_default() as i32,
                        duration_ms: step.get("duration_ms").and_then(Value::as_i64).unwrap_or_default(),
                        started_at: step
                            .get("started_at")
                            .and_then(|at| serde_json::from_value::<chrono::DateTime<chrono::Utc>>(at.clone()).ok())
                            .map(kiln_common::timestamp),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let output = steps.iter().rev().find(|step| step.status == "succeeded").and_then(|step| step.output.clone());
    Ok(WorkflowRun {
        id: row.id("id")?.to_string(),
        workflow_id: row.id("workflow_id")?.to_string(),
        status: row.text("status")?,
        input: struct_of(&row.json("input")?),
        output,
        error: row.text("error").unwrap_or_default(),
        steps,
        started_at: Some(kiln_common::timestamp(row.time("started_at")?)),
        finished_at: row.opt_time("finished_at")?.map(kiln_common::timestamp),
        trigger: row.text("trigger")?,
        rerun_of: row.opt_id("rerun_of")?.map(|id| id.to_string()).unwrap_or_default(),
    })
}

const RUN_COLUMNS: &str = "id, workflow_id, status, input, actions, error, started_at, finished_at, trigger, rerun_of";

/// An id from a request, or INVALID_ARGUMENT naming `field`.
pub(crate) fn id_in(field: &str, value: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(value).map_err(|_| ServiceError::invalid_field(field, "is not an id"))
}

impl WorkflowApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }

    /// One run of the caller's workspace.
    pub async fn run(&self, workspace: Uuid, id: Uuid) -> Result<WorkflowRun, ServiceError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1 AND workspace_id = $2");
        let run = with_db_read!(self.engine.db(), pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).bind(Id(workspace)).fetch_optional(pool).await {
                Ok(Some(row)) => run_of(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(anyhow::Error::from)?;
        run.ok_or_else(|| ServiceError::NotFound(format!("workflow run {id} not found")))
    }

    /// Starts a run and lets its actions go on in the background; the run as started.
    async fn launch(
        &self,
        caller: Principal,
        workflow: Uuid,
        started: Started,
        input: Value,
        rerun_of: Option<Uuid>,
    ) -> Result<WorkflowRun, ServiceError> {
        let run = self
            .engine
            .start(caller.workspace_id, Some(caller.user_id), workflow, started, input, None, rerun_of, false)
            .await?
            .ok_or_else(|| ServiceError::FailedPrecondition("the run was not started".into()))?;
        let id = run.id;
        let engine = self.engine.clone();
        tokio::spawn(async move { engine.finish(run).await });
        self.run(caller.workspace_id, id).await
    }
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn list_workflows(
        &self,
        request: Request<ListWorkflowsRequest>,
    ) -> Result<Response<ListWorkflowsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let page = (request.page_size, request.page_token.as_str());
        let (records, next_page_token) = self.records.list(caller, KIND, page, "created_at", &[]).await?;
        Ok(Response::new(ListWorkflowsResponse {
            workflows: records.iter().map(workflow_of).collect(),
            next_page_token,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<GetWorkflowRequest>,
    ) -> Result<Response<GetWorkflowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let record = self.records.get(caller, KIND, &request.get_ref().id).await?;
        Ok(Response::new(GetWorkflowResponse { workflow: Some(workflow_of(&record)) }))
    }

    async fn create_workflow(
        &self,
        request: Request<CreateWorkflowRequest>,
    ) -> Result<Response<CreateWorkflowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let record = record_of(r.name, r.description, r.trigger, r.actions, r.enabled.unwrap_or(true));
        let record = self.records.create(caller, KIND, record).await?;
        Ok(Response::new(CreateWorkflowResponse { workflow: Some(workflow_of(&record)) }))
    }

    async fn update_workflow(
        &self,
        request: Request<UpdateWorkflowRequest>,
    ) -> Result<Response<UpdateWorkflowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let enabled = match r.enabled {
            Some(enabled) => enabled,
            None => workflow_of(&self.records.get(caller, KIND, &r.id).await?).enabled,
        };
        let record = record_of(r.name, r.description, r.trigger, r.actions, enabled);
        let record = self.records.update(caller, KIND, &r.id, record, false).await?;
        Ok(Response::new(UpdateWorkflowResponse { workflow: Some(workflow_of(&record)) }))
    }

    async fn delete_workflow(
        &self,
        request: Request<DeleteWorkflowRequest>,
    ) -> Result<Response<DeleteWorkflowResponse>, Status> {
        let caller = self.caller(&request).await?;
        self.records.delete(caller, KIND, &request.get_ref().id).await?;
        Ok(Response::new(DeleteWorkflowResponse {}))
    }

    async fn execute_workflow(
        &self,
        request: Request<ExecuteWorkflowRequest>,
    ) -> Result<Response<ExecuteWorkflowResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        // The workflow must be the caller's: NOT_FOUND otherwise.
        let record = self.records.get(caller, KIND, &request.id).await?;
        let id = id_in("id", &text(&record, "id"))?;
        let run = self.launch(caller, id, Started::Manual, object_of(request.input), None).await?;
        Ok(Response::new(ExecuteWorkflowResponse { run: Some(run) }))
    }

    async fn list_workflow_runs(
        &self,
        request: Request<ListWorkflowRunsRequest>,
    ) -> Result<Response<ListWorkflowRunsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let workflow = id_in("id", &request.id)?;
        let paging: Paging<Uuid> = Paging::read(
            format!("workflow-runs:{}:{workflow}", caller.workspace_id),
            request.page_size,
            &request.page_token,
        )?;
        // Run ids are time-ordered (UUID v7): newest first is the highest id first.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE workspace_id = $1 AND workflow_id = $2 AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        );
        let mut runs = with_db_read!(self.engine.db(), pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(caller.workspace_id)).bind(Id(workflow)).bind(paging.after.map(Id)).bind(paging.fetch())
                .fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(run_of).collect::<Result<Vec<_>, _>>())
        })
        .map_err(|e| ServiceError::from(anyhow::Error::from(e)))?;
        let next_page_token = paging.finish(&mut runs, |run| Uuid::parse_str(&run.id).unwrap_or_default());
        Ok(Response::new(ListWorkflowRunsResponse { runs, next_page_token }))
    }

    async fn get_workflow_run(
        &self,
        request: Request<GetWorkflowRunRequest>,
    ) -> Result<Response<GetWorkflowRunResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        Ok(Response::new(GetWorkflowRunResponse { run: Some(self.run(caller.workspace_id, id).await?) }))
    }

    async fn rerun_workflow_run(
        &self,
        request: Request<RerunWorkflowRunRequest>,
    ) -> Result<Response<RerunWorkflowRunResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        let past = self.run(caller.workspace_id, id).await?;
        let workflow = id_in("workflow_id", &past.workflow_id)?;
        let run = self.launch(caller, workflow, Started::Rerun, object_of(past.input), Some(id)).await?;
        Ok(Response::new(RerunWorkflowRunResponse { run: Some(run) }))
    }
}
