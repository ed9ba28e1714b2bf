//! PromptService: prompts (records of the `prompts` kind, through the record engine, so
//! its rules and workspace scoping hold on every way in), their immutable versions with
//! a current pointer, diffs, renders, test runs, and the workspace's provider.
//!
//! Versions live in `prompt_versions`; the prompt row carries the current version's
//! content. A prompt written through the generic records routes (no version row, or
//! content that differs from its current version's) is brought in line before any
//! version is read or written: what the row holds becomes a version of its own, so no
//! edit is lost and no stored version ever changes.

pub mod provider;
pub mod text;

use std::collections::BTreeMap;

use kiln_common::{
    Authenticator, Db, Principal, ServiceError,
    db::{Id, RowExt},
    paging::Paging,
    records::feed::ChangeKind,
    token::TokenKeys,
    with_db, with_db_read,
};
use kiln_proto::v1::{
    CreatePromptRequest, CreatePromptResponse, CreatePromptVersionRequest, CreatePromptVersionResponse,
    DeletePromptProviderRequest, DeletePromptProviderResponse, DeletePromptRequest, DeletePromptResponse,
    DiffPromptVersionsRequest, DiffPromptVersionsResponse, GetPromptProviderRequest, GetPromptProviderResponse,
    GetPromptRequest, GetPromptResponse, GetPromptVersionRequest, GetPromptVersionResponse, ListPromptTestRunsRequest,
    ListPromptTestRunsResponse, ListPromptVersionsRequest, ListPromptVersionsResponse, ListPromptsRequest,
    ListPromptsResponse, Prompt, PromptProvider, PromptTestRun, PromptVersion, SetPromptProviderRequest,
    SetPromptProviderResponse, TestPromptRequest, TestPromptResponse, UpdatePromptRequest, UpdatePromptResponse,
    prompt_service_server::PromptService,
};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    auth::store::{AuditEvent, audit},
    typed::{KindRecords, Record, text as field, time},
    workflows::{api::id_in, outgoing::Outgoing},
};

const KIND: &str = "prompts";
/// Longest change note.
const MAX_NOTE: usize = 500;
/// What a version written through the records routes says it is.
const RECORDS_NOTE: &str = "saved through the records API";

#[derive(Clone)]
pub struct PromptApi {
    pub records: KindRecords,
    pub auth: Authenticator,
    pub db: Db,
    pub outgoing: Outgoing,
    pub keys: TokenKeys,
}

fn prompt_of(record: &Record) -> Prompt {
    Prompt {
        id: field(record, "id"),
        name: field(record, "name"),
        category: field(record, "category"),
        r#type: field(record, "type"),
        content: field(record, "content"),
        // The kind's rules let only readable variables in.
        variables: text::variables("variables", record.get("variables")).unwrap_or_default(),
        current_version: record.get("current_version").and_then(Value::as_f64).unwrap_or(1.0) as i32,
        created_at: time(record, "created_at"),
        updated_at: time(record, "updated_at"),
    }
}

fn version_of(row: &impl RowExt) -> Result<PromptVersion, sqlx::Error> {
    Ok(PromptVersion {
        prompt_id: row.id("prompt_id")?.to_string(),
        version: row.int("version")? as i32,
        content: row.text("content")?,
        variables: text::variables("variables", Some(&row.opt_json("variables")?)).unwrap_or_default(),
        change_note: row.text("change_note")?,
        created_by: row.opt_id("created_by")?.map(|id| id.to_string()).unwrap_or_default(),
        created_at: Some(kiln_common::timestamp(row.time("created_at")?)),
    })
}

const VERSION_COLUMNS: &str = "prompt_id, version, content, variables, change_note, created_by, created_at";

