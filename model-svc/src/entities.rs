//! EntityService: CRUD over the records of any model of the workspace: user models in
//! their `ent_<plural>` tables, system models (applications, components, templates,
//! workflows, prompts) in their platform tables, limited to the workspace. Paging is keyset on (sort column, id): no OFFSET scans and no
//! COUNT(*). Every identifier comes from a checked spec and is quoted; every value is bound.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use kiln_common::{Principal, ServiceError, db::Id, error::FieldViolation};
use kiln_proto::{
    v1::{
        CreateEntityRequest, CreateEntityResponse, DeleteEntityRequest, DeleteEntityResponse, GetEntityRequest,
        GetEntityResponse, ListEntitiesRequest, ListEntitiesResponse, UpdateEntityRequest, UpdateEntityResponse,
        entity_service_server::EntityService,
    },
    wkt::Struct,
};
use serde_json::{Map, Value};
use tonic::{Request, Response, Status};

use crate::{
    ModelDeps, bind_values,
    models::find_model,
    names::{self, Ident},
    records::{self, RecordRow, SqlValue, Write, check_record, check_value},
    schema::{Constraint, Dialect, FieldSpec, FieldType, Namespace, parse_fields, parse_system_fields},
    workspace::{WorkspacePool, Workspaces},
};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 100;
/// Encoded size past which a page ends early (below gRPC's 4 MiB message limit).
const LIST_BYTES: usize = 2 << 20;

#[derive(Debug, Clone)]
pub struct EntityApi {
    deps: ModelDeps,
    workspaces: Workspaces,
}

/// The model a call works on, resolved in the caller's workspace.
struct Target {
    plural: Ident,
    specs: Vec<FieldSpec>,
    /// Quoted (and schema-qualified) for SQL.
    table: String,
    /// Bare, for reading constraint names.
    table_name: String,
    dialect: Dialect,
    pool: WorkspacePool,
    /// Set for system models: their platform tables hold every workspace's rows, so
    /// every statement is limited to this workspace.
    scope: Option<Id>,
}

impl Target {
    /// ` AND "workspace_id" = $n` for scoped tables (binding the scope), else nothing.
    fn scope_condition(&self, bound: &mut Vec<SqlValue>) -> String {
        match self.scope {
            Some(scope) => {
                bound.push(SqlValue::Uuid(scope));
                format!(" AND \"workspace_id\" = ${}", bound.len())
            }
            None => String::new(),
        }
    }
}

/// Runs the same block against whichever pool a workspace has.
macro_rules! with_ws {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            WorkspacePool::Postgres($p) => $body,
            WorkspacePool::Sqlite($p) => $body,
        }
    };
}

/// A column everyone can sort and filter by, beyond the model's fields.
fn system_spec(name: &str) -> Option<FieldType> {
    match name {
        "id" | "created_by" => Some(FieldType::Uuid),
        "created_at" | "updated_at" => Some(FieldType::DateTime),
        _ => None,
    }
}

impl Target {
    /// The columns of a record, decimals read as doubles (what a Struct carries).
    fn select_list(&self) -> String {
        let mut columns: Vec<String> =
            records::SYSTEM_COLUMNS.iter().map(|c| kiln_common::db::quote_ident(c)).collect();
        for spec in &self.specs {
            let column = spec.name.quoted();
            columns.push(match (self.dialect, spec.ty) {
                (Dialect::Postgres, FieldType::Decimal) => format!("{column}::float8 AS {column}"),
                _ => column,
            });
        }
        columns.join(", ")
    }

    /// The type of a sortable or filterable column, by name.
    fn column_type(&self, name: &str) -> Option<(Ident, FieldType, Option<&FieldSpec>)> {
        if let Some(ty) = system_spec(name) {
            return Some((names::plural_ref(name).ok()?, ty, None));
        }
        self.specs.iter().find(|s| s.name.as_str() == name).map(|s| (s.name.clone(), s.ty, Some(s)))
    }
}

fn row_to_record(row: &impl RecordRow, specs: &[FieldSpec]) -> Result<Map<String, Value>, sqlx::Error> {
    let mut record = Map::new();
    for column in records::SYSTEM_COLUMNS {
        let ty = system_spec(column).unwrap_or(FieldType::Text);
        record.insert(column.to_string(), row.value(column, ty)?);
    }
    for spec in specs {
        record.insert(spec.name.to_string(), row.value(spec.name.as_str(), spec.ty)?);
    }
    Ok(record)
}

