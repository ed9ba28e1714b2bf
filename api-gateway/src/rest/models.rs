//! `/models`: the workspace's models, and `/proto`: the typed contract derived from them,
//! over ModelService.

use axum::{
    http::{Method, StatusCode},
    response::Response,
};
use kiln_proto::v1::{
    CreateModelRequest, CreateModelResponse, DeleteModelRequest, DeleteModelResponse, GetModelRequest,
    GetModelResponse, GetTypedContractRequest, GetTypedContractResponse, ListModelVersionsRequest,
    ListModelVersionsResponse, ListModelsRequest, ListModelsResponse, PlanModelChangeRequest, PlanModelChangeResponse,
    UpdateModelRequest, UpdateModelResponse,
};

use super::{Route, file, route};

pub fn routes() -> Vec<Route> {
    vec![
        route::<ListModelsRequest, ListModelsResponse>(
            Method::GET,
            "/models",
            "kiln.v1.ModelService/ListModels",
            StatusCode::OK,
            "The workspace's models, system and user, with their fields",
        )
        .into(),
        route::<CreateModelRequest, CreateModelResponse>(
            Method::POST,
            "/models",
            "kiln.v1.ModelService/CreateModel",
            StatusCode::CREATED,
            "Create a model; its table appears in the workspace at once",
        )
        .into(),
        route::<GetModelRequest, GetModelResponse>(
            Method::GET,
            "/models/{id}",
            "kiln.v1.ModelService/GetModel",
            StatusCode::OK,
            "One model by id, slug or plural name",
        )
        .into(),
        route::<UpdateModelRequest, UpdateModelResponse>(
            Method::PUT,
            "/models/{id}",
            "kiln.v1.ModelService/UpdateModel",
            StatusCode::OK,
            "Change a model (the complete new field list) as a new version; dropping fields needs confirm_data_loss",
        )
        .into(),
        route::<PlanModelChangeRequest, PlanModelChangeResponse>(
            Method::POST,
            "/models/{id}/plan",
            "kiln.v1.ModelService/PlanModelChange",
            StatusCode::OK,
            "What a change would do, without doing it",
        )
        .into(),
        route::<DeleteModelRequest, DeleteModelResponse>(
            Method::DELETE,
            "/models/{id}",
            "kiln.v1.ModelService/DeleteModel",
            StatusCode::NO_CONTENT,
            "Delete a user model and its table; needs ?confirm_data_loss=true",
        )
        .into(),
        route::<ListModelVersionsRequest, ListModelVersionsResponse>(
            Method::GET,
            "/models/{id}/versions",
            "kiln.v1.ModelService/ListModelVersions",
            StatusCode::OK,
            "A model's versions, newest first",
        )
        .into(),
        route::<GetTypedContractRequest, GetTypedContractResponse>(
            Method::GET,
            "/proto",
            "kiln.v1.ModelService/GetTypedContract",
            StatusCode::OK,
            "The workspace's typed contract as a .proto file: package kiln.ws.<workspace_slug>.v1, a message and a service per user model",
        )
        .operation_id("getTypedContractProto")
        .answer_as("text/plain", proto_file)
        .into(),
        route::<GetTypedContractRequest, GetTypedContractResponse>(
            Method::GET,
            "/proto/descriptor",
            "kiln.v1.ModelService/GetTypedContract",
            StatusCode::OK,
            "The workspace's typed contract as a serialized google.protobuf.FileDescriptorSet (with the well-known types it imports)",
        )
        .operation_id("getTypedContractDescriptor")
        .answer_as("application/x-protobuf", descriptor_file)
        .into(),
    ]
}

fn proto_file(contract: GetTypedContractResponse, status: StatusCode) -> Response {
    let name = contract.file_name.rsplit('/').next().unwrap_or("models.proto").to_string();
    file(status, contract.proto.into_bytes(), "text/plain; charset=utf-8", "inline", &name)
}

fn descriptor_file(contract: GetTypedContractResponse, status: StatusCode) -> Response {
    let name = format!("{}.binpb", contract.package);
    file(status, contract.descriptor_set, "application/x-protobuf", "inline", &name)
}
