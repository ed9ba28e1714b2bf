//! `/auth`: register, login, refresh, logout, profile and the audit log, over AuthService.

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{
    GetProfileRequest, GetProfileResponse, ListAuditEventsRequest, ListAuditEventsResponse, LoginRequest,
    LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest, RefreshResponse, RegisterRequest, RegisterResponse,
    UpdateProfileRequest, UpdateProfileResponse,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<RegisterRequest, RegisterResponse>(
            Method::POST,
            "/auth/register",
            "kiln.v1.AuthService/Register",
            StatusCode::CREATED,
            "Create an account and its workspace; signs in",
        )
        .public()
        .into(),
        route::<LoginRequest, LoginResponse>(
            Method::POST,
            "/auth/login",
            "kiln.v1.AuthService/Login",
            StatusCode::OK,
            "Exchange email and password for tokens",
        )
        .public()
        .into(),
        route::<RefreshRequest, RefreshResponse>(
            Method::POST,
            "/auth/refresh",
            "kiln.v1.AuthService/Refresh",
            StatusCode::OK,
            "Spend a refresh token for a new token pair",
        )
        .public()
        .into(),
        route::<LogoutRequest, LogoutResponse>(
            Method::POST,
            "/auth/logout",
            "kiln.v1.AuthService/Logout",
            StatusCode::NO_CONTENT,
            "End the session (body optional: the refresh token to revoke)",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<GetProfileRequest, GetProfileResponse>(
            Method::GET,
            "/auth/profile",
            "kiln.v1.AuthService/GetProfile",
            StatusCode::OK,
            "The signed-in user",
        )
        .into(),
        route::<UpdateProfileRequest, UpdateProfileResponse>(
            Method::PUT,
            "/auth/profile",
            "kiln.v1.AuthService/UpdateProfile",
            StatusCode::OK,
            "Change display name and settings",
        )
        .into(),
        route::<ListAuditEventsRequest, ListAuditEventsResponse>(
            Method::GET,
            "/auth/audit",
            "kiln.v1.AuthService/ListAuditEvents",
            StatusCode::OK,
            "The workspace's security events, newest first (owner only)",
        )
        .into(),
    ]
}
