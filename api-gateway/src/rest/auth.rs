//! `/auth`: register, login, refresh, logout, profile, over AuthService.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get, post},
};
use kiln_common::ErrorCode;
use kiln_proto::v1::{
    GetProfileRequest, ListAuditEventsRequest, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest,
    UpdateProfileRequest, auth_service_client::AuthServiceClient,
};

use std::collections::HashMap;

use super::{grpc_request, list_params};
use crate::{
    GatewayState,
    error::{ApiError, ApiJson, ApiQuery},
    openapi::Operation,
};

const TAG: &str = "auth";

pub fn operations() -> Vec<Operation> {
    let op = |method: Method, path, operation_id, summary, request, response, success, secured| Operation {
        method,
        path,
        operation_id,
        summary,
        tag: TAG,
        request,
        response,
        success,
        secured,
    };
    vec![
        op(
            Method::POST,
            "/auth/register",
            "register",
            "Create an account and its workspace; signs in",
            Some("kiln.v1.RegisterRequest"),
            Some("kiln.v1.RegisterResponse"),
            201,
            false,
        ),
        op(
            Method::POST,
            "/auth/login",
            "login",
            "Exchange email and password for tokens",
            Some("kiln.v1.LoginRequest"),
            Some("kiln.v1.LoginResponse"),
            200,
            false,
        ),
        op(
            Method::POST,
            "/auth/refresh",
            "refresh",
            "Spend a refresh token for a new token pair",
            Some("kiln.v1.RefreshRequest"),
            Some("kiln.v1.RefreshResponse"),
            200,
            false,
        ),
        op(
            Method::POST,
            "/auth/logout",
            "logout",
            "End the session (body optional: the refresh token to revoke)",
            None,
            None,
            204,
            true,
        ),
        op(
            Method::GET,
            "/auth/profile",
            "getProfile",
            "The signed-in user",
            None,
            Some("kiln.v1.GetProfileResponse"),
            200,
            true,
        ),
        op(
            Method::GET,
            "/auth/audit",
            "listAuditEvents",
            "The workspace's security events, newest first (owner only): page_size, page_token",
            None,
            Some("kiln.v1.ListAuditEventsResponse"),
            200,
            true,
        ),
        op(
            Method::PUT,
            "/auth/profile",
            "updateProfile",
            "Change display name and settings",
            Some("kiln.v1.UpdateProfileRequest"),
            Some("kiln.v1.UpdateProfileResponse"),
            200,
            true,
        ),
    ]
}

pub fn router() -> Router<GatewayState> {
    let routes: [(&str, MethodRouter<GatewayState>); 6] = [
        ("/register", post(register)),
        ("/login", post(login)),
        ("/refresh", post(refresh)),
        ("/logout", post(logout)),
        ("/profile", get(get_profile).put(update_profile)),
        ("/audit", get(audit_events)),
    ];
    routes.into_iter().fold(Router::new(), |router, (path, method_router)| router.route(path, method_router))
}

fn client(state: &GatewayState) -> AuthServiceClient<kiln_common::GrpcChannel> {
    AuthServiceClient::new(state.backends.app.clone())
}

async fn register(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let response = client(&state).register(grpc_request(&headers, body)).await?.into_inner();
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn login(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let response = client(&state).login(grpc_request(&headers, body)).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn refresh(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let response = client(&state).refresh(grpc_request(&headers, body)).await?.into_inner();
    Ok(Json(response).into_response())
}

/// The body is optional here, so it is read by hand: empty means "this session".
async fn logout(State(state): State<GatewayState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        let is_json = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the request body must be JSON: send `content-type: application/json`",
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(ErrorCode::InvalidArgument, "the request body is not valid JSON for this call")
                .with_details(serde_json::json!([{ "field": "body", "description": e.to_string() }]))
        })?
    };
    client(&state).logout(grpc_request(&headers, request)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_profile(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let response = client(&state).get_profile(grpc_request(&headers, GetProfileRequest {})).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn update_profile(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateProfileRequest>,
) -> Result<Response, ApiError> {
    let response = client(&state).update_profile(grpc_request(&headers, body)).await?.into_inner();
    Ok(Json(response).into_response())
}

async fn audit_events(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page_size, page_token) = list_params(&query)?;
    let request = ListAuditEventsRequest { page_size, page_token };
    let response = client(&state).list_audit_events(grpc_request(&headers, request)).await?.into_inner();
    Ok(Json(response).into_response())
}
