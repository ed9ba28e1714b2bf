//! Prompts over PromptService: their versions (`/prompts/{id}/versions`, written with
//! the version they started from, a 409 naming the current one when someone saved
//! first), diffs, test runs, and the workspace's provider (`/prompt-provider`). Prompts
//! themselves are read and written at `/prompts` (the records routes, with the same
//! checks; a content change made there is kept as a version).

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{
    CreatePromptVersionRequest, CreatePromptVersionResponse, DeletePromptProviderRequest, DeletePromptProviderResponse,
    DiffPromptVersionsRequest, DiffPromptVersionsResponse, GetPromptProviderRequest, GetPromptProviderResponse,
    GetPromptVersionRequest, GetPromptVersionResponse, ListPromptTestRunsRequest, ListPromptTestRunsResponse,
    ListPromptVersionsRequest, ListPromptVersionsResponse, SetPromptProviderRequest, SetPromptProviderResponse,
    TestPromptRequest, TestPromptResponse,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListPromptVersionsRequest, ListPromptVersionsResponse>(
            Method::GET,
            "/prompts/{id}/versions",
            "kiln.v1.PromptService/ListPromptVersions",
            StatusCode::OK,
            "A prompt's versions, newest first",
        )
        .into(),
        route::<CreatePromptVersionRequest, CreatePromptVersionResponse>(
            Method::POST,
            "/prompts/{id}/versions",
            "kiln.v1.PromptService/CreatePromptVersion",
            StatusCode::CREATED,
            "Save new content and variables as the next version and make it current; with base_version, 409 naming the current version if someone saved since",
        )
        .into(),
        route::<GetPromptVersionRequest, GetPromptVersionResponse>(
            Method::GET,
            "/prompts/{id}/versions/{version}",
            "kiln.v1.PromptService/GetPromptVersion",
            StatusCode::OK,
            "One version of a prompt (0: the current one)",
        )
        .into(),
        route::<DiffPromptVersionsRequest, DiffPromptVersionsResponse>(
            Method::GET,
            "/prompts/{id}/diff",
            "kiln.v1.PromptService/DiffPromptVersions",
            StatusCode::OK,
            "The line diff between versions `from` and `to` (0 or absent: the current one), and the variables each adds or drops",
        )
        .into(),
        route::<TestPromptRequest, TestPromptResponse>(
            Method::POST,
            "/prompts/{id}/test",
            "kiln.v1.PromptService/TestPrompt",
            StatusCode::CREATED,
            "Render a version with variables (each missing or unknown one a field error) and, if the workspace has a provider, send it; the test run is kept",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<ListPromptTestRunsRequest, ListPromptTestRunsResponse>(
            Method::GET,
            "/prompts/{id}/test-runs",
            "kiln.v1.PromptService/ListPromptTestRuns",
            StatusCode::OK,
            "A prompt's test runs, newest first, with output, latency and token counts",
        )
        .into(),
        route::<GetPromptProviderRequest, GetPromptProviderResponse>(
            Method::GET,
            "/prompt-provider",
            "kiln.v1.PromptService/GetPromptProvider",
            StatusCode::OK,
            "The workspace's OpenAI-compatible endpoint for test runs (its key never shown)",
        )
        .into(),
        route::<SetPromptProviderRequest, SetPromptProviderResponse>(
            Method::PUT,
            "/prompt-provider",
            "kiln.v1.PromptService/SetPromptProvider",
            StatusCode::OK,
            "Set the endpoint's base URL (http://…/v1), model and key (kept encrypted; absent keeps the last, \"\" removes it)",
        )
        .into(),
        route::<DeletePromptProviderRequest, DeletePromptProviderResponse>(
            Method::DELETE,
            "/prompt-provider",
            "kiln.v1.PromptService/DeletePromptProvider",
            StatusCode::NO_CONTENT,
            "Remove the endpoint: test runs only render",
        )
        .into(),
    ]
}
