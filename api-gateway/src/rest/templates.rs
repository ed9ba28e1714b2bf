//! `/templates/{id}/preview`: one template rendered against an application, over
//! TemplateService. Templates themselves are read and written at `/templates` (the
//! records routes, with the same checks TemplateService makes).

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{PreviewTemplateRequest, PreviewTemplateResponse};

use super::{Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<PreviewTemplateRequest, PreviewTemplateResponse>(
            Method::POST,
            "/templates/{id}/preview",
            "kiln.v1.TemplateService/PreviewTemplate",
            StatusCode::OK,
            "Render one template for an application's models (application_id) or a given context, building nothing",
        )
        .into(),
    ]
}