fn test_run_of(row: &impl RowExt) -> Result<PromptTestRun, sqlx::Error> {
    let variables = match row.json("variables")? {
        Value::Object(map) => map.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())).collect(),
        _ => Default::default(),
    };
    Ok(PromptTestRun {
        id: row.id("id")?.to_string(),
        prompt_id: row.id("prompt_id")?.to_string(),
        version: row.int("version")? as i32,
        variables,
        rendered: row.text("rendered")?,
        status: row.text("status")?,
        output: row.text("output")?,
        error: row.text("error")?,
        model: row.text("model")?,
        latency_ms: row.int("latency_ms")?,
        prompt_tokens: row.int("prompt_tokens")? as i32,
        completion_tokens: row.int("completion_tokens")? as i32,
        total_tokens: row.int("total_tokens")? as i32,
        created_by: row.opt_id("created_by")?.map(|id| id.to_string()).unwrap_or_default(),
        created_at: Some(kiln_common::timestamp(row.time("created_at")?)),
    })
}

/// A new row of `prompt_versions`, from both the save path and the adoption of an edit
/// made through the records API.
const INSERT_VERSION: &str = "INSERT INTO prompt_versions \
     (prompt_id, version, workspace_id, content, variables, change_note, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const TEST_RUN_COLUMNS: &str = "id, prompt_id, version, variables, rendered, status, output, error, model, \
     latency_ms, prompt_tokens, completion_tokens, total_tokens, created_by, created_at";

fn database(e: sqlx::Error) -> ServiceError {
    ServiceError::from(anyhow::Error::from(e))
}

/// The answer to an edit made on `base` (None: on whatever was current as it began)
/// when `current` is current.
fn stale(id: Uuid, base: Option<i32>, current: i64) -> ServiceError {
    let since = base.map_or_else(|| "while this save was made".to_string(), |base| format!("since version {base}"));
    ServiceError::Stale {
        message: format!(
            "prompt {id} was saved by someone else {since}: version {current} is current; read it, then save your change on it"
        ),
        subject: "base_version".into(),
        current: format!("version {current} is current"),
    }
}

/// Within a write transaction on `$tx`: makes prompt `$prompt` of workspace `$workspace`
/// agree with its versions (see the module's first lines), and evaluates to
/// `Option<(current, latest)>` (None: no such prompt).
macro_rules! in_line {
    ($tx:expr, $workspace:expr, $prompt:expr) => {
        async {
            let row = sqlx::query(
                "SELECT content, variables, current_version, created_by, updated_at FROM prompts \
                 WHERE id = $1 AND workspace_id = $2",
            )
            .bind(Id($prompt))
            .bind(Id($workspace))
            .fetch_optional(&mut *$tx)
            .await?;
            let Some(row) = row else { return Ok::<_, sqlx::Error>(None) };
            let (content, variables) = (row.text("content")?, row.opt_json("variables")?);
            let pointer: Option<i64> = sqlx::Row::try_get(&row, "current_version")?;
            let current = pointer.unwrap_or(1);
            let stored =
                sqlx::query("SELECT content, variables FROM prompt_versions WHERE prompt_id = $1 AND version = $2")
                    .bind(Id($prompt))
                    .bind(current)
                    .fetch_optional(&mut *$tx)
                    .await?;
            let latest: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM prompt_versions WHERE prompt_id = $1",
            )
            .bind(Id($prompt))
            .fetch_one(&mut *$tx)
            .await?;
            let (version, note) = match stored {
                None => (current, ""),
                Some(stored) if stored.text("content")? == content && stored.opt_json("variables")? == variables => {
                    return Ok(Some((current, latest)));
                }
                Some(_) => (latest + 1, RECORDS_NOTE),
            };
            sqlx::query(INSERT_VERSION)
                .bind(Id($prompt))
                .bind(version)
                .bind(Id($workspace))
                .bind(&content)
                .bind((!variables.is_null()).then(|| sqlx::types::Json(&variables)))
                .bind(note)
                .bind(row.opt_id("created_by")?.map(Id))
                .bind(row.time("updated_at")?)
                .execute(&mut *$tx)
                .await?;
            if pointer != Some(version) {
                sqlx::query("UPDATE prompts SET current_version = $1 WHERE id = $2")
                    .bind(version)
                    .bind(Id($prompt))
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok(Some((version, latest.max(version))))
        }
    };
}

