//! `/applications`: the workspace's applications and their components, over
//! ApplicationService, and `/applications/{id}/generate`, which queues a build.

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{
    CreateApplicationRequest, CreateApplicationResponse, CreateComponentRequest, CreateComponentResponse,
    DeleteApplicationRequest, DeleteApplicationResponse, GenerateApplicationRequest, GenerateApplicationResponse,
    GetApplicationRequest, GetApplicationResponse, ListApplicationsRequest, ListApplicationsResponse,
    ListComponentsRequest, ListComponentsResponse, UpdateApplicationRequest, UpdateApplicationResponse,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListApplicationsRequest, ListApplicationsResponse>(
            Method::GET,
            "/applications",
            "kiln.v1.ApplicationService/ListApplications",
            StatusCode::OK,
            "The workspace's applications, newest first",
        )
        .into(),
        route::<CreateApplicationRequest, CreateApplicationResponse>(
            Method::POST,
            "/applications",
            "kiln.v1.ApplicationService/CreateApplication",
            StatusCode::CREATED,
            "Create an application from some of the workspace's models; its slug comes from its name",
        )
        .into(),
        route::<GetApplicationRequest, GetApplicationResponse>(
            Method::GET,
            "/applications/{id}",
            "kiln.v1.ApplicationService/GetApplication",
            StatusCode::OK,
            "One application with its components",
        )
        .into(),
        route::<UpdateApplicationRequest, UpdateApplicationResponse>(
            Method::PUT,
            "/applications/{id}",
            "kiln.v1.ApplicationService/UpdateApplication",
            StatusCode::OK,
            "Replace an application's name, description, models, template set and configuration",
        )
        .into(),
        route::<DeleteApplicationRequest, DeleteApplicationResponse>(
            Method::DELETE,
            "/applications/{id}",
            "kiln.v1.ApplicationService/DeleteApplication",
            StatusCode::NO_CONTENT,
            "Delete an application and its components; its builds and images are kept",
        )
        .into(),
        route::<GenerateApplicationRequest, GenerateApplicationResponse>(
            Method::POST,
            "/applications/{id}/generate",
            "kiln.v1.ApplicationService/GenerateApplication",
            StatusCode::ACCEPTED,
            "Queue a build of the application (through the workspace's build workflow); follow it at /builds/{id}/logs",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<ListComponentsRequest, ListComponentsResponse>(
            Method::GET,
            "/applications/{application_id}/components",
            "kiln.v1.ApplicationService/ListComponents",
            StatusCode::OK,
            "An application's components",
        )
        .into(),
        route::<CreateComponentRequest, CreateComponentResponse>(
            Method::POST,
            "/applications/{application_id}/components",
            "kiln.v1.ApplicationService/CreateComponent",
            StatusCode::CREATED,
            "Add a component to an application",
        )
        .into(),
    ]
}
