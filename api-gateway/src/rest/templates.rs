//! `/templates/{id}/preview`: one template rendered against an application, over
//! TemplateService. Templates themselves are read and written at `/templates` (the
//! records routes, with the same checks TemplateService makes).

use axum::{
    http::{Method, StatusCode},
    response::Response,
};
use kiln_proto::v1::{GenerateSdkRequest, GenerateSdkResponse, PreviewTemplateRequest, PreviewTemplateResponse};

use super::{Route, file, route};

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
        route::<GenerateSdkRequest, GenerateSdkResponse>(
            Method::GET,
            "/sdk/{language}",
            "kiln.v1.TemplateService/GenerateSdk",
            StatusCode::OK,
            "A typed client package for the workspace's models (python or typescript), as a .tar.gz rendered from the template set sdk-<language>",
        )
        .operation_id("downloadSdk")
        .answer_as("application/gzip", sdk_archive)
        .into(),
    ]
}

fn sdk_archive(sdk: GenerateSdkResponse, status: StatusCode) -> Response {
    file(status, sdk.archive, "application/gzip", "attachment", &sdk.file_name)
}