impl PromptApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }

    /// Brings the caller's prompt `id` in line with its versions; its current version.
    async fn current(&self, caller: Principal, id: Uuid) -> Result<i64, ServiceError> {
        let found = with_db!(&self.db, pool => async {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with(self.db.begin_write()).await?;
            let found = in_line!(tx, caller.workspace_id, id).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(found)
        }.await)
        .map_err(database)?;
        found.map(|(current, _)| current).ok_or_else(|| not_found(id))
    }

    /// Version `version` of the caller's prompt `id` (0: the current one).
    async fn version(&self, caller: Principal, id: Uuid, version: i32) -> Result<PromptVersion, ServiceError> {
        if version < 0 {
            return Err(ServiceError::invalid_field("version", "must be 1 or more (0 for the current version)"));
        }
        let current = self.current(caller, id).await?;
        let wanted = if version == 0 { current } else { i64::from(version) };
        let sql = format!("SELECT {VERSION_COLUMNS} FROM prompt_versions WHERE prompt_id = $1 AND version = $2");
        let found = with_db_read!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).bind(wanted).fetch_optional(pool).await {
                Ok(Some(row)) => version_of(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(database)?;
        found.ok_or_else(|| ServiceError::NotFound(format!("prompt {id} has no version {wanted}")))
    }

    /// Writes a new current version of the caller's prompt `id`, unless `base` is given
    /// and no longer current, or another save commits while this one is made.
    async fn add_version(
        &self,
        caller: Principal,
        id: Uuid,
        base: Option<i32>,
        content: &str,
        variables: &Value,
        note: &str,
    ) -> Result<i64, ServiceError> {
        let now = kiln_common::db::now();
        let written = with_db!(&self.db, pool => async {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with(self.db.begin_write()).await?;
            let Some((current, latest)) = in_line!(tx, caller.workspace_id, id).await? else {
                return Ok(Err(Some(not_found(id))));
            };
            if let Some(base) = base.filter(|base| i64::from(*base) != current) {
                return Ok(Err(Some(stale(id, Some(base), current))));
            }
            let version = latest + 1;
            let variables = (!variables.is_null()).then_some(sqlx::types::Json(variables));
            // Only while `current` is still current: a save that committed since this
            // transaction read the prompt (PostgreSQL reads each statement afresh) moved
            // it on, and this one is then the stale one.
            let moved = sqlx::query(
                "UPDATE prompts SET content = $1, variables = $2, current_version = $3, updated_at = $4 \
                 WHERE id = $5 AND workspace_id = $6 AND current_version = $7",
            )
            .bind(content).bind(variables).bind(version).bind(now).bind(Id(id)).bind(Id(caller.workspace_id)).bind(current)
            .execute(&mut *tx).await?.rows_affected();
            if moved == 0 {
                return Ok(Err(None));
            }
            sqlx::query(INSERT_VERSION)
            .bind(Id(id)).bind(version).bind(Id(caller.workspace_id)).bind(content).bind(variables)
            .bind(note).bind(Id(caller.user_id)).bind(now)
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(version))
        }.await);
        match written {
            Ok(Ok(version)) => Ok(version),
            Ok(Err(Some(refused))) => Err(refused),
            // Another save committed in between: it moved the prompt on, or took the
            // same version number.
            Ok(Err(None)) => Err(stale(id, base, self.current(caller, id).await?)),
            Err(e) if kiln_common::db::is_unique_violation(&e) => Err(stale(id, base, self.current(caller, id).await?)),
            Err(e) => Err(database(e)),
        }
    }

    async fn provider_row(&self, workspace: Uuid) -> Result<Option<(PromptProvider, Option<Vec<u8>>)>, ServiceError> {
        with_db_read!(&self.db, pool => {
            let row = sqlx::query("SELECT url, model, sealed_key, key_hint, updated_at FROM prompt_providers WHERE workspace_id = $1")
                .bind(Id(workspace)).fetch_optional(pool).await;
            row.and_then(|row| match row {
                None => Ok(None),
                Some(row) => {
                    let sealed: Option<Vec<u8>> = sqlx::Row::try_get(&row, "sealed_key")?;
                    let provider = PromptProvider {
                        url: row.text("url")?,
                        model: row.text("model")?,
                        has_key: sealed.is_some(),
                        key_hint: row.text("key_hint")?,
                        updated_at: Some(kiln_common::timestamp(row.time("updated_at")?)),
                    };
                    Ok(Some((provider, sealed)))
                }
            })
        })
        .map_err(database)
    }

    /// Renders, calls the provider if there is one, and keeps the test run.
    async fn test(
        &self,
        caller: Principal,
        id: Uuid,
        version: PromptVersion,
        given: BTreeMap<String, String>,
    ) -> Result<PromptTestRun, ServiceError> {
        let rendered = text::render(&version.content, &version.variables, &given).map_err(ServiceError::invalid)?;
        let run_id = Id::new();
        let mut run = PromptTestRun {
            id: run_id.0.to_string(),
            prompt_id: id.to_string(),
            version: version.version,
            variables: given.clone().into_iter().collect(),
            rendered: rendered.clone(),
            created_by: caller.user_id.to_string(),
            ..Default::default()
        };
        match self.provider_row(caller.workspace_id).await? {
            None => {
                run.status = "rendered".into();
                run.error = "no provider is configured for this workspace: the prompt was rendered, not sent \
                             (set one with PUT /api/v1/prompt-provider)"
                    .into();
            }
            Some((provider, sealed)) => {
                run.model = provider.model.clone();
                let key = sealed.map(|sealed| provider::open(&self.keys, &sealed)).transpose();
                let outcome = match key {
                    Ok(key) => {
                        provider::complete(&self.outgoing, &provider.url, &provider.model, key.as_deref(), &rendered)
                            .await
                    }
                    Err(e) => Err((e.to_string(), 0)),
                };
                match outcome {
                    Ok(done) => {
                        run.status = "succeeded".into();
                        run.output = done.output;
                        run.latency_ms = done.latency_ms;
                        run.prompt_tokens = done.prompt_tokens;
                        run.completion_tokens = done.completion_tokens;
                        run.total_tokens = done.total_tokens;
                    }
                    Err((why, latency_ms)) => {
                        run.status = "failed".into();
                        run.error = why;
                        run.latency_ms = latency_ms;
                    }
                }
            }
        }
        metrics::counter!("kiln_prompt_test_runs_total", "status" => run.status.clone()).increment(1);
        let now = kiln_common::db::now();
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO prompt_test_runs (id, workspace_id, prompt_id, version, variables, rendered, status, output, error, \
                 model, latency_ms, prompt_tokens, completion_tokens, total_tokens, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(run_id).bind(Id(caller.workspace_id)).bind(Id(id)).bind(run.version)
            .bind(sqlx::types::Json(&given)).bind(&run.rendered).bind(&run.status).bind(&run.output).bind(&run.error)
            .bind(&run.model).bind(run.latency_ms).bind(run.prompt_tokens).bind(run.completion_tokens)
            .bind(run.total_tokens).bind(Id(caller.user_id)).bind(now)
            .execute(pool).await.map(|_| ())
        })
        .map_err(database)?;
        run.created_at = Some(kiln_common::timestamp(now));
        Ok(run)
    }
}

