//! WebhookService: a workspace's subscriptions (each rule checked here: an http:// URL
//! this process may reach, at least one event kind, a usable secret) and their
//! deliveries with every attempt; redelivery on demand.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use kiln_common::{
    Authenticator, Principal, ServiceError,
    db::{Id, RowExt},
    error::FieldViolation,
    paging::Paging,
    with_db, with_db_read,
};
use kiln_proto::v1::{
    CreateWebhookRequest, CreateWebhookResponse, DeleteWebhookRequest, DeleteWebhookResponse, GetWebhookRequest,
    GetWebhookResponse, ListWebhookDeliveriesRequest, ListWebhookDeliveriesResponse, ListWebhooksRequest,
    ListWebhooksResponse, RedeliverWebhookDeliveryRequest, RedeliverWebhookDeliveryResponse, UpdateWebhookRequest,
    UpdateWebhookResponse, Webhook, WebhookAttempt, WebhookDelivery, webhook_service_server::WebhookService,
};
use rand::RngCore;
use sqlx::types::Json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::Webhooks;
use crate::workflows::{api::id_in, outgoing, spec};

/// At most this many subscriptions a workspace.
const MAX_WEBHOOKS: i64 = 100;

#[derive(Clone)]
pub struct WebhookApi {
    pub auth: Authenticator,
    pub webhooks: Webhooks,
}

const WEBHOOK_COLUMNS: &str =
    "id, url, description, events, secret, enabled, disabled_reason, failing_since, created_at, updated_at";
const DELIVERY_COLUMNS: &str =
    "id, webhook_id, event_id, event_kind, status, payload, attempts, next_attempt_at, created_at";

fn webhook_of(row: &impl RowExt) -> Result<Webhook, sqlx::Error> {
    Ok(Webhook {
        id: row.id("id")?.to_string(),
        url: row.text("url")?,
        description: row.text("description")?,
        events: serde_json::from_value(row.json("events")?).unwrap_or_default(),
        secret: row.text("secret")?,
        enabled: row.boolean("enabled")?,
        disabled_reason: row.text("disabled_reason").unwrap_or_default(),
        failing_since: row.opt_time("failing_since")?.map(kiln_common::timestamp),
        created_at: Some(kiln_common::timestamp(row.time("created_at")?)),
        updated_at: Some(kiln_common::timestamp(row.time("updated_at")?)),
    })
}

