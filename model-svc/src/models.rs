//! ModelService reads: the workspace's models as stored in `models`. Writes (the schema
//! engine) are not served yet; their RPCs answer UNIMPLEMENTED.

use kiln_common::{
    Principal, ServiceError,
    db::{Id, RowExt},
    timestamp, with_db,
};
use kiln_proto::v1::{
    Field, GetModelRequest, GetModelResponse, ListModelsRequest, ListModelsResponse, Model,
    model_service_server::ModelService,
};
use tonic::{Request, Response, Status};

use crate::ModelDeps;

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 100;
const COLUMNS: &str = "id, name, singular, plural, slug, label, label_plural, description, title_field, \
     is_system, version, fields, table_name, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct ModelApi {
    deps: ModelDeps,
}

impl ModelApi {
    pub fn new(deps: ModelDeps) -> Self {
        ModelApi { deps }
    }

    async fn list(&self, principal: Principal, req: ListModelsRequest) -> Result<ListModelsResponse, ServiceError> {
        let page_size = match i64::from(req.page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(ServiceError::invalid_field("page_size", format!("must be between 0 and {MAX_PAGE_SIZE}")));
            }
        };
        let after = decode_page_token(&req.page_token)?;
        let sql =
            format!("SELECT {COLUMNS} FROM models WHERE workspace_id = $1 AND plural > $2 ORDER BY plural LIMIT $3");
        let mut models = with_db!(&self.deps.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(principal.workspace_id)).bind(&after).bind(page_size + 1)
                .fetch_all(pool).await?
                .iter().map(model_from_row).collect::<Result<Vec<_>, ServiceError>>()?
        });
        let next_page_token = if models.len() as i64 > page_size {
            models.truncate(page_size as usize);
            models.last().map(|m| encode_page_token(&m.plural)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListModelsResponse { models, next_page_token })
    }

    async fn get(&self, principal: Principal, req: GetModelRequest) -> Result<GetModelResponse, ServiceError> {
        let key = req.id.trim();
        if key.is_empty() {
            return Err(ServiceError::invalid_field("id", "is required"));
        }
        let not_found = || ServiceError::NotFound(format!("no model `{key}` in this workspace"));
        // Ids, slugs and plurals are short ASCII; anything else cannot name a model.
        if key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(not_found());
        }
        // An id, or else a slug or plural name; all bound, never spliced.
        let by_id = uuid::Uuid::parse_str(key).ok().map(Id);
        let sql = format!(
            "SELECT {COLUMNS} FROM models WHERE workspace_id = $1 AND (id = $2 OR slug = $3 OR plural = $3) LIMIT 1"
        );
        let model = with_db!(&self.deps.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(principal.workspace_id)).bind(by_id).bind(key)
                .fetch_optional(pool).await?
                .as_ref().map(model_from_row).transpose()?
        });
        Ok(GetModelResponse { model: Some(model.ok_or_else(not_found)?) })
    }
}

fn model_from_row(row: &impl RowExt) -> Result<Model, ServiceError> {
    let fields: Vec<Field> = serde_json::from_value(row.json("fields")?)
        .map_err(|e| anyhow::anyhow!("stored fields of a model are malformed: {e}"))?;
    Ok(Model {
        id: row.id("id")?.to_string(),
        name: row.text("name")?,
        singular: row.text("singular")?,
        plural: row.text("plural")?,
        slug: row.text("slug")?,
        label: row.text("label")?,
        label_plural: row.text("label_plural")?,
        description: row.text("description")?,
        title_field: row.text("title_field")?,
        is_system: row.boolean("is_system")?,
        version: i32::try_from(row.int("version")?).unwrap_or(i32::MAX),
        fields,
        table_name: row.text("table_name")?,
        created_at: Some(timestamp(row.time("created_at")?)),
        updated_at: Some(timestamp(row.time("updated_at")?)),
    })
}

fn encode_page_token(last: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_page_token(token: &str) -> Result<String, ServiceError> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(String::new());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ServiceError::invalid_field("page_token", "is not a token this API returned"))
}

#[tonic::async_trait]
impl ModelService for ModelApi {
    #[tracing::instrument(skip_all)]
    async fn list_models(&self, request: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.list(principal, request.into_inner()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn get_model(&self, request: Request<GetModelRequest>) -> Result<Response<GetModelResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.get(principal, request.into_inner()).await?))
    }
}