fn to_struct(record: Map<String, Value>) -> Result<Struct, ServiceError> {
    serde_json::from_value(Value::Object(record)).map_err(|e| anyhow::anyhow!("encoding a record: {e}").into())
}

fn from_struct(record: Option<Struct>) -> Result<Map<String, Value>, ServiceError> {
    match serde_json::to_value(record.unwrap_or_default()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ServiceError::invalid_field("record", "must be an object")),
    }
}

/// The page token: the sort value and id of the last record of a page.
fn encode_token(value: &Value, id: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([value, id]).to_string())
}

fn decode_token(token: &str) -> Result<(Value, uuid::Uuid), ServiceError> {
    let bad = || ServiceError::invalid_field("page_token", "is not a token this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(&bytes) else { return Err(bad()) };
    let [value, Value::String(id)] = parts.as_slice() else { return Err(bad()) };
    Ok((value.clone(), uuid::Uuid::parse_str(id).map_err(|_| bad())?))
}

/// A write's database error, told in the client's terms where the client caused it.
fn write_error(e: sqlx::Error, target: &Target, written: &[&FieldSpec]) -> ServiceError {
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
            .find(|s| kind.name(&target.table_name, s.name.as_str()) == constraint)
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

impl EntityApi {
    pub fn new(deps: ModelDeps, workspaces: Workspaces) -> Self {
        EntityApi { deps, workspaces }
    }

    async fn target(&self, principal: Principal, model: &str) -> Result<Target, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("no model `{model}` in this workspace"));
        let plural = names::plural_ref(model).map_err(|_| not_found())?;
        let model = find_model(&self.deps.db, principal.workspace_id, plural.as_str()).await?.ok_or_else(not_found)?;
        if model.plural != plural.as_str() {
            return Err(not_found());
        }
        if model.is_system {
            let elsewhere = match plural.as_str() {
                "models" => Some("/api/v1/models"),
                "users" => Some("/api/v1/auth/profile"),
                _ => None,
            };
            if let Some(api) = elsewhere {
                return Err(ServiceError::FailedPrecondition(format!("{plural} are managed through {api}")));
            }
            let specs = parse_system_fields(&model.fields)
                .map_err(|v| anyhow::anyhow!("seeded fields of {plural} do not parse: {v:?}"))?;
            let table =
                names::plural_ref(&model.table_name).map_err(|e| anyhow::anyhow!("platform table of {plural}: {e}"))?;
            let (pool, dialect) = match &self.deps.db {
                kiln_common::Db::Postgres(p) => (WorkspacePool::Postgres(p.clone()), Dialect::Postgres),
                kiln_common::Db::Sqlite(p) => (WorkspacePool::Sqlite(p.clone()), Dialect::Sqlite),
            };
            return Ok(Target {
                plural,
                specs,
                table: table.quoted(),
                table_name: table.to_string(),
                dialect,
                pool,
                scope: Some(Id(principal.workspace_id)),
            });
        }
        let specs = parse_fields(&model.fields)
            .map_err(|v| anyhow::anyhow!("stored fields of {plural} no longer parse: {v:?}"))?;
        let ns: Namespace = self.workspaces.namespace(principal.workspace_id);
        let table_ident = Ident::table_of(&plural);
        let table = ns.table(&table_ident);
        let pool = self.workspaces.pool(principal.workspace_id).await?;
        Ok(Target { plural, specs, table, table_name: table_ident.to_string(), dialect: ns.dialect, pool, scope: None })
    }

    /// Relation values of a system record must point into the same workspace: the
    /// platform tables' foreign keys alone would accept another workspace's ids.
    async fn check_scoped_relations(&self, target: &Target, values: &[(usize, SqlValue)]) -> Result<(), ServiceError> {
        let Some(scope) = target.scope else { return Ok(()) };
        for (i, value) in values {
            let spec = &target.specs[*i];
            let (Some(relation), SqlValue::Uuid(id)) = (&spec.relation, value) else { continue };
            let sql = format!("SELECT 1 FROM {} WHERE \"id\" = $1 AND \"workspace_id\" = $2", relation.target.quoted());
            let found = with_ws!(&target.pool, pool => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(*id).bind(scope).fetch_optional(pool).await?.is_some()
            });
            if !found {
                return Err(ServiceError::invalid_field(spec.name.as_str(), "points at no record of the target model"));
            }
        }
        Ok(())
    }

    async fn create(
        &self,
        principal: Principal,
        req: CreateEntityRequest,
    ) -> Result<CreateEntityResponse, ServiceError> {
        let target = self.target(principal, &req.model).await?;
        let record = from_struct(req.record)?;
        let values = check_record(&target.specs, &record, Write::Create).map_err(ServiceError::invalid)?;
        self.check_scoped_relations(&target, &values).await?;
        let written: Vec<&FieldSpec> = values.iter().map(|(i, _)| &target.specs[*i]).collect();
        let mut columns =
            vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into(), "\"created_by\"".into()];
        columns.extend(written.iter().map(|s| s.name.quoted()));
        if target.scope.is_some() {
            columns.push("\"workspace_id\"".into());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
            target.table,
            columns.join(", "),
            placeholders.join(", "),
            target.select_list()
        );
        let now = kiln_common::db::now();
        let mut bound = vec![
            SqlValue::Uuid(Id::new()),
            SqlValue::DateTime(now),
            SqlValue::DateTime(now),
            SqlValue::Uuid(Id(principal.user_id)),
        ];
        bound.extend(values.into_iter().map(|(_, v)| v));
        if let Some(scope) = target.scope {
            bound.push(SqlValue::Uuid(scope));
        }
        let record = with_ws!(&target.pool, pool => {
            let query = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound);
            let row = query.fetch_one(pool).await.map_err(|e| write_error(e, &target, &written))?;
            row_to_record(&row, &target.specs)?
        });
        Ok(CreateEntityResponse { record: Some(to_struct(record)?) })
    }

    async fn get(&self, principal: Principal, req: GetEntityRequest) -> Result<GetEntityResponse, ServiceError> {
        let target = self.target(principal, &req.model).await?;
        let not_found = || ServiceError::NotFound(format!("no {} record `{}`", target.plural, req.id));
        let id = uuid::Uuid::parse_str(req.id.trim()).map_err(|_| not_found())?;
        let mut bound = vec![SqlValue::Uuid(Id(id))];
        let scoped = target.scope_condition(&mut bound);
        let sql = format!("SELECT {} FROM {} WHERE \"id\" = $1{scoped}", target.select_list(), target.table);
        let record = with_ws!(&target.pool, pool => {
            match bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).fetch_optional(pool).await? {
                Some(row) => Some(row_to_record(&row, &target.specs)?),
                None => None,
            }
        });
        Ok(GetEntityResponse { record: Some(to_struct(record.ok_or_else(not_found)?)?) })
    }

    async fn update(
        &self,
        principal: Principal,
        req: UpdateEntityRequest,
    ) -> Result<UpdateEntityResponse, ServiceError> {
        let target = self.target(principal, &req.model).await?;
        let not_found = || ServiceError::NotFound(format!("no {} record `{}`", target.plural, req.id));
        let id = uuid::Uuid::parse_str(req.id.trim()).map_err(|_| not_found())?;
        let record = from_struct(req.record)?;
        if let Some(Value::String(given)) = record.get("id")
            && given != &id.to_string()
        {
            return Err(ServiceError::invalid_field("id", "differs from the record being updated"));
        }
        let write = if req.partial { Write::Patch } else { Write::Replace };
        let values = check_record(&target.specs, &record, write).map_err(ServiceError::invalid)?;
        self.check_scoped_relations(&target, &values).await?;
        let written: Vec<&FieldSpec> = values.iter().map(|(i, _)| &target.specs[*i]).collect();
        let mut sets = vec!["\"updated_at\" = $1".to_string()];
        sets.extend(written.iter().enumerate().map(|(n, s)| format!("{} = ${}", s.name.quoted(), n + 2)));
        let mut bound = vec![SqlValue::DateTime(kiln_common::db::now())];
        bound.extend(values.into_iter().map(|(_, v)| v));
        bound.push(SqlValue::Uuid(Id(id)));
        let id_param = bound.len();
        let scoped = target.scope_condition(&mut bound);
        let sql = format!(
            "UPDATE {} SET {} WHERE \"id\" = ${id_param}{scoped} RETURNING {}",
            target.table,
            sets.join(", "),
            target.select_list()
        );
        let record = with_ws!(&target.pool, pool => {
            let query = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound);
            match query.fetch_optional(pool).await.map_err(|e| write_error(e, &target, &written))? {
                Some(row) => Some(row_to_record(&row, &target.specs)?),
                None => None,
            }
        });
        Ok(UpdateEntityResponse { record: Some(to_struct(record.ok_or_else(not_found)?)?) })
    }

    async fn delete(
        &self,
        principal: Principal,
        req: DeleteEntityRequest,
    ) -> Result<DeleteEntityResponse, ServiceError> {
        let target = self.target(principal, &req.model).await?;
        let not_found = || ServiceError::NotFound(format!("no {} record `{}`", target.plural, req.id));
        let id = uuid::Uuid::parse_str(req.id.trim()).map_err(|_| not_found())?;
        let mut bound = vec![SqlValue::Uuid(Id(id))];
        let scoped = target.scope_condition(&mut bound);
        let sql = format!("DELETE FROM {} WHERE \"id\" = $1{scoped}", target.table);
        let deleted = with_ws!(&target.pool, pool => {
            bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound).execute(pool).await.map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => ServiceError::FailedPrecondition(
                    "other records point at this one; delete or change them first".into(),
                ),
                _ => e.into(),
            })?.rows_affected()
        });
        if deleted == 0 {
            return Err(not_found());
        }
        Ok(DeleteEntityResponse {})
    }

    async fn list(&self, principal: Principal, req: ListEntitiesRequest) -> Result<ListEntitiesResponse, ServiceError> {
        let target = self.target(principal, &req.model).await?;
        let page_size = match usize::try_from(req.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                return Err(ServiceError::invalid_field("page_size", format!("must be between 0 and {MAX_PAGE_SIZE}")));
            }
        };
        let (sort_name, descending) = match req.sort.trim() {
            "" => ("created_at", false),
            s => s.strip_prefix('-').map(|s| (s, true)).unwrap_or((s, false)),
        };
        let (sort_column, sort_type, sort_spec) = target
            .column_type(sort_name)
            .filter(|(_, ty, _)| *ty != FieldType::Json)
            .ok_or_else(|| ServiceError::invalid_field("sort", format!("`{sort_name}` is not a sortable field")))?;
        let sort = sort_column.quoted();

        let mut conditions = Vec::new();
        let mut bound = Vec::new();
        if let Some(scope) = target.scope {
            bound.push(SqlValue::Uuid(scope));
            conditions.push("\"workspace_id\" = $1".to_string());
        }
        let mut violations = Vec::new();
        let mut filters: Vec<(&String, &String)> = req.filter.iter().collect();
        filters.sort();
        for (name, raw) in filters {
            let Some((column, ty, spec)) = target.column_type(name).filter(|(_, ty, _)| *ty != FieldType::Json) else {
                violations.push(FieldViolation::new(format!("filter.{name}"), "is not a filterable field"));
                continue;
            };
            match filter_value(ty, spec, raw) {
                Ok(value) => {
                    bound.push(value);
                    conditions.push(format!("{} = ${}", column.quoted(), bound.len()));
                }
                Err(why) => violations.push(FieldViolation::new(format!("filter.{name}"), why)),
            }
        }
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations));
        }
        // Columns that cannot hold NULL page and sort on (column, id) alone, which the
        // (created_at, id) index and unique indexes serve; nullable ones sort NULLs last.
        // System models' platform columns are taken as nullable whatever their seeds say.
        let nullable = sort_spec.is_some_and(|spec| !spec.required || target.scope.is_some());
        if !req.page_token.is_empty() {
            let (last_value, last_id) = decode_token(&req.page_token)?;
            let (cmp, id_cmp) = if descending { ("<", "<") } else { (">", ">") };
            bound.push(SqlValue::Uuid(Id(last_id)));
            let id_param = bound.len();
            if !nullable {
                let value = match sort_spec {
                    Some(spec) => check_value(spec, &last_value),
                    None => system_value(sort_type, &last_value),
                }
                .map_err(|_| ServiceError::invalid_field("page_token", "is not a token this API returned"))?;
                bound.push(value);
                conditions.push(format!("({sort}, \"id\") {cmp} (${}, ${id_param})", bound.len()));
            } else if last_value.is_null() {
                conditions.push(format!("({sort} IS NULL AND \"id\" {id_cmp} ${id_param})"));
            } else {
                let value = match sort_spec {
                    Some(spec) => check_value(spec, &last_value),
                    None => system_value(sort_type, &last_value),
                }
                .map_err(|_| ServiceError::invalid_field("page_token", "is not a token this API returned"))?;
                bound.push(value);
                let v = bound.len();
                conditions.push(format!(
                    "(({sort} IS NOT NULL AND ({sort} {cmp} ${v} OR ({sort} = ${v} AND \"id\" {id_cmp} ${id_param}))) OR {sort} IS NULL)"
                ));
            }
        }
        let direction = if descending { "DESC" } else { "ASC" };
        let where_clause =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let nulls_last = if nullable { format!("({sort} IS NULL), ") } else { String::new() };
        let sql = format!(
            "SELECT {} FROM {} {where_clause} ORDER BY {nulls_last}{sort} {direction}, \"id\" {direction} LIMIT {}",
            target.select_list(),
            target.table,
            page_size + 1
        );
        let mut records = with_ws!(&target.pool, pool => {
            let query = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql)), &bound);
            query.fetch_all(pool).await?.iter().map(|row| row_to_record(row, &target.specs)).collect::<Result<Vec<_>, _>>()?
        });
        // A page ends at page_size records, or sooner once it holds LIST_BYTES: a page of
        // big records must stay well within what a gRPC message may carry.
        let mut more = records.len() > page_size;
        records.truncate(page_size);
        let mut page = Vec::with_capacity(records.len());
        let (mut bytes, mut last) = (0, None);
        for record in records {
            let key = [sort_name, "id"].map(|column| record.get(column).cloned().unwrap_or(Value::Null));
            let message = to_struct(record)?;
            bytes += prost::Message::encoded_len(&message);
            if bytes > LIST_BYTES && !page.is_empty() {
                more = true;
                break;
            }
            page.push(message);
            last = Some(key);
        }
        let next_page_token = match (more, last) {
            (true, Some([value, id])) => encode_token(&value, &id),
            _ => String::new(),
        };
        Ok(ListEntitiesResponse { records: page, next_page_token })
    }
}

