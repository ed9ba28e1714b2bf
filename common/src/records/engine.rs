//! The record engine: create, read, update, delete and list the records of one model,
//! limited to the caller's workspace, for whichever service owns them. The owner says
//! where models and their rows are through a [`ModelSource`]; the engine checks values
//! with the codec, builds every statement (every identifier from a checked spec and
//! quoted, every value bound) and reads rows back. A call that finds its model changed
//! by another process is run once more on a fresh one. Paging is keyset on (sort column,
//! id): no OFFSET scans and no COUNT(*). Reads use SQLite's readers, writes its writer.

use chrono::{DateTime, Utc};
use kiln_proto::{
    v1::{
        CreateEntityRequest, CreateEntityResponse, DeleteEntityRequest, DeleteEntityResponse, GetEntityRequest,
        GetEntityResponse, ImportEntitiesRequest, ImportEntitiesResponse, ListEntitiesRequest, ListEntitiesResponse,
        RowError, UpdateEntityRequest, UpdateEntityResponse,
    },
    wkt::{Struct, Value as WktValue, value::Kind},
};
use serde_json::{Map, Value};
use sqlx::PgPool;
use std::{future::Future, sync::Arc};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    Db, Principal, ServiceError, bind_values,
    db::{Id, SqliteBinds, SqlitePools},
    error::FieldViolation,
    events::Event,
    paging::{self, Paging},
    records::{
        codec::{self, RecordRow, SqlValue, Write, check_record, check_value},
        feed::{ChangeFeed, ChangeKind, RecordChange},
        fields::{Constraint, Dialect, FieldSpec, FieldType},
        names::{self, Ident},
    },
};

/// Connections to the tables holding a model's records.
#[derive(Debug, Clone)]
pub enum RecordPool {
    Postgres(PgPool),
    Sqlite(SqlitePools),
}

impl From<&Db> for RecordPool {
    fn from(db: &Db) -> Self {
        match db {
            Db::Postgres(pool) => RecordPool::Postgres(pool.clone()),
            Db::Sqlite(pools) => RecordPool::Sqlite(pools.clone()),
        }
    }
}

/// A model ready for records calls: its field specs parsed once, with where its
/// records are and its select list.
#[derive(Debug)]
pub struct CompiledModel {
    pub id: Id,
    pub version: i32,
    pub plural: Ident,
    pub specs: Vec<FieldSpec>,
    pub place: Placement,
    /// The columns of a record, decimals read as text on PostgreSQL (see `codec`).
    pub select_list: String,
}

/// A column everyone can sort and filter by, beyond the model's fields.
pub fn system_column(name: &str) -> Option<FieldType> {
    match name {
        "id" | "created_by" => Some(FieldType::Uuid),
        "created_at" | "updated_at" => Some(FieldType::DateTime),
        _ => None,
    }
}

/// Where a model's records are and how they are shared.
#[derive(Debug)]
pub struct Placement {
    /// Quoted (and schema-qualified) for SQL.
    pub table: String,
    /// Bare, for reading constraint names.
    pub table_name: String,
    pub dialect: Dialect,
    /// Whether the table holds every workspace's rows (a `workspace_id` column), so that
    /// every statement is limited to the caller's workspace.
    pub shared_table: bool,
    /// The table whose row (`id`, `version`) says this model is current, where another
    /// process may change the model (see [`CompiledModel::guarded`]); quoted.
    pub versions_table: Option<String>,
}

impl CompiledModel {
    pub fn new(id: Id, version: i32, plural: Ident, specs: Vec<FieldSpec>, placement: Placement) -> Self {
        let mut columns: Vec<String> = codec::SYSTEM_COLUMNS.iter().map(|c| crate::db::quote_ident(c)).collect();
        for spec in &specs {
            let column = spec.name.quoted();
            columns.push(match (placement.dialect, spec.ty) {
                // Its exact text, scale and all (see `codec`).
                (Dialect::Postgres, FieldType::Decimal) => format!("{column}::text AS {column}"),
                _ => column,
            });
        }
        CompiledModel { id, version, plural, specs, place: placement, select_list: columns.join(", ") }
    }

    /// The answer for a record `id` (as sent) that is not there.
    fn no_record(&self, id: &str) -> ServiceError {
        ServiceError::NotFound(format!("no {} record `{id}`", self.plural))
    }

    /// The record id as sent, checked; an id that is no UUID names no record.
    fn record_id(&self, id: &str) -> Result<Id, ServiceError> {
        uuid::Uuid::parse_str(id.trim()).map(Id).map_err(|_| self.no_record(id))
    }

    /// ` WHERE …` picking the record `id` of the caller's workspace while the model is
    /// current, binding its values after those already in `bound`.
    fn where_record(&self, workspace: Id, id: Id, bound: &mut Vec<SqlValue>) -> String {
        bound.push(SqlValue::Uuid(id));
        let mut conditions = vec![format!("\"id\" = ${}", bound.len())];
        conditions.extend(self.scope_condition(workspace, bound));
        let guard = self.guard(bound);
        where_clause(conditions, guard)
    }

    /// `"workspace_id" = $n` for shared tables (binding the workspace).
    fn scope_condition(&self, workspace: Id, bound: &mut Vec<SqlValue>) -> Option<String> {
        if !self.place.shared_table {
            return None;
        }
        bound.push(SqlValue::Uuid(workspace));
        Some(format!("\"workspace_id\" = ${}", bound.len()))
    }

    /// Whether statements on this model carry a version guard (see `guard`).
    pub fn guarded(&self) -> bool {
        self.place.versions_table.is_some()
    }

    /// A condition true only while the model is still at this version (binding id and
    /// version), where another process may have changed it; nothing where the caller's
    /// locks are enough.
    fn guard(&self, bound: &mut Vec<SqlValue>) -> Option<String> {
        let versions = self.place.versions_table.as_deref()?;
        bound.push(SqlValue::Uuid(self.id));
        bound.push(SqlValue::Int(i64::from(self.version)));
        Some(format!(
            "EXISTS (SELECT 1 FROM {versions} WHERE \"id\" = ${} AND \"version\" = ${})",
            bound.len() - 1,
            bound.len()
        ))
    }

