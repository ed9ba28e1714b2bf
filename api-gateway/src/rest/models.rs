//! `/models`: the workspace's models over ModelService.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kiln_common::GrpcChannel;
use kiln_proto::v1::{CreateModelRequest, GetModelRequest, model_service_client::ModelServiceClient};

use super::{bad_request, grpc_request, list_params};
use crate::{
    GatewayState,
    error::{ApiError, ApiJson},
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
    ]
}

pub fn router() -> Router<GatewayState> {
    Router::new().route("/", get(list).post(create)).route("/{id}", get(get_one))
}

fn client(state: &GatewayState) -> ModelServiceClient<GrpcChannel> {
    ModelServiceClient::new(state.backends.model.clone())
}

async fn list(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| bad_request("query", e.body_text()))?;
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
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| bad_request("id", e.body_text()))?;
    let response = client(&state).get_model(grpc_request(&headers, GetModelRequest { id })).await?.into_inner();
    Ok(Json(response).into_response())
}