/// A filter's text as the column's type.
fn filter_value(ty: FieldType, spec: Option<&FieldSpec>, raw: &str) -> Result<SqlValue, String> {
    let json = match ty {
        FieldType::Integer | FieldType::Decimal => {
            Value::Number(raw.parse::<f64>().ok().and_then(serde_json::Number::from_f64).ok_or("must be a number")?)
        }
        FieldType::Boolean => Value::Bool(raw.parse::<bool>().map_err(|_| "must be true or false")?),
        _ => Value::String(raw.to_string()),
    };
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
            .map(|t| SqlValue::DateTime(kiln_common::db::truncate_time(t.with_timezone(&Utc))))
            .map_err(|_| "must be an RFC 3339 time".into()),
        _ => uuid::Uuid::parse_str(text).map(|id| SqlValue::Uuid(Id(id))).map_err(|_| "must be a UUID".into()),
    }
}

#[tonic::async_trait]
impl EntityService for EntityApi {
    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model))]
    async fn list_entities(
        &self,
        request: Request<ListEntitiesRequest>,
    ) -> Result<Response<ListEntitiesResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.list(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model))]
    async fn get_entity(&self, request: Request<GetEntityRequest>) -> Result<Response<GetEntityResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.get(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model))]
    async fn create_entity(
        &self,
        request: Request<CreateEntityRequest>,
    ) -> Result<Response<CreateEntityResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.create(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model))]
    async fn update_entity(
        &self,
        request: Request<UpdateEntityRequest>,
    ) -> Result<Response<UpdateEntityResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.update(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all, fields(model = %request.get_ref().model))]
    async fn delete_entity(
        &self,
        request: Request<DeleteEntityRequest>,
    ) -> Result<Response<DeleteEntityResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.delete(principal, request.into_inner()).await?))
    }
}