    /// The type of a sortable or filterable column, by name.
    fn column_type(&self, name: &str) -> Option<(Ident, FieldType, Option<&FieldSpec>)> {
        if let Some(ty) = system_column(name) {
            return Some((names::plural_ref(name).ok()?, ty, None));
        }
        self.specs.iter().find(|s| s.name.as_str() == name).map(|s| (s.name.clone(), s.ty, Some(s)))
    }
}

/// Where the engine finds a workspace's models and their rows: each owner of records
/// has one.
#[tonic::async_trait]
pub trait ModelSource: Send + Sync {
    /// Held from a call's lookup of its model to its last statement, so that a change
    /// to the workspace's models (which holds it exclusively) never lands half seen.
    type Hold: Send;
    async fn hold(&self, workspace: Uuid) -> Self::Hold;
    /// The workspace's model with this plural; `None` if it has none.
    async fn model(&self, workspace: Uuid, plural: &str) -> Result<Option<Arc<CompiledModel>>, ServiceError>;
    /// The connections holding the model's records.
    async fn pool(&self, workspace: Uuid, model: &CompiledModel) -> Result<RecordPool, ServiceError>;
    /// Whether a guarded model is still the stored version (false if it is gone).
    async fn is_current(&self, model: &CompiledModel) -> Result<bool, ServiceError>;
    /// Drops what is kept of the workspace's models: they changed.
    fn forget(&self, workspace: Uuid);
    /// The rules of a kind beyond its fields' own, over the fields a write gives
    /// (`record`, whose values have passed the fields' checks): every one broken.
    fn rules(&self, _model: &CompiledModel, _record: &Map<String, Value>) -> Vec<FieldViolation> {
        Vec::new()
    }
}

/// Encoded size past which a page ends early (below gRPC's 4 MiB message limit).
const LIST_BYTES: usize = 2 << 20;

/// The records calls over one owner's models.
#[derive(Debug, Clone)]
pub struct Records<S> {
    source: S,
    /// Where committed changes are announced, for watchers.
    feed: Option<ChangeFeed>,
}

/// A record's id, as its Struct carries it.
fn record_id(record: &Struct) -> String {
    match record.fields.get("id").and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(id)) => id.clone(),
        _ => String::new(),
    }
}

/// What one try of a call came to.
enum Tried<T> {
    Done(T),
    /// The model was changed by another process since it was compiled.
    Stale,
}

/// A span of one statement on a model's table, named by OpenTelemetry's database
/// conventions (`INSERT ent_invoices`). The statement's text is left out: its shape is in
/// the name, and its values, bound, never appear.
fn statement_span(operation: &'static str, place: &Placement) -> tracing::Span {
    let system = match place.dialect {
        Dialect::Postgres => "postgresql",
        Dialect::Sqlite => "sqlite",
    };
    tracing::info_span!(
        "db",
        otel.name = format!("{operation} {}", place.table_name),
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = operation,
        db.collection.name = place.table_name.as_str(),
    )
}

/// Where a write statement runs.
enum WriteOn<'a> {
    /// Committed on its own: on PostgreSQL on the pool, on SQLite through the file's
    /// group commit, which commits the writes that queue for the single writer together.
    Alone(&'a RecordPool),
    /// In an open transaction (an import's rows, which commit together).
    Postgres(&'a mut sqlx::PgConnection),
    Sqlite(&'a mut sqlx::SqliteConnection),
}

/// Runs one write statement (`sql` with its values `bound`) where `on` says and reads
/// its rows with `each`.
async fn write_rows<T>(
    on: WriteOn<'_>,
    sql: String,
    bound: Vec<SqlValue>,
    each: impl Fn(&dyn RecordRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    match on {
        WriteOn::Alone(RecordPool::Postgres(pg)) => {
            let rows = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).fetch_all(pg).await?;
            rows.iter().map(|row| each(row)).collect()
        }
        WriteOn::Alone(RecordPool::Sqlite(lite)) => {
            let bind = Box::new(move |binds: SqliteBinds| bind_values!(binds, &bound));
            let rows = lite.writes.fetch_all(sql, bind).await?;
            rows.iter().map(|row| each(row)).collect()
        }
        WriteOn::Postgres(conn) => {
            let rows = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).fetch_all(conn).await?;
            rows.iter().map(|row| each(row)).collect()
        }
        WriteOn::Sqlite(conn) => {
            let rows = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).fetch_all(conn).await?;
            rows.iter().map(|row| each(row)).collect()
        }
    }
}

/// An open transaction an import writes its rows in.
enum Open<'a> {
    Postgres(&'a mut sqlx::PgConnection),
    Sqlite(&'a mut sqlx::SqliteConnection),
}

impl Open<'_> {
    fn on(&mut self) -> WriteOn<'_> {
        match self {
            Open::Postgres(conn) => WriteOn::Postgres(conn),
            Open::Sqlite(conn) => WriteOn::Sqlite(conn),
        }
    }
}

/// Runs the same block against whichever pool a workspace has, for a block that only
/// reads: on SQLite, its readers.
macro_rules! with_ws_read {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            RecordPool::Postgres($p) => $body,
            RecordPool::Sqlite($crate::db::SqlitePools { reader: $p, .. }) => $body,
        }
    };
}

/// Whether the shared table `table` (quoted) holds the row `id` of `workspace`.
async fn in_workspace(pool: &RecordPool, table: &str, id: Id, workspace: Id) -> Result<bool, ServiceError> {
    let sql = format!("SELECT 1 FROM {table} WHERE \"id\" = $1 AND \"workspace_id\" = $2");
    Ok(with_ws_read!(pool, pool => {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(workspace).fetch_optional(pool).await?.is_some()
    }))
}

/// `WHERE` with `conditions` and the model's version guard, if any.
fn where_clause(mut conditions: Vec<String>, guard: Option<String>) -> String {
    conditions.extend(guard);
    if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) }
}

/// A statement's error: a column or table it names is gone (PostgreSQL 42703, 42P01)
/// when the model changed under it; anything else is mapped by `map`.
fn stale_or<T>(e: sqlx::Error, map: impl FnOnce(sqlx::Error) -> ServiceError) -> Result<Tried<T>, ServiceError> {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42703" | "42P01")) => Ok(Tried::Stale),
        _ => Err(map(e)),
    }
}