fn not_found(id: Uuid) -> ServiceError {
    ServiceError::NotFound(format!("prompt {id} not found"))
}

/// The fields of a version a request gives, checked as the kind's rules check them.
fn checked_version(
    content: &str,
    variables: &[kiln_proto::v1::PromptVariable],
    note: &str,
) -> Result<Value, ServiceError> {
    let variables = text::variables_json(variables);
    let mut broken = text::rules(Some(&json!(content)), Some(&variables));
    if content.trim().is_empty() {
        broken.push(kiln_common::error::FieldViolation::new("content", "is required"));
    }
    if note.chars().count() > MAX_NOTE {
        broken.push(kiln_common::error::FieldViolation::new(
            "change_note",
            format!("must be at most {MAX_NOTE} characters"),
        ));
    }
    if broken.is_empty() { Ok(variables) } else { Err(ServiceError::invalid(broken)) }
}

#[tonic::async_trait]
impl PromptService for PromptApi {
    async fn list_prompts(
        &self,
        request: Request<ListPromptsRequest>,
    ) -> Result<Response<ListPromptsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let filter: Vec<(&str, &str)> = match request.category.as_str() {
            "" => Vec::new(),
            category => vec![("category", category)],
        };
        let page = (request.page_size, request.page_token.as_str());
        let (records, next_page_token) = self.records.list(caller, KIND, page, "created_at", &filter).await?;
        Ok(Response::new(ListPromptsResponse { prompts: records.iter().map(prompt_of).collect(), next_page_token }))
    }

    async fn get_prompt(&self, request: Request<GetPromptRequest>) -> Result<Response<GetPromptResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        self.current(caller, id).await?;
        let record = self.records.get(caller, KIND, &id.to_string()).await?;
        Ok(Response::new(GetPromptResponse { prompt: Some(prompt_of(&record)) }))
    }

    async fn create_prompt(
        &self,
        request: Request<CreatePromptRequest>,
    ) -> Result<Response<CreatePromptResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let record = json!({
            "name": r.name,
            "category": (!r.category.is_empty()).then_some(r.category),
            "type": r.r#type,
            "content": r.content,
            "variables": text::variables_json(&r.variables),
            "current_version": 1,
        });
        let record = self.records.create(caller, KIND, record.as_object().cloned().unwrap_or_default()).await?;
        // Version 1 is the record as created.
        self.current(caller, id_in("id", &field(&record, "id"))?).await?;
        Ok(Response::new(CreatePromptResponse { prompt: Some(prompt_of(&record)) }))
    }

    async fn update_prompt(
        &self,
        request: Request<UpdatePromptRequest>,
    ) -> Result<Response<UpdatePromptResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut changes = Record::new();
        for (name, value) in [("name", r.name), ("category", r.category), ("type", r.r#type)] {
            if let Some(value) = value {
                changes.insert(name.into(), json!(value));
            }
        }
        let record = self.records.update(caller, KIND, &r.id, changes, true).await?;
        Ok(Response::new(UpdatePromptResponse { prompt: Some(prompt_of(&record)) }))
    }

    async fn delete_prompt(
        &self,
        request: Request<DeletePromptRequest>,
    ) -> Result<Response<DeletePromptResponse>, Status> {
        let caller = self.caller(&request).await?;
        // Its versions and test runs go with it (foreign keys).
        self.records.delete(caller, KIND, &request.get_ref().id).await?;
        Ok(Response::new(DeletePromptResponse {}))
    }

    async fn create_prompt_version(
        &self,
        request: Request<CreatePromptVersionRequest>,
    ) -> Result<Response<CreatePromptVersionResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = id_in("id", &r.id)?;
        // Whose prompt it is decides first: another workspace's is not found, whatever the edit.
        let before = self.records.get(caller, KIND, &r.id).await?;
        // An edit of the text alone keeps the variables the prompt declares: a version
        // that dropped them could not render the text it was saved with.
        let declared = if r.variables.is_empty() { prompt_of(&before).variables } else { r.variables };
        let variables = checked_version(&r.content, &declared, &r.change_note)?;
        let version = self.add_version(caller, id, r.base_version, &r.content, &variables, &r.change_note).await?;
        let after = self.records.get(caller, KIND, &r.id).await?;
        self.records.announce(caller, KIND, ChangeKind::Updated, Some(before), Some(after)).await;
        let version = self.version(caller, id, version as i32).await?;
        Ok(Response::new(CreatePromptVersionResponse { version: Some(version) }))
    }

    async fn list_prompt_versions(
        &self,
        request: Request<ListPromptVersionsRequest>,
    ) -> Result<Response<ListPromptVersionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = id_in("id", &r.id)?;
        let paging: Paging<i64> = Paging::read(format!("prompt-versions:{id}"), r.page_size, &r.page_token)?;
        self.current(caller, id).await?;
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM prompt_versions WHERE prompt_id = $1 AND workspace_id = $2 \
             AND ($3 IS NULL OR version < $3) ORDER BY version DESC LIMIT $4"
        );
        let mut versions = with_db_read!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(id)).bind(Id(caller.workspace_id)).bind(paging.after).bind(paging.fetch())
                .fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(version_of).collect::<Result<Vec<_>, _>>())
        })
        .map_err(database)?;
        let next_page_token = paging.finish(&mut versions, |v| i64::from(v.version));
        Ok(Response::new(ListPromptVersionsResponse { versions, next_page_token }))
    }

    async fn get_prompt_version(
        &self,
        request: Request<GetPromptVersionRequest>,
    ) -> Result<Response<GetPromptVersionResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        let version = self.version(caller, id, request.get_ref().version).await?;
        Ok(Response::new(GetPromptVersionResponse { version: Some(version) }))
    }

    async fn diff_prompt_versions(
        &self,
        request: Request<DiffPromptVersionsRequest>,
    ) -> Result<Response<DiffPromptVersionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = id_in("id", &r.id)?;
        self.current(caller, id).await?;
        if r.from < 1 {
            return Err(ServiceError::invalid_field("from", "must name a version (1 or more)").into());
        }
        let (from, to) = (self.version(caller, id, r.from).await?, self.version(caller, id, r.to).await?);
        let (lines, unified) = text::diff(
            &from.content,
            &to.content,
            &format!("version {}", from.version),
            &format!("version {}", to.version),
        );
        let names = |v: &PromptVersion| v.variables.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        let (old, new) = (names(&from), names(&to));
        Ok(Response::new(DiffPromptVersionsResponse {
            from: from.version,
            to: to.version,
            lines,
            unified,
            variables_added: new.iter().filter(|n| !old.contains(n)).cloned().collect(),
            variables_removed: old.iter().filter(|n| !new.contains(n)).cloned().collect(),
        }))
    }

    async fn test_prompt(&self, request: Request<TestPromptRequest>) -> Result<Response<TestPromptResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = id_in("id", &r.id)?;
        let version = self.version(caller, id, r.version).await?;
        let run = self.test(caller, id, version, r.variables.into_iter().collect()).await?;
        Ok(Response::new(TestPromptResponse { rendered: run.rendered.clone(), run: Some(run) }))
    }

    async fn list_prompt_test_runs(
        &self,
        request: Request<ListPromptTestRunsRequest>,
    ) -> Result<Response<ListPromptTestRunsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = id_in("id", &r.id)?;
        let paging: Paging<Uuid> = Paging::read(format!("prompt-test-runs:{id}"), r.page_size, &r.page_token)?;
        // The prompt must be the caller's: NOT_FOUND otherwise.
        self.records.get(caller, KIND, &r.id).await?;
        // Run ids are time-ordered (UUID v7): newest first is the highest id first.
        let sql = format!(
            "SELECT {TEST_RUN_COLUMNS} FROM prompt_test_runs WHERE prompt_id = $1 AND workspace_id = $2 \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let mut runs = with_db_read!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(id)).bind(Id(caller.workspace_id)).bind(paging.after.map(Id)).bind(paging.fetch())
                .fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(test_run_of).collect::<Result<Vec<_>, _>>())
        })
        .map_err(database)?;
        let next_page_token = paging.finish(&mut runs, |run| Uuid::parse_str(&run.id).unwrap_or_default());
        Ok(Response::new(ListPromptTestRunsResponse { runs, next_page_token }))
    }

    async fn get_prompt_provider(
        &self,
        request: Request<GetPromptProviderRequest>,
    ) -> Result<Response<GetPromptProviderResponse>, Status> {
        let caller = self.caller(&request).await?;
        let provider = self.provider_row(caller.workspace_id).await?.map(|(provider, _)| provider);
        Ok(Response::new(GetPromptProviderResponse { provider }))
    }

    async fn set_prompt_provider(
        &self,
        request: Request<SetPromptProviderRequest>,
    ) -> Result<Response<SetPromptProviderResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut broken = Vec::new();
        if let Err(why) = crate::workflows::outgoing::url_error(&r.url) {
            broken.push(kiln_common::error::FieldViolation::new("url", why));
        }
        if r.model.trim().is_empty() || r.model.chars().count() > 200 {
            broken
                .push(kiln_common::error::FieldViolation::new("model", "must be a model name of 1 to 200 characters"));
        }
        if r.key.as_ref().is_some_and(|key| key.len() > 4096) {
            broken.push(kiln_common::error::FieldViolation::new("key", "must be at most 4096 bytes"));
        }
        if !broken.is_empty() {
            return Err(ServiceError::invalid(broken).into());
        }
        // A key given replaces the kept one ("" removes it); none given keeps it.
        let sealed = match r.key.as_deref() {
            None => None,
            Some("") => Some((None, String::new())),
            Some(key) => {
                Some((Some(provider::seal(&self.keys, key).map_err(ServiceError::from)?), provider::hint(key)))
            }
        };
        let now = kiln_common::db::now();
        with_db!(&self.db, pool => {
            let statement = match &sealed {
                None => sqlx::query(
                    "INSERT INTO prompt_providers (workspace_id, url, model, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (workspace_id) DO UPDATE SET url = excluded.url, model = excluded.model, \
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                ),
                Some(_) => sqlx::query(
                    "INSERT INTO prompt_providers (workspace_id, url, model, updated_by, updated_at, sealed_key, key_hint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (workspace_id) DO UPDATE SET url = excluded.url, model = excluded.model, \
                     updated_by = excluded.updated_by, updated_at = excluded.updated_at, \
                     sealed_key = excluded.sealed_key, key_hint = excluded.key_hint",
                ),
            };
            let statement = statement.bind(Id(caller.workspace_id)).bind(&r.url).bind(r.model.trim()).bind(Id(caller.user_id)).bind(now);
            let statement = match &sealed {
                None => statement,
                Some((key, hint)) => statement.bind(key.clone()).bind(hint.clone()),
            };
            statement.execute(pool).await.map(|_| ())
        })
        .map_err(database)?;
        let detail = json!({ "url": r.url, "model": r.model, "key_changed": sealed.is_some() });
        let event = AuditEvent {
            action: "prompt_provider.set",
            outcome: "ok",
            user_id: Some(caller.user_id),
            workspace_id: Some(caller.workspace_id),
            detail,
        };
        audit(&self.db, event).await;
        let provider = self.provider_row(caller.workspace_id).await?.map(|(provider, _)| provider);
        Ok(Response::new(SetPromptProviderResponse { provider }))
    }

    async fn delete_prompt_provider(
        &self,
        request: Request<DeletePromptProviderRequest>,
    ) -> Result<Response<DeletePromptProviderResponse>, Status> {
        let caller = self.caller(&request).await?;
        let deleted = with_db!(&self.db, pool => {
            sqlx::query("DELETE FROM prompt_providers WHERE workspace_id = $1").bind(Id(caller.workspace_id)).execute(pool).await.map(|done| done.rows_affected())
        })
        .map_err(database)?;
        if deleted == 0 {
            return Err(ServiceError::NotFound("no prompt provider is configured".into()).into());
        }
        let event = AuditEvent {
            action: "prompt_provider.deleted",
            outcome: "ok",
            user_id: Some(caller.user_id),
            workspace_id: Some(caller.workspace_id),
            detail: json!({}),
        };
        audit(&self.db, event).await;
        Ok(Response::new(DeletePromptProviderResponse {}))
    }
}