fn delivery_of(row: &impl RowExt) -> Result<WebhookDelivery, sqlx::Error> {
    let attempts = row.json("attempts")?;
    let attempts = attempts
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|attempt| WebhookAttempt {
                    at: serde_json::from_value::<chrono::DateTime<chrono::Utc>>(attempt["at"].clone())
                        .ok()
                        .map(kiln_common::timestamp),
                    status_code: attempt["status_code"].as_i64().unwrap_or_default() as i32,
                    error: attempt["error"].as_str().unwrap_or_default().to_string(),
                    duration_ms: attempt["duration_ms"].as_i64().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(WebhookDelivery {
        id: row.id("id")?.to_string(),
        webhook_id: row.id("webhook_id")?.to_string(),
        event_id: row.id("event_id")?.to_string(),
        event_kind: row.text("event_kind")?,
        status: row.text("status")?,
        payload: serde_json::from_value(row.json("payload")?).ok(),
        attempts,
        next_attempt_at: row.opt_time("next_attempt_at")?.map(kiln_common::timestamp),
        created_at: Some(kiln_common::timestamp(row.time("created_at")?)),
    })
}

/// A new signing secret: 32 random bytes, as Standard Webhooks writes them.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// Every rule a subscription's settings break.
fn check(url: &str, description: &str, events: &[String], secret: &str) -> Result<(), ServiceError> {
    let mut broken = Vec::new();
    if let Err(why) = outgoing::url_error(url.trim()) {
        broken.push(FieldViolation::new("url", why));
    }
    if url.len() > 2048 {
        broken.push(FieldViolation::new("url", "at most 2048 characters"));
    }
    if description.chars().count() > 500 {
        broken.push(FieldViolation::new("description", "at most 500 characters"));
    }
    if events.is_empty() {
        broken.push(FieldViolation::new("events", "name at least one event kind, e.g. entity.created or entity.*"));
    }
    for event in events {
        if let Some(why) = spec::event_pattern_error(event) {
            broken.push(FieldViolation::new("events", format!("`{event}` {why}")));
        }
    }
    if !secret.is_empty() {
        let key = secret.strip_prefix("whsec_").map(|encoded| STANDARD.decode(encoded));
        let usable = match key {
            Some(Ok(key)) => (24..=64).contains(&key.len()),
            Some(Err(_)) => false,
            None => false,
        };
        if !usable {
            broken.push(FieldViolation::new(
                "secret",
                "is whsec_ and 24 to 64 bytes in base64; leave it empty to have one made",
            ));
        }
    }
    if broken.is_empty() { Ok(()) } else { Err(ServiceError::invalid(broken)) }
}

fn database(e: sqlx::Error) -> ServiceError {
    ServiceError::from(anyhow::Error::from(e))
}

impl WebhookApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }

    async fn webhook(&self, workspace: Uuid, id: &str) -> Result<Webhook, ServiceError> {
        let id = id_in("id", id)?;
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND workspace_id = $2");
        let found = with_db_read!(self.webhooks.db(), pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).bind(Id(workspace)).fetch_optional(pool).await {
                Ok(Some(row)) => webhook_of(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(database)?;
        found.ok_or_else(|| ServiceError::NotFound(format!("webhook {id} not found")))
    }

    async fn delivery(&self, workspace: Uuid, id: Uuid) -> Result<WebhookDelivery, ServiceError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND workspace_id = $2");
        let found = with_db_read!(self.webhooks.db(), pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).bind(Id(workspace)).fetch_optional(pool).await {
                Ok(Some(row)) => delivery_of(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(database)?;
        found.ok_or_else(|| ServiceError::NotFound(format!("webhook delivery {id} not found")))
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn list_webhooks(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let paging: Paging<Uuid> =
            Paging::read(format!("webhooks:{}", caller.workspace_id), request.page_size, &request.page_token)?;
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let mut webhooks = with_db_read!(self.webhooks.db(), pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(caller.workspace_id)).bind(paging.after.map(Id)).bind(paging.fetch())
                .fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(webhook_of).collect::<Result<Vec<_>, _>>())
        })
        .map_err(database)?;
        let next_page_token = paging.finish(&mut webhooks, |w| Uuid::parse_str(&w.id).unwrap_or_default());
        Ok(Response::new(ListWebhooksResponse { webhooks, next_page_token }))
    }

    async fn get_webhook(&self, request: Request<GetWebhookRequest>) -> Result<Response<GetWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let webhook = self.webhook(caller.workspace_id, &request.get_ref().id).await?;
        Ok(Response::new(GetWebhookResponse { webhook: Some(webhook) }))
    }

    async fn create_webhook(
        &self,
        request: Request<CreateWebhookRequest>,
    ) -> Result<Response<CreateWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        check(&r.url, &r.description, &r.events, &r.secret)?;
        let secret = if r.secret.is_empty() { new_secret() } else { r.secret };
        let id = Id::new();
        let now = kiln_common::db::now();
        let count: i64 = with_db_read!(self.webhooks.db(), pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE workspace_id = $1")
                .bind(Id(caller.workspace_id)).fetch_one(pool).await
        })
        .map_err(database)?;
        if count >= MAX_WEBHOOKS {
            return Err(
                ServiceError::FailedPrecondition(format!("a workspace has at most {MAX_WEBHOOKS} webhooks")).into()
            );
        }
        with_db!(self.webhooks.db(), pool => {
            sqlx::query(
                "INSERT INTO webhooks (id, workspace_id, created_at, updated_at, created_by, url, description, events, secret, enabled) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, TRUE)",
            )
            .bind(id).bind(Id(caller.workspace_id)).bind(now).bind(Id(caller.user_id)).bind(r.url.trim())
            .bind(&r.description).bind(Json(&r.events)).bind(&secret)
            .execute(pool).await.map(|_| ())
        })
        .map_err(database)?;
        let webhook = self.webhook(caller.workspace_id, &id.0.to_string()).await?;
        Ok(Response::new(CreateWebhookResponse { webhook: Some(webhook) }))
    }

    async fn update_webhook(
        &self,
        request: Request<UpdateWebhookRequest>,
    ) -> Result<Response<UpdateWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let current = self.webhook(caller.workspace_id, &r.id).await?;
        check(&r.url, &r.description, &r.events, &r.secret)?;
        let secret = if r.secret.is_empty() { current.secret } else { r.secret };
        let enabled = r.enabled.unwrap_or(current.enabled);
        // Enabled again by hand: its failures are forgiven, its waiting deliveries go.
        let revived = enabled && !current.enabled;
        let now = kiln_common::db::now();
        let id = id_in("id", &r.id)?;
        with_db!(self.webhooks.db(), pool => {
            sqlx::query(
                "UPDATE webhooks SET url = $3, description = $4, events = $5, secret = $6, enabled = $7, updated_at = $8, \
                 disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END, \
                 failing_since = CASE WHEN $9 THEN NULL ELSE failing_since END \
                 WHERE id = $1 AND workspace_id = $2",
            )
            .bind(Id(id)).bind(Id(caller.workspace_id)).bind(r.url.trim()).bind(&r.description).bind(Json(&r.events))
            .bind(&secret).bind(enabled).bind(now).bind(revived)
            .execute(pool).await.map(|_| ())
        })
        .map_err(database)?;
        let webhook = self.webhook(caller.workspace_id, &r.id).await?;
        Ok(Response::new(UpdateWebhookResponse { webhook: Some(webhook) }))
    }

    async fn delete_webhook(
        &self,
        request: Request<DeleteWebhookRequest>,
    ) -> Result<Response<DeleteWebhookResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        let deleted = with_db!(self.webhooks.db(), pool => {
            sqlx::query("DELETE FROM webhooks WHERE id = $1 AND workspace_id = $2")
                .bind(Id(id)).bind(Id(caller.workspace_id))
                .execute(pool).await.map(|done| done.rows_affected() == 1)
        })
        .map_err(database)?;
        if !deleted {
            return Err(ServiceError::NotFound(format!("webhook {id} not found")).into());
        }
        Ok(Response::new(DeleteWebhookResponse {}))
    }

    async fn list_webhook_deliveries(
        &self,
        request: Request<ListWebhookDeliveriesRequest>,
    ) -> Result<Response<ListWebhookDeliveriesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        // The subscription must be the caller's: NOT_FOUND otherwise, not an empty list.
        let webhook = id_in("id", &self.webhook(caller.workspace_id, &request.id).await?.id)?;
        let paging: Paging<Uuid> =
            Paging::read(format!("webhook-deliveries:{webhook}"), request.page_size, &request.page_token)?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE workspace_id = $1 AND webhook_id = $2 \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let mut deliveries = with_db_read!(self.webhooks.db(), pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(caller.workspace_id)).bind(Id(webhook)).bind(paging.after.map(Id)).bind(paging.fetch())
                .fetch_all(pool).await;
            rows.and_then(|rows| rows.iter().map(delivery_of).collect::<Result<Vec<_>, _>>())
        })
        .map_err(database)?;
        let next_page_token = paging.finish(&mut deliveries, |d| Uuid::parse_str(&d.id).unwrap_or_default());
        Ok(Response::new(ListWebhookDeliveriesResponse { deliveries, next_page_token }))
    }

    async fn redeliver_webhook_delivery(
        &self,
        request: Request<RedeliverWebhookDeliveryRequest>,
    ) -> Result<Response<RedeliverWebhookDeliveryResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = id_in("id", &request.get_ref().id)?;
        if !self.webhooks.redeliver(caller.workspace_id, id).await.map_err(ServiceError::from)? {
            return Err(ServiceError::NotFound(format!("webhook delivery {id} not found")).into());
        }
        let delivery = self.delivery(caller.workspace_id, id).await?;
        Ok(Response::new(RedeliverWebhookDeliveryResponse { delivery: Some(delivery) }))
    }
}