/// A row as the record a Struct carries, built directly (no JSON round trip).
fn row_to_struct(row: &(impl RecordRow + ?Sized), specs: &[FieldSpec]) -> Result<Struct, sqlx::Error> {
    let mut fields = std::collections::HashMap::with_capacity(codec::SYSTEM_COLUMNS.len() + specs.len());
    for column in codec::SYSTEM_COLUMNS {
        let ty = system_column(column).unwrap_or(FieldType::Text);
        fields.insert(column.to_string(), proto_value(row.value(column, ty)?));
    }
    for spec in specs {
        fields.insert(spec.name.to_string(), proto_value(row.value(spec.name.as_str(), spec.ty)?));
    }
    Ok(Struct::from(fields))
}

/// A JSON value as a Struct carries it.
fn proto_value(value: Value) -> WktValue {
    match value {
        Value::Null => WktValue::from(()),
        Value::Bool(b) => b.into(),
        Value::Number(n) => n.as_f64().unwrap_or_default().into(),
        Value::String(s) => s.into(),
        Value::Array(items) => items.into_iter().map(proto_value).collect::<Vec<_>>().into(),
        Value::Object(map) => {
            map.into_iter().map(|(k, v)| (k, proto_value(v))).collect::<std::collections::HashMap<_, _>>().into()
        }
    }
}

/// A Struct's value as JSON, for page tokens.
fn json_value(value: Option<&WktValue>) -> Value {
    match value.and_then(|v| v.kind.as_ref()) {
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        _ => Value::Null,
    }
}

fn from_struct(record: Option<Struct>) -> Result<Map<String, Value>, ServiceError> {
    match serde_json::to_value(record.unwrap_or_default()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ServiceError::invalid_field("record", "must be an object")),
    }
}

/// A write's database error, told in the client's terms where the client caused it.
fn write_error(e: sqlx::Error, target: &CompiledModel, written: &[&FieldSpec]) -> ServiceError {
    let sqlx::Error::Database(db) = &e else { return e.into() };
    // The field whose named constraint failed: PostgreSQL names the constraint; SQLite
    // names a CHECK's constraint in its message and a UNIQUE's column.
    let message = db.message();
    let constraint = db
        .constraint()
        .map(str::to_string)
        .or_else(|| message.strip_prefix("CHECK constraint failed: ").map(str::to_string));
    let field_of = |kind: Constraint| -> Option<String> {
        let constraint = constraint.as_deref()?;
        target
            .specs
            .iter()
            .find(|s| kind.name(&target.place.table_name, s.name.as_str()) == constraint)
            .map(|s| s.name.to_string())
    };
    if db.is_unique_violation() {
        let field = field_of(Constraint::Unique)
            .or_else(|| message.rsplit_once('.').map(|(_, col)| col.to_string()))
            .filter(|f| target.specs.iter().any(|s| s.name.as_str() == f));
        let message = match &field {
            Some(field) => format!("another record already has this {field}"),
            None => "another record already has these values".to_string(),
        };
        return ServiceError::AlreadyExists { message, field };
    }
    if db.is_foreign_key_violation() {
        let field = field_of(Constraint::ForeignKey)
            .or_else(|| written.iter().find(|s| s.ty == FieldType::Relation).map(|s| s.name.to_string()))
            .unwrap_or_else(|| "relation".to_string());
        return ServiceError::invalid_field(field, "points at no record of the target model");
    }
    if db.is_check_violation() {
        return match field_of(Constraint::Check) {
            Some(field) => ServiceError::invalid_field(field, "breaks a rule of the field"),
            None => ServiceError::invalid_field("record", "breaks a rule of the model"),
        };
    }
    e.into()
}

/// Most rows one import call takes: all of them are checked before any is written.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// The system columns a new record is written with: its own for a create, those an
/// export gave for an import.
struct Kept {
    id: Id,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_by: Option<Id>,
}

impl Kept {
    /// A new record's: a new id, made now by the caller.
    fn new(principal: Principal) -> Self {
        let now = crate::db::now();
        Kept { id: Id::new(), created_at: now, updated_at: now, created_by: Some(Id(principal.user_id)) }
    }
}

/// The values a write gives, by field index, checked.
type Checked = Vec<(usize, SqlValue)>;

/// Whose an existing record id is.
enum Whose {
    Caller,
    Other,
}

/// A row's line number as the contract carries it.
fn line_number(line: usize) -> i32 {
    i32::try_from(line).unwrap_or(i32::MAX)
}

/// A row's field violation as a call's: its field prefixed with the row's line.
fn on_line(line: i32, violation: FieldViolation) -> FieldViolation {
    FieldViolation::new(format!("line {line}: {}", violation.field), violation.description)
}

/// An error met writing the row at `line`, saying the line.
fn at_line(line: i32, e: ServiceError) -> ServiceError {
    match e {
        ServiceError::InvalidArgument { violations, .. } => {
            ServiceError::invalid(violations.into_iter().map(|v| on_line(line, v)).collect())
        }
        ServiceError::AlreadyExists { message, field } => {
            ServiceError::AlreadyExists { message: format!("line {line}: {message}"), field }
        }
        other => other,
    }
}

impl<S: ModelSource> Records<S> {
    pub fn new(source: S) -> Self {
        Records { source, feed: None }
    }

