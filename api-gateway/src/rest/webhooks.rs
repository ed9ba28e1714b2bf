//! `/webhooks`: the workspace's webhook subscriptions over WebhookService, their
//! deliveries with every attempt, and redelivery.

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{
    CreateWebhookRequest, CreateWebhookResponse, DeleteWebhookRequest, DeleteWebhookResponse, GetWebhookRequest,
    GetWebhookResponse, ListWebhookDeliveriesRequest, ListWebhookDeliveriesResponse, ListWebhooksRequest,
    ListWebhooksResponse, RedeliverWebhookDeliveryRequest, RedeliverWebhookDeliveryResponse, UpdateWebhookRequest,
    UpdateWebhookResponse,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListWebhooksRequest, ListWebhooksResponse>(
            Method::GET,
            "/webhooks",
            "kiln.v1.WebhookService/ListWebhooks",
            StatusCode::OK,
            "The workspace's webhook subscriptions, oldest first",
        )
        .into(),
        route::<CreateWebhookRequest, CreateWebhookResponse>(
            Method::POST,
            "/webhooks",
            "kiln.v1.WebhookService/CreateWebhook",
            StatusCode::CREATED,
            "Subscribe an http:// URL to event kinds (entity.created, entity.*, build.failed, …); the signing secret is made unless given",
        )
        .into(),
        route::<GetWebhookRequest, GetWebhookResponse>(
            Method::GET,
            "/webhooks/{id}",
            "kiln.v1.WebhookService/GetWebhook",
            StatusCode::OK,
            "One subscription, with why it was disabled if it was",
        )
        .into(),
        route::<UpdateWebhookRequest, UpdateWebhookResponse>(
            Method::PUT,
            "/webhooks/{id}",
            "kiln.v1.WebhookService/UpdateWebhook",
            StatusCode::OK,
            "Change a subscription's URL, events or secret; enable it again after it was disabled",
        )
        .into(),
        route::<DeleteWebhookRequest, DeleteWebhookResponse>(
            Method::DELETE,
            "/webhooks/{id}",
            "kiln.v1.WebhookService/DeleteWebhook",
            StatusCode::NO_CONTENT,
            "Delete a subscription and its deliveries",
        )
        .into(),
        route::<ListWebhookDeliveriesRequest, ListWebhookDeliveriesResponse>(
            Method::GET,
            "/webhooks/{id}/deliveries",
            "kiln.v1.WebhookService/ListWebhookDeliveries",
            StatusCode::OK,
            "A subscription's deliveries, newest first, each with every attempt (time, HTTP status, error, duration)",
        )
        .into(),
        route::<RedeliverWebhookDeliveryRequest, RedeliverWebhookDeliveryResponse>(
            Method::POST,
            "/webhook-deliveries/{id}/redeliver",
            "kiln.v1.WebhookService/RedeliverWebhookDelivery",
            StatusCode::ACCEPTED,
            "Send a delivery again now, whatever became of it",
        )
        .body(Body::OptionalMessage)
        .into(),
    ]
}
