//! `/models`: the workspace's models over ModelService.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kiln_common::GrpcChannel;
use kiln_proto::v1::{
    CreateModelRequest, DeleteModelRequest, GetModelRequest, ListModelVersionsRequest, PlanModelChangeRequest,
    UpdateModelRequest, model_service_client::ModelServiceClient,
};

use super::{grpc_request, list_params, url_error};
use crate::{
    GatewayState,
    error::{ApiError, ApiJson, ApiPath, ApiQuery},
    openapi::Operation,
};

const TAG: &str = "models";

pub fn operations() -> Vec<Operation> {
    vec![
        Operation {
            method: Method::GET,
            path: "/models",
            operation_id: "listModels",
            summary: "The workspace's models, system and user, with their fields (page_size, page_token)",
            tag: TAG,
            request: None,
            response: Some("kiln.v1.ListModelsResponse"),
            success: 200,
            secured: true,
        },
        Operation {
            method: Method::POST,
            path: "/models",
            operation_id: "createModel",
            summary: "Create a model; its table appears in the workspace at once",
            tag: TAG,
            request: Some("kiln.v1.CreateModelRequest"),
            response: Some("kiln.v1.CreateModelResponse"),
            success: 201,
            secured: true,
        },
        Operation {
            method: Method::GET,
            path: "/models/{id}",
            operation_id: "getModel",
            summary: "One model by id, slug or plural name",
            tag: TAG,
            request: None,
            response: Some("kiln.v1.GetModelResponse"),
            success: 200,
            secured: true,
        },
        Operation {
            method: Method::PUT,
            path: "/models/{id}",
            operation_id: "updateModel",
            summary: "Change a model (the complete new field list) as a new version; dropping fields needs confirm_data_loss",
            tag: TAG,
            request: Some("kiln.v1.UpdateModelRequest"),
            response: Some("kiln.v1.UpdateModelResponse"),
            success: 200,
            secured: true,
        },
        Operation {
            method: Method::POST,
            path: "/models/{id}/plan",
            operation_id: "planModelChange",
            summary: "What a change would do, without doing it",
            tag: TAG,
            request: Some("kiln.v1.PlanModelChangeRequest"),
            response: Some("kiln.v1.PlanModelChangeResponse"),
            success: 200,
            secured: true,
        },
        Operation {
            method: Method::DELETE,
            path: "/models/{id}",
            operation_id: "deleteModel",
            summary: "Delete a user model and its table; needs ?confirm_data_loss=true",
            tag: TAG,
            request: None,
            response: None,
            success: 204,
            secured: true,
        },
        Operation {
            method: Method::GET,
            path: "/models/{id}/versions",
            operation_id: "listModelVersions",
            summary: "A model's versions, newest first",
            tag: TAG,
            request: None,
            response: Some("kiln.v1.ListModelVersionsResponse"),
            success: 200,
            secured: true,
        },
    ]
}

pub fn router() -> Router<GatewayState> {
    Router::new()
        .route("/", get(list).post(create))
        .route("/{id}", get(get_one).put(update).delete(delete))
        .route("/{id}/plan", post(plan))
        .route("/{id}/versions", get(versions))
}

fn client(state: &GatewayState) -> ModelServiceClient<GrpcChannel> {
    ModelServiceClient::new(state.backends.model.clone())
}

async fn list(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page_size, page_token) = list_params(&query)?;
    let request = kiln_proto::v1::ListModelsRequest { page_size, page_token };
    let response = client(&state).list_models(grpc_request(&headers, request)).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn create(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateModelRequest>,
) -> Result<Response, ApiError> {
    let response = client(&state).create_model(grpc_request(&headers, body)).await?.into_inner();
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn get_one(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let response = client(&state).get_model(grpc_request(&headers, GetModelRequest { id })).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn update(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut body): ApiJson<UpdateModelRequest>,
) -> Result<Response, ApiError> {
    body.id = id;
    let response = client(&state).update_model(grpc_request(&headers, body)).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn plan(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut body): ApiJson<PlanModelChangeRequest>,
) -> Result<Response, ApiError> {
    body.id = id;
    let response = client(&state).plan_model_change(grpc_request(&headers, body)).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn delete(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let confirm_data_loss = match query.get("confirm_data_loss").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(url_error("confirm_data_loss", "must be true or false")),
    };
    client(&state).delete_model(grpc_request(&headers, DeleteModelRequest { id, confirm_data_loss })).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn versions(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page_size, page_token) = list_params(&query)?;
    let request = ListModelVersionsRequest { id, page_size, page_token };
    let response = client(&state).list_model_versions(grpc_request(&headers, request)).await?.into_inner();
    Ok(Json(response).into_response())
}
