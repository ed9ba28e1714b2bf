//! `/builds`: builds over BuildService, their live log as server-sent events, their
//! source tree as a download and their images run as deployments; `/build-queue`: the
//! queue's counts and the workspace's dead letters.

use std::convert::Infallible;

use axum::{
    body::Body as HttpBody,
    http::{HeaderValue, Method, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use kiln_common::ErrorCode;
use kiln_proto::v1::{
    BuildArtifactChunk, BuildEvent, CancelBuildRequest, CancelBuildResponse, DeleteDeploymentRequest,
    DeleteDeploymentResponse, GetBuildArtifactRequest, GetBuildQueueRequest, GetBuildQueueResponse, GetBuildRequest,
    GetBuildResponse, ListBuildsRequest, ListBuildsResponse, ListDeploymentsRequest, ListDeploymentsResponse,
    RunBuildRequest, RunBuildResponse, WatchBuildRequest, build_event,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListBuildsRequest, ListBuildsResponse>(
            Method::GET,
            "/builds",
            "kiln.v1.BuildService/ListBuilds",
            StatusCode::OK,
            "The workspace's builds, newest first: application_id and status narrow them",
        )
        .into(),
        route::<GetBuildRequest, GetBuildResponse>(
            Method::GET,
            "/builds/{id}",
            "kiln.v1.BuildService/GetBuild",
            StatusCode::OK,
            "One build: status, steps with timings, image",
        )
        .into(),
        route::<CancelBuildRequest, CancelBuildResponse>(
            Method::POST,
            "/builds/{id}/cancel",
            "kiln.v1.BuildService/CancelBuild",
            StatusCode::OK,
            "Cancel a queued or running build; a finished one answers 409",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<WatchBuildRequest, BuildEvent>(
            Method::GET,
            "/builds/{id}/logs",
            "kiln.v1.BuildService/WatchBuild",
            StatusCode::OK,
            "The build's log so far, then live, then its final status, as server-sent events: `log` (id = the \
             line's sequence; Last-Event-ID or after_sequence resumes) and `build`",
        )
        .from_header("last-event-id", "after_sequence")
        .streamed("text/event-stream", server_sent_events)
        .into(),
        route::<GetBuildArtifactRequest, BuildArtifactChunk>(
            Method::GET,
            "/builds/{id}/artifact",
            "kiln.v1.BuildService/GetBuildArtifact",
            StatusCode::OK,
            "The build's rendered source tree, a .tar.gz",
        )
        .streamed("application/gzip", download)
        .into(),
        route::<RunBuildRequest, RunBuildResponse>(
            Method::POST,
            "/builds/{id}/run",
            "kiln.v1.BuildService/RunBuild",
            StatusCode::CREATED,
            "Run a succeeded build's image as a container on a free local port (labelled, limited in memory, CPU and processes)",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<ListDeploymentsRequest, ListDeploymentsResponse>(
            Method::GET,
            "/applications/{application_id}/deployments",
            "kiln.v1.BuildService/ListDeployments",
            StatusCode::OK,
            "An application's deployments with their status, port and health as they are now",
        )
        .into(),
        route::<DeleteDeploymentRequest, DeleteDeploymentResponse>(
            Method::DELETE,
            "/applications/{application_id}/deployments/{id}",
            "kiln.v1.BuildService/DeleteDeployment",
            StatusCode::NO_CONTENT,
            "Stop and remove a deployment's container",
        )
        .into(),
        route::<GetBuildQueueRequest, GetBuildQueueResponse>(
            Method::GET,
            "/build-queue",
            "kiln.v1.BuildService/GetBuildQueue",
            StatusCode::OK,
            "Build jobs waiting, in flight, retrying and dead, and the workspace's dead letters with their reasons",
        )
        .into(),
    ]
}

/// Each BuildEvent as one event: `log` with the line's sequence as its id, `build` with
/// the build; a failure of the stream as `error`, then the end.
fn server_sent_events(events: tonic::Streaming<BuildEvent>) -> Response {
    let events = events.map(|item| {
        let event = match item {
            Ok(BuildEvent { event: Some(build_event::Event::Log(line)) }) => {
                Event::default().event("log").id(line.sequence.to_string()).json_data(&line)
            }
            Ok(BuildEvent { event: Some(build_event::Event::Build(build)) }) => {
                Event::default().event("build").json_data(&build)
            }
            Ok(BuildEvent { event: None }) => Ok(Event::default().comment("")),
            Err(status) => {
                let code = ErrorCode::from_grpc(status.code());
                let error = serde_json::json!({ "error": { "code": code.as_str(), "message": status.message() } });
                Event::default().event("error").json_data(error)
            }
        };
        Ok::<Event, Infallible>(event.unwrap_or_else(|_| Event::default().comment("unwritable event")))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// The chunks as one download. A build without an artifact answered NOT_FOUND before
/// any chunk, so the call failed before this.
fn download(chunks: tonic::Streaming<BuildArtifactChunk>) -> Response {
    let body = chunks.map(|chunk| chunk.map(|chunk| chunk.data));
    let mut response = Response::new(HttpBody::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"build.tar.gz\""));
    response
}
