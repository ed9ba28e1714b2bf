//! Workflow runs over WorkflowService: started by hand (`/workflows/{id}/execute`), their
//! history (`/workflows/{id}/runs`, `/workflow-runs/{id}`) and reruns. Workflows
//! themselves are read and written at `/workflows` (the records routes, with the same
//! checks WorkflowService makes).

use axum::http::{Method, StatusCode};
use kiln_proto::v1::{
    ExecuteWorkflowRequest, ExecuteWorkflowResponse, GetWorkflowRunRequest, GetWorkflowRunResponse,
    ListWorkflowRunsRequest, ListWorkflowRunsResponse, RerunWorkflowRunRequest, RerunWorkflowRunResponse,
};

use super::{Body, Route, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ExecuteWorkflowRequest, ExecuteWorkflowResponse>(
            Method::POST,
            "/workflows/{id}/execute",
            "kiln.v1.WorkflowService/ExecuteWorkflow",
            StatusCode::ACCEPTED,
            "Start a run now with the given input, whatever the trigger; follow it at /workflow-runs/{id}",
        )
        .body(Body::OptionalMessage)
        .into(),
        route::<ListWorkflowRunsRequest, ListWorkflowRunsResponse>(
            Method::GET,
            "/workflows/{id}/runs",
            "kiln.v1.WorkflowService/ListWorkflowRuns",
            StatusCode::OK,
            "A workflow's runs, newest first",
        )
        .into(),
        route::<GetWorkflowRunRequest, GetWorkflowRunResponse>(
            Method::GET,
            "/workflow-runs/{id}",
            "kiln.v1.WorkflowService/GetWorkflowRun",
            StatusCode::OK,
            "One run with every action's status, settings as run, output, error, attempts and duration",
        )
        .into(),
        route::<RerunWorkflowRunRequest, RerunWorkflowRunResponse>(
            Method::POST,
            "/workflow-runs/{id}/rerun",
            "kiln.v1.WorkflowService/RerunWorkflowRun",
            StatusCode::ACCEPTED,
            "Run a past run's workflow again, as it is now, with that run's input",
        )
        .body(Body::OptionalMessage)
        .into(),
    ]
}