    /// Announces each committed create, update and delete on `feed`.
    pub fn with_feed(mut self, feed: ChangeFeed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Tells watchers and the event bus (through the feed's outbox) about a committed
    /// change, with the record before and after it where they apply. Also for a kind's
    /// own service, when it writes a record in a transaction of its own.
    pub async fn announce(
        &self,
        principal: Principal,
        model: &str,
        id: &str,
        kind: ChangeKind,
        before: Option<&Struct>,
        after: Option<&Struct>,
    ) {
        if let Some(feed) = &self.feed {
            // The model as watchers name it: its plural, normalised (it was found by it).
            let model = names::plural_ref(model).map_or_else(|_| model.to_string(), |plural| plural.to_string());
            let (workspace, id) = (principal.workspace_id, id.to_string());
            let event = Event::new(workspace, kind.event_kind(), &model, &id, Some(principal.user_id))
                .with_before(before.and_then(|record| serde_json::to_value(record).ok()))
                .with_after(after.and_then(|record| serde_json::to_value(record).ok()));
            feed.publish(RecordChange { workspace, model, id, kind }, event).await;
        }
    }

    /// Whether committed changes are announced (an update then reads its record first,
    /// for the event's `before`).
    fn announces(&self) -> bool {
        self.feed.as_ref().is_some_and(ChangeFeed::has_outbox)
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// Runs `attempt` on the caller's model `key` (a plural) while holding what the source
    /// says to hold; once more on a fresh lookup if the model changed in another process.
    async fn on_model<T, F, Fut>(&self, principal: Principal, key: &str, attempt: F) -> Result<T, ServiceError>
    where
        F: Fn(Arc<CompiledModel>, RecordPool, Id) -> Fut,
        Fut: Future<Output = Result<Tried<T>, ServiceError>>,
    {
        let not_found = || ServiceError::NotFound(format!("no model `{key}` in this workspace"));
        let plural = names::plural_ref(key).map_err(|_| not_found())?;
        let workspace = principal.workspace_id;
        for _ in 0..2 {
            let _held = self.source.hold(workspace).await;
            let model = self.source.model(workspace, plural.as_str()).await?.ok_or_else(not_found)?;
            let pool = self.source.pool(workspace, &model).await?;
            match attempt(model.clone(), pool, Id(workspace)).await {
                Ok(Tried::Done(result)) => return Ok(result),
                Ok(Tried::Stale) => self.source.forget(workspace),
                // A refusal may come from rules another process has since changed (a field
                // renamed there is "not a field" here): worth one look, on the error path only.
                Err(e) => {
                    let guarded = model.guarded();
                    if !guarded || self.source.is_current(&model).await.unwrap_or(true) {
                        return Err(e);
                    }
                    self.source.forget(workspace);
                }
            }
        }
        Err(ServiceError::Unavailable("the model is being changed; retry shortly".into()))
    }

    /// The row a statement on the record `id` came back with; with none, the record is
    /// not there, or (where the guard may have failed) the model moved on.
    async fn found_or_missing<T>(
        &self,
        model: &CompiledModel,
        found: Option<T>,
        id: &str,
    ) -> Result<Tried<T>, ServiceError> {
        match found {
            Some(found) => Ok(Tried::Done(found)),
            None if model.guarded() && !self.source.is_current(model).await? => Ok(Tried::Stale),
            None => Err(model.no_record(id)),
        }
    }

    /// The values `record` writes, once they pass the fields' checks and the kind's rules.
    fn checked(
        &self,
        model: &CompiledModel,
        record: &Map<String, Value>,
        write: Write,
    ) -> Result<Checked, ServiceError> {
        let values = check_record(&model.specs, record, write).map_err(ServiceError::invalid)?;
        let broken = self.source.rules(model, record);
        if broken.is_empty() { Ok(values) } else { Err(ServiceError::invalid(broken)) }
    }

    /// Relation values of a record in a shared table must point into the same workspace:
    /// the tables' foreign keys alone would accept another workspace's ids.
    async fn check_scoped_relations(
        &self,
        model: &CompiledModel,
        pool: &RecordPool,
        workspace: Id,
        values: &[(usize, SqlValue)],
    ) -> Result<(), ServiceError> {
        if !model.place.shared_table {
            return Ok(());
        }
        for (i, value) in values {
            let spec = &model.specs[*i];
            let (Some(relation), SqlValue::Uuid(id)) = (&spec.relation, value) else { continue };
            if !in_workspace(pool, &relation.target.quoted(), *id, workspace).await? {
                return Err(ServiceError::invalid_field(spec.name.as_str(), "points at no record of the target model"));
            }
        }
        Ok(())
    }

    pub async fn create(
        &self,
        principal: Principal,
        req: CreateEntityRequest,
    ) -> Result<CreateEntityResponse, ServiceError> {
        let record = from_struct(req.record)?;
        let record = self
            .on_model(principal, &req.model, |model, pool, workspace| {
                self.create_once(principal, model, pool, workspace, &record)
            })
            .await?;
        self.announce(principal, &req.model, &record_id(&record), ChangeKind::Created, None, Some(&record)).await;
        Ok(CreateEntityResponse { record: Some(record) })
    }

    async fn create_once(
        &self,
        principal: Principal,
        model: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        record: &Map<String, Value>,
    ) -> Result<Tried<Struct>, ServiceError> {
        let values = self.checked(&model, record, Write::Create)?;
        let kept = Kept::new(principal);
        self.insert_once(&model, &pool, WriteOn::Alone(&pool), workspace, &kept, values).await
    }

    /// Inserts a record of checked `values` with the system columns `kept`, where `on`
    /// says (`pool` is where its relations are checked).
    async fn insert_once(
        &self,
        model: &CompiledModel,
        pool: &RecordPool,
        on: WriteOn<'_>,
        workspace: Id,
        kept: &Kept,
        values: Checked,
    ) -> Result<Tried<Struct>, ServiceError> {
        self.check_scoped_relations(model, pool, workspace, &values).await?;
        let written: Vec<&FieldSpec> = values.iter().map(|(i, _)| &model.specs[*i]).collect();
        let mut columns =
            vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into(), "\"created_by\"".into()];
        columns.extend(written.iter().map(|s| s.name.quoted()));
        if model.place.shared_table {
            columns.push("\"workspace_id\"".into());
        }
        let mut bound = vec![
            SqlValue::Uuid(kept.id),
            SqlValue::DateTime(kept.created_at),
            SqlValue::DateTime(kept.updated_at),
            kept.created_by.map_or(SqlValue::Null(FieldType::Uuid), SqlValue::Uuid),
        ];
        bound.extend(values.into_iter().map(|(_, v)| v));
        if model.place.shared_table {
            bound.push(SqlValue::Uuid(workspace));
        }
        let placeholders: Vec<String> =
            bound.iter().enumerate().map(|(i, value)| value.placeholder(i + 1, model.place.dialect)).collect();
        // With a guard, INSERT … SELECT … WHERE inserts nothing once the model moved on.
        let source = match model.guard(&mut bound) {
            Some(guard) => format!("SELECT {} WHERE {guard}", placeholders.join(", ")),
            None => format!("VALUES ({})", placeholders.join(", ")),
        };
        let sql = format!(
            "INSERT INTO {} ({}) {source} RETURNING {}",
            model.place.table,
            columns.join(", "),
            model.select_list
        );
        let span = statement_span("INSERT", &model.place);
        match write_rows(on, sql, bound, |row| row_to_struct(row, &model.specs)).instrument(span).await {
            Ok(rows) => Ok(rows.into_iter().next().map_or(Tried::Stale, Tried::Done)),
            Err(e) => stale_or(e, |e| write_error(e, model, &written)),
        }
    }

    /// Imports rows as they were exported (see `ImportEntities` in the contract): every
    /// row checked first; then each written with the id and times it gives, unless the
    /// workspace has its id already.
    pub async fn import(
        &self,
        principal: Principal,
        mut req: ImportEntitiesRequest,
    ) -> Result<ImportEntitiesResponse, ServiceError> {
        if !req.csv.is_empty() && !req.records.is_empty() {
            return Err(ServiceError::invalid_field("csv", "give the rows as records or as csv, not both"));
        }
        let mut given = Vec::with_capacity(req.records.len());
        for (i, record) in std::mem::take(&mut req.records).into_iter().enumerate() {
            given.push((line_number(i + 1), from_struct(Some(record))?, Vec::new()));
        }
        let (answer, created) = self
            .on_model(principal, &req.model, |model, pool, workspace| {
                self.import_once(principal, model, pool, workspace, &req, &given)
            })
            .await?;
        for record in &created {
            self.announce(principal, &req.model, &record_id(record), ChangeKind::Created, None, Some(record)).await;
        }
        Ok(answer)
    }

    async fn import_once(
        &self,
        principal: Principal,
        model: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        req: &ImportEntitiesRequest,
        given: &[codec::CsvRow],
    ) -> Result<Tried<(ImportEntitiesResponse, Vec<Struct>)>, ServiceError> {
        let parsed;
        let rows = if req.csv.is_empty() {
            given
        } else {
            parsed = codec::csv_rows(&model.specs, &req.csv).map_err(|why| ServiceError::invalid_field("csv", why))?;
            &parsed[..]
        };
        if rows.is_empty() {
            return Err(ServiceError::invalid_field("records", "give at least one row"));
        }
        if rows.len() > MAX_IMPORT_ROWS {
            return Err(ServiceError::invalid_field(
                "records",
                format!("at most {MAX_IMPORT_ROWS} rows per call; import the rest in further calls"),
            ));
        }
        let mut answer = ImportEntitiesResponse { checked: rows.len() as i32, ..Default::default() };
        let mut checked = Vec::with_capacity(rows.len());
        let mut lines_by_id = std::collections::HashMap::new();
        // A row's errors in the order of the model's fields (its own columns first).
        let place = |field: &str| model.specs.iter().position(|s| s.name.as_str() == field).map_or(0, |i| i + 1);
        for (line, record, unread) in rows {
            let mut broken = unread.clone();
            match self.import_row(principal, &model, record) {
                Ok((kept, values)) if unread.is_empty() => {
                    if let Some(first) = lines_by_id.insert(kept.id, *line) {
                        broken.push(FieldViolation::new("id", format!("repeats the id of line {first}")));
                    }
                    checked.push((*line, kept, values));
                }
                Ok(_) => {}
                // A cell that could not be read is left out of the record: it is not
                // also reported missing.
                Err(found) => broken.extend(found.into_iter().filter(|v| !unread.iter().any(|u| u.field == v.field))),
            }
            broken.sort_by_key(|v| place(&v.field));
            let row_error = |v: FieldViolation| RowError { line: *line, field: v.field, description: v.description };
            answer.errors.extend(broken.into_iter().map(row_error));
        }
        if !answer.errors.is_empty() && !req.dry_run {
            let lines: std::collections::HashSet<i32> = answer.errors.iter().map(|e| e.line).collect();
            let message = match lines.len() {
                1 => "1 row has errors; nothing was imported".to_string(),
                rows => format!("{rows} rows have errors; nothing was imported"),
            };
            let violations = answer
                .errors
                .iter()
                .map(|e| on_line(e.line, FieldViolation::new(e.field.clone(), e.description.clone())))
                .collect();
            return Err(ServiceError::InvalidArgument { message, violations });
        }
        // The rows commit together: a row the database refuses leaves nothing written,
        // and neither does a call cut short. A dry run only counts.
        let created = match &pool {
            _ if req.dry_run => self.write_imported(&model, &pool, None, workspace, checked, &mut answer).await?,
            RecordPool::Postgres(pg) => {
                let mut tx = pg.begin().await?;
                let open = Some(Open::Postgres(&mut tx));
                let written = self.write_imported(&model, &pool, open, workspace, checked, &mut answer).await?;
                if written.is_some() {
                    tx.commit().await?;
                }
                written
            }
            RecordPool::Sqlite(lite) => {
                let mut conn = lite.writer.acquire().await?;
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                let open = Some(Open::Sqlite(&mut tx));
                let written = self.write_imported(&model, &pool, open, workspace, checked, &mut answer).await?;
                if written.is_some() {
                    tx.commit().await?;
                }
                written
            }
        };
        Ok(created.map_or(Tried::Stale, |created| Tried::Done((answer, created))))
    }

    /// Writes the `checked` rows of an import in the transaction `open` (only counts them
    /// without one: a dry run), counting them in `answer`; the records written, or none
    /// if the model moved on meanwhile.
    async fn write_imported(
        &self,
        model: &CompiledModel,
        pool: &RecordPool,
        mut open: Option<Open<'_>>,
        workspace: Id,
        checked: Vec<(i32, Kept, Checked)>,
        answer: &mut ImportEntitiesResponse,
    ) -> Result<Option<Vec<Struct>>, ServiceError> {
        let mut created = Vec::new();
        for (line, mut kept, values) in checked {
            match self.where_is(model, pool, workspace, kept.id).await? {
                Some(Whose::Caller) => {
                    answer.skipped += 1;
                    continue;
                }
                // Ids are the workspace's own: one taken in another workspace's share of
                // the table is given up for a new one.
                Some(Whose::Other) => kept.id = Id::new(),
                None => {}
            }
            answer.imported += 1;
            let Some(open) = open.as_mut() else { continue };
            let inserted = self.insert_once(model, pool, open.on(), workspace, &kept, values).await;
            match inserted.map_err(|e| at_line(line, e))? {
                Tried::Done(record) => created.push(record),
                Tried::Stale => return Ok(None),
            }
        }
        Ok(Some(created))
    }

    /// One imported row, checked: the system columns it keeps and the values it writes.
    fn import_row(
        &self,
        principal: Principal,
        model: &CompiledModel,
        record: &Map<String, Value>,
    ) -> Result<(Kept, Checked), Vec<FieldViolation>> {
        let mut kept = Kept::new(principal);
        let mut broken = Vec::new();
        for column in codec::SYSTEM_COLUMNS {
            let Some(value) = record.get(*column) else { continue };
            let ty = system_column(column).unwrap_or(FieldType::Uuid);
            let read = match (column, value) {
                // An export of a record nobody made (seeded) says so with null.
                (&"created_by", Value::Null) => Ok(SqlValue::Null(FieldType::Uuid)),
                // As if left out: a new id, made now.
                (_, Value::Null) => continue,
                _ => system_value(ty, value),
            };
            match (column, read) {
                (_, Err(why)) => broken.push(FieldViolation::new(*column, why)),
                (&"id", Ok(SqlValue::Uuid(id))) => kept.id = id,
                (&"created_at", Ok(SqlValue::DateTime(at))) => kept.created_at = at,
                (&"updated_at", Ok(SqlValue::DateTime(at))) => kept.updated_at = at,
                (&"created_by", Ok(SqlValue::Uuid(by))) => kept.created_by = Some(by),
                (_, Ok(_)) => kept.created_by = None,
            }
        }
        match self.checked(model, record, Write::Create) {
            Ok(values) if broken.is_empty() => Ok((kept, values)),
            Ok(_) => Err(broken),
            Err(ServiceError::InvalidArgument { violations, .. }) => {
                broken.extend(violations);
                Err(broken)
            }
            Err(other) => {
                broken.push(FieldViolation::new("record", other.to_string()));
                Err(broken)
            }
        }
    }

    /// Whose record the id `id` is, if anyone's: the caller's workspace's, or (in a shared
    /// table) another's.
    async fn where_is(
        &self,
        model: &CompiledModel,
        pool: &RecordPool,
        workspace: Id,
        id: Id,
    ) -> Result<Option<Whose>, ServiceError> {
        let column = if model.place.shared_table { "\"workspace_id\"" } else { "\"id\"" };
        let sql = format!("SELECT {column} FROM {} WHERE \"id\" = $1", model.place.table);
        let span = statement_span("SELECT", &model.place);
        let found: Option<Id> = with_ws_read!(pool, pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).instrument(span).await?
        });
        Ok(found.map(|owner| match model.place.shared_table && owner != workspace {
            true => Whose::Other,
            false => Whose::Caller,
        }))
    }

    pub async fn get(&self, principal: Principal, req: GetEntityRequest) -> Result<GetEntityResponse, ServiceError> {
        let record = self
            .on_model(principal, &req.model, |model, pool, workspace| self.get_once(model, pool, workspace, &req.id))
            .await?;
        Ok(GetEntityResponse { record: Some(record) })
    }

    async fn get_once(
        &self,
        model: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        id: &str,
    ) -> Result<Tried<Struct>, ServiceError> {
        let record_id = model.record_id(id)?;
        let mut bound = Vec::new();
        let condition = model.where_record(workspace, record_id, &mut bound);
        let sql = format!("SELECT {} FROM {}{condition}", model.select_list, model.place.table);
        let span = statement_span("SELECT", &model.place);
        let found = with_ws_read!(&pool, pool => {
            match bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).fetch_optional(pool).instrument(span).await {
                Ok(Some(row)) => Some(row_to_struct(&row, &model.specs)?),
                Ok(None) => None,
                Err(e) => return stale_or(e, ServiceError::from),
            }
        });
        self.found_or_missing(&model, found, id).await
    }

    pub async fn update(
        &self,
        principal: Principal,
        req: UpdateEntityRequest,
    ) -> Result<UpdateEntityResponse, ServiceError> {
        let record = from_struct(req.record)?;
        if let Some(Value::String(given)) = record.get("id")
            && uuid::Uuid::parse_str(req.id.trim()).map_or(true, |id| given != &id.to_string())
        {
            return Err(ServiceError::invalid_field("id", "differs from the record being updated"));
        }
        let write = if req.partial { Write::Patch } else { Write::Replace };
        // Read before the write, so the change's event can say what it was. Not in the
        // write's transaction: a change committed in between shows in neither image.
        let before = match self.announces() {
            true => {
                self.get(principal, GetEntityRequest { model: req.model.clone(), id: req.id.clone() }).await?.record
            }
            false => None,
        };
        let record = self
            .on_model(principal, &req.model, |model, pool, workspace| {
                self.update_once(model, pool, workspace, &req.id, &record, write)
            })
            .await?;
        let id = record_id(&record);
        self.announce(principal, &req.model, &id, ChangeKind::Updated, before.as_ref(), Some(&record)).await;
        Ok(UpdateEntityResponse { record: Some(record) })
    }

    async fn update_once(
        &self,
        model: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        id: &str,
        record: &Map<String, Value>,
        write: Write,
    ) -> Result<Tried<Struct>, ServiceError> {
        let record_id = model.record_id(id)?;
        let values = self.checked(&model, record, write)?;
        if model.place.shared_table && values.iter().any(|(i, _)| model.specs[*i].relation.is_some()) {
            // Whether the record is the caller's decides first: another workspace's record
            // answers 404 whatever its relations point at.
            if !in_workspace(&pool, &model.place.table, record_id, workspace).await? {
                return Err(model.no_record(id));
            }
        }
        self.check_scoped_relations(&model, &pool, workspace, &values).await?;
        let written: Vec<&FieldSpec> = values.iter().map(|(i, _)| &model.specs[*i]).collect();
        let mut sets = vec!["\"updated_at\" = $1".to_string()];
        let mut bound = vec![SqlValue::DateTime(crate::db::now())];
        for (spec, (_, value)) in written.iter().zip(values) {
            sets.push(format!("{} = {}", spec.name.quoted(), value.placeholder(bound.len() + 1, model.place.dialect)));
            bound.push(value);
        }
        let condition = model.where_record(workspace, record_id, &mut bound);
        let sql =
            format!("UPDATE {} SET {}{condition} RETURNING {}", model.place.table, sets.join(", "), model.select_list);
        let span = statement_span("UPDATE", &model.place);
        let found = match write_rows(WriteOn::Alone(&pool), sql, bound, |row| row_to_struct(row, &model.specs))
            .instrument(span)
            .await
        {
            Ok(rows) => rows.into_iter().next(),
            Err(e) => return stale_or(e, |e| write_error(e, &model, &written)),
        };
        self.found_or_missing(&model, found, id).await
    }

    pub async fn delete(
        &self,
        principal: Principal,
        req: DeleteEntityRequest,
    ) -> Result<DeleteEntityResponse, ServiceError> {
        let deleted = self
            .on_model(principal, &req.model, |model, pool, workspace| self.delete_once(model, pool, workspace, &req.id))
            .await?;
        self.announce(principal, &req.model, &record_id(&deleted), ChangeKind::Deleted, Some(&deleted), None).await;
        Ok(DeleteEntityResponse {})
    }

    async fn delete_once(
        &self,
        model: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        id: &str,
    ) -> Result<Tried<Struct>, ServiceError> {
        let record_id = model.record_id(id)?;
        let mut bound = Vec::new();
        let condition = model.where_record(workspace, record_id, &mut bound);
        // The record as it was: the change's event carries it.
        let sql = format!("DELETE FROM {}{condition} RETURNING {}", model.place.table, model.select_list);
        let span = statement_span("DELETE", &model.place);
        let deleted = match write_rows(WriteOn::Alone(&pool), sql, bound, |row| row_to_struct(row, &model.specs))
            .instrument(span)
            .await
        {
            Ok(rows) => rows.into_iter().next(),
            Err(e) => {
                return stale_or(e, |e| match &e {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => ServiceError::FailedPrecondition(
                        "other records point at this one; delete or change them first".into(),
                    ),
                    _ => e.into(),
                });
            }
        };
        self.found_or_missing(&model, deleted, id).await
    }

    pub async fn list(
        &self,
        principal: Principal,
        req: ListEntitiesRequest,
    ) -> Result<ListEntitiesResponse, ServiceError> {
        self.on_model(principal, &req.model, |model, pool, workspace| self.list_once(model, pool, workspace, &req))
            .await
    }

    async fn list_once(
        &self,
        target: Arc<CompiledModel>,
        pool: RecordPool,
        workspace: Id,
        req: &ListEntitiesRequest,
    ) -> Result<Tried<ListEntitiesResponse>, ServiceError> {
        let order = SortOrder::read(&target, &req.sort)?;
        // A token names a position in one model's records, in one workspace, in one order.
        let scope = format!("records of {} {} in {} by {}", target.plural, target.id.0, workspace.0, req.sort.trim());
        let paging = Paging::<(Value, uuid::Uuid)>::read(scope, req.page_size, &req.page_token)?;

        let mut bound = Vec::new();
        let mut conditions: Vec<String> = target.scope_condition(workspace, &mut bound).into_iter().collect();
        conditions.extend(filter_conditions(&target, &req.filter, &mut bound)?);
        if let Some(after) = &paging.after {
            conditions.push(order.after(after, &mut bound)?);
        }
        let guard = target.guard(&mut bound);
        let sql = format!(
            "SELECT {} FROM {}{} ORDER BY {} LIMIT {}",
            target.select_list,
            target.place.table,
            where_clause(conditions, guard),
            order.order_by(),
            paging.fetch()
        );
        let span = statement_span("SELECT", &target.place);
        let records = with_ws_read!(&pool, pool => {
            let query = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound);
            match query.fetch_all(pool).instrument(span).await {
                Ok(rows) => rows.iter().map(|row| row_to_struct(row, &target.specs)).collect::<Result<Vec<_>, _>>()?,
                Err(e) => return stale_or(e, ServiceError::from),
            }
        });
        // An empty page may be the guard's doing: the model moved on.
        if records.is_empty() && target.guarded() && !self.source.is_current(&target).await? {
            return Ok(Tried::Stale);
        }
        Ok(Tried::Done(cut_page(records, &paging, order.name)))
    }
}

/// One committed change as a watcher receives it: the record as it is when sent (none
/// once deleted, or when it was deleted meanwhile: its deletion follows).
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub kind: ChangeKind,
    pub id: String,
    pub record: Option<Struct>,
}

/// How many changes wait for a slow watcher's connection before the watch waits for it.
const WATCH_BUFFER: usize = 16;

impl<S: ModelSource + Clone + 'static> Records<S> {
    /// Every committed create, update and delete of the caller's model `key` from now on,
    /// until the receiver is dropped or `stopping` is cancelled. The model must exist; a
    /// watcher that falls too far behind gets ABORTED (it watches again and lists to
    /// catch up), which ends the watch. Without a feed nothing is ever announced, so
    /// there is nothing to watch: FAILED_PRECONDITION.
    pub async fn watch(
        &self,
        principal: Principal,
        key: &str,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Watched, ServiceError>>, ServiceError> {
        let feed = self
            .feed
            .as_ref()
            .ok_or_else(|| ServiceError::FailedPrecondition(format!("the records of `{key}` cannot be watched")))?;
        // Subscribed before the model is looked up: every change after the answer is seen.
        let mut changes = feed.subscribe();
        let model = self.on_model(principal, key, |model, _, _| async move { Ok(Tried::Done(model)) }).await?;
        let plural = model.plural.to_string();
        let (sender, receiver) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        let records = self.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    () = sender.closed() => return,
                    () = stopping.cancelled() => return,
                    change = changes.recv() => change,
                };
                let watched = match change {
                    Ok(change) if change.workspace == principal.workspace_id && change.model == plural => {
                        records.watched(principal, change).await
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        Err(ServiceError::Aborted(format!(
                            "this watch fell {missed} changes behind and missed them; watch again, and list to catch up"
                        )))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let ends = watched.is_err();
                if sender.send(watched).await.is_err() || ends {
                    return;
                }
            }
        });
        Ok(receiver)
    }

    /// `change` with its record read as it is now.
    async fn watched(&self, principal: Principal, change: RecordChange) -> Result<Watched, ServiceError> {
        let record = match change.kind {
            ChangeKind::Deleted => None,
            ChangeKind::Created | ChangeKind::Updated => {
                let request = GetEntityRequest { model: change.model, id: change.id.clone() };
                match self.get(principal, request).await {
                    Ok(found) => found.record,
                    Err(ServiceError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(Watched { kind: change.kind, id: change.id, record })
    }
}

/// The order of a list: a sortable column, its direction, and whether it may hold NULL.
struct SortOrder<'a> {
    name: &'a str,
    /// Quoted and qualified by its table.
    column: String,
    ty: FieldType,
    spec: Option<&'a FieldSpec>,
    descending: bool,
    nullable: bool,
    dialect: Dialect,
}

impl<'a> SortOrder<'a> {
    /// `sort` as asked: a field or system column, `-` in front for descending; none means
    /// by creation.
    fn read(target: &'a CompiledModel, sort: &'a str) -> Result<Self, ServiceError> {
        let (name, descending) = match sort.trim() {
            "" => ("created_at", false),
            s => s.strip_prefix('-').map(|s| (s, true)).unwrap_or((s, false)),
        };
        let (column, ty, spec) = target
            .column_type(name)
            .filter(|(_, ty, _)| *ty != FieldType::Json)
            .ok_or_else(|| ServiceError::invalid_field("sort", format!("`{name}` is not a sortable field")))?;
        // Columns that cannot hold NULL page and sort on (column, id) alone, which the
        // (created_at, id) index and unique indexes serve; nullable ones sort NULLs last.
        // System models' platform columns are taken as nullable whatever their seeds say.
        let nullable = spec.is_some_and(|spec| !spec.required || target.place.shared_table);
        // Qualified: a decimal's output column of the same name is its text, and ORDER BY
        // would sort by that.
        let column = format!("{}.{}", target.place.table, column.quoted());
        Ok(SortOrder { name, column, ty, spec, descending, nullable, dialect: target.place.dialect })
    }

    fn order_by(&self) -> String {
        let (sort, direction) = (&self.column, if self.descending { "DESC" } else { "ASC" });
        let nulls_last = if self.nullable { format!("({sort} IS NULL), ") } else { String::new() };
        format!("{nulls_last}{sort} {direction}, \"id\" {direction}")
    }

    /// The condition for records after `(value, id)`, the last of the previous page, in
    /// this order; its values are bound.
    fn after(&self, (value, id): &(Value, uuid::Uuid), bound: &mut Vec<SqlValue>) -> Result<String, ServiceError> {
        let (sort, cmp) = (&self.column, if self.descending { "<" } else { ">" });
        bound.push(SqlValue::Uuid(Id(*id)));
        let id_param = bound.len();
        if self.nullable && value.is_null() {
            return Ok(format!("({sort} IS NULL AND \"id\" {cmp} ${id_param})"));
        }
        let value = match self.spec {
            Some(spec) => check_value(spec, value),
            None => system_value(self.ty, value),
        }
        .map_err(|_| paging::bad_token())?;
        let v = value.placeholder(bound.len() + 1, self.dialect);
        bound.push(value);
        Ok(if self.nullable {
            format!(
                "(({sort} IS NOT NULL AND ({sort} {cmp} {v} OR ({sort} = {v} AND \"id\" {cmp} ${id_param}))) OR {sort} IS NULL)"
            )
        } else {
            format!("({sort}, \"id\") {cmp} ({v}, ${id_param})")
        })
    }
}

/// The equality filters as conditions with bound values; every bad filter is named.
fn filter_conditions(
    target: &CompiledModel,
    filter: &std::collections::HashMap<String, String>,
    bound: &mut Vec<SqlValue>,
) -> Result<Vec<String>, ServiceError> {
    let mut conditions = Vec::new();
    let mut violations = Vec::new();
    let mut filters: Vec<(&String, &String)> = filter.iter().collect();
    filters.sort();
    for (name, raw) in filters {
        let Some((column, ty, spec)) = target.column_type(name).filter(|(_, ty, _)| *ty != FieldType::Json) else {
            violations.push(FieldViolation::new(format!("filter.{name}"), "is not a filterable field"));
            continue;
        };
        match filter_value(ty, spec, raw) {
            Ok(value) => {
                conditions.push(format!(
                    "{} = {}",
                    column.quoted(),
                    value.placeholder(bound.len() + 1, target.place.dialect)
                ));
                bound.push(value);
            }
            Err(why) => violations.push(FieldViolation::new(format!("filter.{name}"), why)),
        }
    }
    if violations.is_empty() { Ok(conditions) } else { Err(ServiceError::invalid(violations)) }
}

/// A page of the records fetched: at most `page_size`, and fewer once it holds
/// LIST_BYTES (a page of big records must stay well within what a gRPC message may
/// carry), with the token of the next page if more follow.
fn cut_page(mut records: Vec<Struct>, paging: &Paging<(Value, uuid::Uuid)>, sort_name: &str) -> ListEntitiesResponse {
    let mut more = records.len() > paging.size;
    records.truncate(paging.size);
    let mut page = Vec::with_capacity(records.len());
    let (mut bytes, mut last) = (0, None);
    for message in records {
        let id = json_value(message.fields.get("id"));
        let id = id.as_str().and_then(|id| uuid::Uuid::parse_str(id).ok());
        let key = id.map(|id| (json_value(message.fields.get(sort_name)), id));
        bytes += prost::Message::encoded_len(&message);
        if bytes > LIST_BYTES && !page.is_empty() {
            more = true;
            break;
        }
        page.push(message);
        last = key;
    }
    let next_page_token = match (more, last) {
        (true, Some(key)) => paging.token_after(&key),
        _ => String::new(),
    };
    ListEntitiesResponse { records: page, next_page_token }
}

/// A filter's text as the column's type.
fn filter_value(ty: FieldType, spec: Option<&FieldSpec>, raw: &str) -> Result<SqlValue, String> {
    let json = codec::from_text(ty, raw)?;
    match spec {
        // Filters compare; they do not enforce the write rules (required, bounds, pattern).
        Some(spec) => {
            let mut loose = spec.clone();
            (loose.required, loose.min, loose.max, loose.min_length, loose.max_length, loose.pattern) =
                (false, None, None, None, None, None);
            check_value(&loose, &json)
        }
        None => system_value(ty, &json),
    }
}

fn system_value(ty: FieldType, value: &Value) -> Result<SqlValue, String> {
    let text = value.as_str().ok_or("must be a string")?;
    match ty {
        FieldType::DateTime => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| SqlValue::DateTime(crate::db::truncate_time(t.with_timezone(&Utc))))
            .map_err(|_| "must be an RFC 3339 time".into()),
        _ => uuid::Uuid::parse_str(text).map(|id| SqlValue::Uuid(Id(id))).map_err(|_| "must be a UUID".into()),
    }
}
