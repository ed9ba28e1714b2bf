//! REST under `/api/v1` (and `/api`). Every route is declared once, as a [`Route`]: its
//! method, path, the `kiln.v1` RPC it calls, its success status and summary. The router,
//! the OpenAPI operation and the call itself come from that declaration: the request
//! message is made of the path's parameters, the query and the JSON body, each by field
//! name (the query typed by the message's fields), the RPC is called on the channel of
//! the role that serves it, and its answer is written as JSON.

pub mod applications;
pub mod auth;
pub mod builds;
pub mod entities;
pub mod models;
pub mod prompts;
pub mod templates;
pub mod webhooks;
pub mod workflows;

use std::{
    marker::PhantomData,
    sync::{Arc, LazyLock},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{MethodFilter, MethodRouter, on},
};
use kiln_common::{
    ErrorCode,
    limits::{MAX_JSON_DEPTH, MAX_SAFE_INTEGER, is_safe_integer, json_depth, too_deep},
};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};
use tonic::metadata::{MetadataMap, MetadataValue};

pub use crate::error::url_error;
use crate::{ApiError, GatewayState, error::json_rejection};

/// Where a route's JSON body goes in its request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body: the message is the path's parameters and the query.
    None,
    /// The body is the message.
    Message,
    /// The body is the message, or absent for a message of defaults.
    OptionalMessage,
    /// The body is this field of the message (a record, say).
    Field(&'static str),
}

/// How a route writes what its RPC answers.
pub enum Answer<Resp> {
    /// A unary RPC's message, written by the function (JSON unless said otherwise).
    Unary(fn(Resp, StatusCode) -> Response),
    /// A server-streaming RPC's messages, written as they come (server-sent events, a
    /// download) by the function.
    Streamed(fn(tonic::Streaming<Resp>) -> Response),
}

impl<Resp> Clone for Answer<Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Resp> Copy for Answer<Resp> {}

/// One REST route, as routed, documented and called.
pub struct Route {
    pub method: Method,
    /// Relative to `/api/v1`; `{name}` segments are fields of the request message.
    pub path: &'static str,
    /// The RPC it calls, `package.Service/Method`.
    pub rpc: &'static str,
    pub operation_id: String,
    pub summary: &'static str,
    pub tag: &'static str,
    pub success: StatusCode,
    /// Whether an access token is required.
    pub secured: bool,
    pub body: Body,
    /// The request and answer messages' full names, as the Rust types say them.
    pub request_message: String,
    pub response_message: String,
    /// The success answer's media type.
    pub media: &'static str,
    handler: MethodRouter<GatewayState>,
}

impl Route {
    /// The service whose RPC the route calls, `package.Service`.
    pub fn service(&self) -> &'static str {
        service_of(self.rpc)
    }

    /// The route's OpenAPI request body: the message, the field the body fills, or none.
    pub fn body_message(&self, pool: &DescriptorPool) -> Option<MessageDescriptor> {
        let request = pool.get_message_by_name(&self.request_message)?;
        match self.body {
            Body::None => None,
            Body::Message | Body::OptionalMessage => Some(request),
            Body::Field(name) => match request.get_field_by_name(name)?.kind() {
                Kind::Message(message) => Some(message),
                _ => None,
            },
        }
    }

    /// The request message's fields a client gives in the query: those neither in the
    /// path nor in the body.
    pub fn query_fields(&self, pool: &DescriptorPool) -> Vec<prost_reflect::FieldDescriptor> {
        if self.body != Body::None {
            return Vec::new();
        }
        let Some(request) = pool.get_message_by_name(&self.request_message) else { return Vec::new() };
        let in_path = path_parameters(self.path);
        request.fields().filter(|field| !in_path.contains(&field.name())).collect()
    }
}

fn service_of(rpc: &'static str) -> &'static str {
    rpc.split_once('/').map(|(service, _)| service).unwrap_or_default()
}

/// `{name}` segments of a path.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect()
}

/// A route being declared; `.into()` makes it a [`Route`].
pub struct Declared<Req, Resp> {
    method: Method,
    path: &'static str,
    rpc: &'static str,
    operation_id: Option<&'static str>,
    summary: &'static str,
    success: StatusCode,
    secured: bool,
    body: Body,
    /// Fields the route sets whatever the client sends (PATCH's `partial`).
    fixed: Vec<(&'static str, Value)>,
    /// Fields a request header fills when the path and query do not (`Last-Event-ID`).
    from_headers: Vec<(&'static str, &'static str)>,
    answer: Answer<Resp>,
    media: &'static str,
    request: PhantomData<fn(Req)>,
}

/// Declares a route calling `rpc` with `Req` and answering `Resp`: secured, no body for
/// GET and DELETE and the message as body otherwise, the answer as JSON.
pub fn route<Req, Resp>(
    method: Method,
    path: &'static str,
    rpc: &'static str,
    success: StatusCode,
    summary: &'static str,
) -> Declared<Req, Resp>
where
    Resp: Serialize,
{
    let body = if method == Method::GET || method == Method::DELETE { Body::None } else { Body::Message };
    Declared {
        method,
        path,
        rpc,
        operation_id: None,
        summary,
        success,
        secured: true,
        body,
        fixed: Vec::new(),
        from_headers: Vec::new(),
        answer: Answer::Unary(json_answer::<Resp>),
        media: "application/json",
        request: PhantomData,
    }
}

impl<Req, Resp> Declared<Req, Resp> {
    /// Callable without an access token.
    pub fn public(mut self) -> Self {
        self.secured = false;
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// The OpenAPI operation id, where the RPC's name (lower camel case) is not the one.
    pub fn operation_id(mut self, id: &'static str) -> Self {
        self.operation_id = Some(id);
        self
    }

    pub fn fixed(mut self, field: &'static str, value: Value) -> Self {
        self.fixed.push((field, value));
        self
    }

    /// How the answer is written, where plain JSON of the message is not the way.
    pub fn answer(mut self, answer: fn(Resp, StatusCode) -> Response) -> Self {
        self.answer = Answer::Unary(answer);
        self
    }

    /// Like [`Self::answer`], writing the body as `media` (a file, not JSON).
    pub fn answer_as(mut self, media: &'static str, answer: fn(Resp, StatusCode) -> Response) -> Self {
        self.answer = Answer::Unary(answer);
        self.media = media;
        self
    }

    /// The RPC streams: `answer` writes its messages as `media` while they come.
    pub fn streamed(mut self, media: &'static str, answer: fn(tonic::Streaming<Resp>) -> Response) -> Self {
        self.answer = Answer::Streamed(answer);
        self.media = media;
        self
    }

    /// Request header `header` fills `field` when the path and query leave it out.
    pub fn from_header(mut self, header: &'static str, field: &'static str) -> Self {
        self.from_headers.push((header, field));
        self
    }
}

impl<Req, Resp> From<Declared<Req, Resp>> for Route
where
    Req: prost::Message + prost::Name + DeserializeOwned + Default + Send + 'static,
    Resp: prost::Message + prost::Name + Default + Send + 'static,
{
    fn from(declared: Declared<Req, Resp>) -> Route {
        let operation_id = match declared.operation_id {
            Some(id) => id.to_string(),
            None => lower_camel(declared.rpc.rsplit('/').next().unwrap_or_default()),
        };
        // `check` refuses a route whose RPC is not in the contract, so the path is valid.
        let grpc_path = http::uri::PathAndQuery::try_from(format!("/{}", declared.rpc))
            .unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/"));
        let call: Arc<Call<Req, Resp>> = Arc::new(Call {
            rpc: declared.rpc,
            grpc_path,
            in_path: path_parameters(declared.path),
            request_descriptor: descriptors().get_message_by_name(&Req::full_name()),
            body: declared.body,
            fixed: declared.fixed,
            from_headers: declared.from_headers,
            success: declared.success,
            answer: declared.answer,
            request: PhantomData,
        });
        let handler = move |state, request| {
            let call = call.clone();
            async move { call.run(state, request).await }
        };
        // Routes are declared with the methods REST uses, all of which axum routes.
        let filter = MethodFilter::try_from(declared.method.clone()).unwrap_or(MethodFilter::GET);
        Route {
            handler: on(filter, handler),
            method: declared.method,
            path: declared.path,
            rpc: declared.rpc,
            operation_id,
            summary: declared.summary,
            tag: "",
            success: declared.success,
            secured: declared.secured,
            body: declared.body,
            request_message: Req::full_name(),
            response_message: Resp::full_name(),
            media: declared.media,
        }
    }
}

/// Every REST route, each tagged with its group.
pub fn routes() -> Vec<Route> {
    let tagged = |tag: &'static str, routes: Vec<Route>| routes.into_iter().map(move |r| Route { tag, ..r });
    tagged("auth", auth::routes())
        .chain(tagged("models", models::routes()))
        .chain(tagged("applications", applications::routes()))
        .chain(tagged("templates", templates::routes()))
        .chain(tagged("workflows", workflows::routes()))
        .chain(tagged("webhooks", webhooks::routes()))
        .chain(tagged("prompts", prompts::routes()))
        .chain(tagged("builds", builds::routes()))
        .chain(tagged("records", entities::routes()))
        .collect()
}

/// The router of `routes`; `layer_of` wraps a route's handler (a rate limit, say).
pub fn router(
    routes: Vec<Route>,
    layer_of: impl Fn(&Route, MethodRouter<GatewayState>) -> MethodRouter<GatewayState>,
) -> Router<GatewayState> {
    routes.into_iter().fold(Router::new(), |router, route| {
        let handler = layer_of(&route, route.handler.clone());
        router.route(route.path, handler)
    })
}

/// Checks every route against the contract: its RPC exists, takes the route's request
/// message and answers its response message, and each path parameter is a field.
pub fn check(routes: &[Route], pool: &DescriptorPool) -> anyhow::Result<()> {
    for route in routes {
        let (service, method) = route.rpc.split_once('/').unwrap_or_default();
        let rpc = pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .ok_or_else(|| anyhow::anyhow!("{} {}: no RPC {}", route.method, route.path, route.rpc))?;
        anyhow::ensure!(
            rpc.input().full_name() == route.request_message && rpc.output().full_name() == route.response_message,
            "{} {}: {} takes {} and answers {}, not {} and {}",
            route.method,
            route.path,
            route.rpc,
            rpc.input().full_name(),
            rpc.output().full_name(),
            route.request_message,
            route.response_message
        );
        for name in path_parameters(route.path) {
            anyhow::ensure!(
                rpc.input().get_field_by_name(name).is_some(),
                "{} {}: `{name}` is not a field of {}",
                route.method,
                route.path,
                route.request_message
            );
        }
    }
    Ok(())
}

/// The `kiln.v1` descriptors, to type query parameters by their fields.
pub fn descriptors() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        // Built into the binary by kiln-proto's build script from the same files the
        // messages are generated from; it decodes, or nothing would have compiled.
        DescriptorPool::decode(kiln_proto::FILE_DESCRIPTOR_SET).unwrap_or_default()
    });
    &POOL
}

/// What one route does when called: everything but the types is data.
struct Call<Req, Resp> {
    rpc: &'static str,
    /// `/package.Service/Method`, the gRPC request path.
    grpc_path: http::uri::PathAndQuery,
    /// The path's `{name}` segments.
    in_path: Vec<&'static str>,
    /// The request message's descriptor, to type the query by.
    request_descriptor: Option<MessageDescriptor>,
    body: Body,
    fixed: Vec<(&'static str, Value)>,
    from_headers: Vec<(&'static str, &'static str)>,
    success: StatusCode,
    answer: Answer<Resp>,
    request: PhantomData<fn(Req)>,
}

impl<Req, Resp> Call<Req, Resp>
where
    Req: prost::Message + prost::Name + DeserializeOwned + Default + Send + 'static,
    Resp: prost::Message + Default + Send + 'static,
{
    async fn run(&self, State(state): State<GatewayState>, request: Request) -> Response {
        match self.call(state, request).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn call(&self, state: GatewayState, request: Request) -> Result<Response, ApiError> {
        let (mut parts, body) = request.into_parts();
        let mut metadata = MetadataMap::new();
        copy_metadata(&parts.headers, &mut metadata);
        let mut message = Map::new();
        if self.body == Body::None && parts.uri.query().is_some() {
            self.read_query(&parts.uri, &mut message)?;
        }
        for (header, field) in &self.from_headers {
            if let Some(value) = parts.headers.get(*header).and_then(|v| v.to_str().ok()) {
                message.entry(field.to_string()).or_insert_with(|| Value::String(value.trim().to_string()));
            }
        }
        if !self.in_path.is_empty() {
            let params = RawPathParams::from_request_parts(&mut parts, &state)
                .await
                .map_err(|rejection| url_error("path", rejection.body_text()))?;
            for (name, value) in &params {
                message.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
        let request = Request::from_parts(parts, body);
        match self.body {
            Body::None => {}
            Body::Message => merge_body(&mut message, json_body(request, &state).await?),
            Body::OptionalMessage => {
                if let Some(body) = optional_json_body(request, &state).await? {
                    merge_body(&mut message, body);
                }
            }
            Body::Field(name) => {
                message.insert(name.to_string(), Value::Object(json_body(request, &state).await?));
            }
        }
        for (field, value) in &self.fixed {
            message.insert(field.to_string(), value.clone());
        }
        let request: Req = serde_json::from_value(Value::Object(message)).map_err(|e| {
            ApiError::new(ErrorCode::InvalidArgument, "the request is not valid for this call")
                .with_details(json!([{ "field": "body", "description": e.to_string() }]))
        })?;
        let channel =
            state.backends.channel_for(self.service()).cloned().ok_or_else(|| {
                ApiError::new(ErrorCode::Unimplemented, format!("{} is not served here", self.service()))
            })?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = kiln_proto::codec::ProtoCodec::<Req, Resp>::default();
        let request = tonic::Request::from_parts(metadata, Default::default(), request);
        Ok(match self.answer {
            Answer::Unary(answer) => {
                answer(grpc.unary(request, self.grpc_path.clone(), codec).await?.into_inner(), self.success)
            }
            Answer::Streamed(answer) => {
                let response =
                    answer(grpc.server_streaming(request, self.grpc_path.clone(), codec).await?.into_inner());
                // A watch's events end when the gateway stops, so its drain does not wait for them.
                if crate::grpc_edge::is_watch(self.rpc) {
                    let stopping = &state.backends.stopping;
                    response.map(|body| axum::body::Body::new(crate::grpc_edge::UntilStopped::events(body, stopping)))
                } else {
                    response
                }
            }
        })
    }

    fn service(&self) -> &'static str {
        service_of(self.rpc)
    }

    /// The query as fields of the request message, typed by the message: a whole number
    /// for integers, `true`/`false` for booleans. A parameter that is no field of the
    /// message, or one the path sets, goes to the message's string map if it has one (a
    /// list's filters), else is ignored.
    fn read_query(&self, uri: &http::Uri, message: &mut Map<String, Value>) -> Result<(), ApiError> {
        let Some(descriptor) = &self.request_descriptor else { return Ok(()) };
        let in_path = &self.in_path;
        let rest = descriptor.fields().find(|field| field.is_map()).map(|field| field.name().to_string());
        let axum::extract::Query(pairs) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|rejection| url_error("query", rejection.body_text()))?;
        for (name, raw) in pairs {
            let field = descriptor.get_field_by_name(&name).filter(|f| !f.is_map() && !in_path.contains(&f.name()));
            let Some(field) = field else {
                if let Some(rest) = &rest {
                    let map = message.entry(rest.clone()).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(map) = map {
                        map.insert(name, Value::String(raw));
                    }
                }
                continue;
            };
            let whole = || url_error(&name, "must be a whole number");
            let value = match field.kind() {
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::from(raw.parse::<i32>().map_err(|_| whole())?),
                Kind::Uint32 | Kind::Fixed32 => Value::from(raw.parse::<u32>().map_err(|_| whole())?),
                // proto3 JSON carries 64-bit integers as strings.
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                    Value::String(raw.parse::<i64>().map_err(|_| whole())?.to_string())
                }
                Kind::Uint64 | Kind::Fixed64 => Value::String(raw.parse::<u64>().map_err(|_| whole())?.to_string()),
                Kind::Bool => match raw.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => return Err(url_error(&name, "must be true or false")),
                },
                _ => Value::String(raw),
            };
            message.insert(name, value);
        }
        Ok(())
    }
}

/// The body's fields over the message's: path parameters (already in `message`) win.
fn merge_body(message: &mut Map<String, Value>, body: Map<String, Value>) {
    for (name, value) in body {
        message.entry(name).or_insert(value);
    }
}

/// A JSON object body. A field nested past [`MAX_JSON_DEPTH`], or a number a double
/// cannot hold exactly, is refused here, naming the field, before it reaches a decoder.
async fn json_body(request: Request, state: &GatewayState) -> Result<Map<String, Value>, ApiError> {
    let Json(body) = Json::<Map<String, Value>>::from_request(request, state).await.map_err(json_rejection)?;
    let violations: Vec<Value> = body
        .iter()
        .filter_map(|(field, value)| {
            let why = if json_depth(value) > MAX_JSON_DEPTH {
                too_deep()
            } else if value.as_number().is_some_and(|n| !exact_in_a_double(n)) {
                format!("a number beyond ±{MAX_SAFE_INTEGER} is not carried exactly; send it as a string of digits")
            } else {
                return None;
            };
            Some(json!({ "field": field, "description": why }))
        })
        .collect();
    if let Some(first) = violations.first() {
        let message = format!(
            "{}: {}",
            first["field"].as_str().unwrap_or("body"),
            first["description"].as_str().unwrap_or_default()
        );
        return Err(ApiError::new(ErrorCode::InvalidArgument, message).with_details(Value::Array(violations)));
    }
    Ok(body)
}

/// Whether a JSON number survives the trip through a double unchanged.
fn exact_in_a_double(number: &serde_json::Number) -> bool {
    match (number.as_i64(), number.as_u64()) {
        (Some(n), _) => is_safe_integer(n),
        (None, Some(_)) => false,
        _ => true,
    }
}

/// A body that may be left out: nothing (or only white space) is `None`; anything else
/// is read as [`json_body`] reads it.
async fn optional_json_body(request: Request, state: &GatewayState) -> Result<Option<Map<String, Value>>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large"))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    json_body(Request::from_parts(parts, bytes.into()), state).await.map(Some)
}

/// The answer as its message's JSON, or no body for 204.
pub fn json_answer<Resp: Serialize>(response: Resp, status: StatusCode) -> Response {
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    (status, Json(response)).into_response()
}

/// The caller's credentials and request id, as the RPC's metadata.
pub(crate) fn copy_metadata(headers: &HeaderMap, metadata: &mut MetadataMap) {
    for name in ["authorization", "x-request-id"] {
        if let Some(value) = headers.get(name).and_then(|v| MetadataValue::try_from(v.as_bytes()).ok()) {
            metadata.insert(name, value);
        }
    }
}

/// `ListModels` → `listModels`.
fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|first| first.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A route's answer as a file: `body` with its media type, and a Content-Disposition
/// (`inline` or `attachment`) naming it `name`, which the server made (letters, digits,
/// `-`, `_` and `.` only).
pub fn file(status: StatusCode, body: Vec<u8>, media: &'static str, disposition: &str, name: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use kiln_proto::v1::{
        DeleteModelRequest, DeleteModelResponse, GetModelRequest, GetModelResponse, ListEntitiesRequest,
        ListEntitiesResponse, ListModelsRequest, ListModelsResponse,
    };

    use super::*;

    #[test]
    fn every_route_matches_the_contract_and_is_declared_once() {
        let routes = routes();
        check(&routes, descriptors()).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for route in &routes {
            assert!(seen.insert((route.method.clone(), route.path)), "{} {} twice", route.method, route.path);
            assert!(ids.insert(route.operation_id.clone()), "operation id {} twice", route.operation_id);
            assert!(!route.tag.is_empty(), "{} {} has no tag", route.method, route.path);
        }
    }

    #[test]
    fn a_route_that_does_not_match_its_rpc_is_refused() {
        let wrong_rpc: Route = route::<ListModelsRequest, ListModelsResponse>(
            Method::GET,
            "/x",
            "kiln.v1.ModelService/GetModel",
            StatusCode::OK,
            "",
        )
        .into();
        assert!(check(&[wrong_rpc], descriptors()).is_err());
        let no_such_rpc: Route = route::<GetModelRequest, GetModelResponse>(
            Method::GET,
            "/x",
            "kiln.v1.ModelService/Nope",
            StatusCode::OK,
            "",
        )
        .into();
        assert!(check(&[no_such_rpc], descriptors()).is_err());
        let unknown_parameter: Route = route::<GetModelRequest, GetModelResponse>(
            Method::GET,
            "/x/{nope}",
            "kiln.v1.ModelService/GetModel",
            StatusCode::OK,
            "",
        )
        .into();
        assert!(check(&[unknown_parameter], descriptors()).is_err());
    }

    fn call<Req: prost::Name, Resp: Serialize>(path: &'static str) -> Call<Req, Resp> {
        Call {
            rpc: "",
            grpc_path: http::uri::PathAndQuery::from_static("/"),
            in_path: path_parameters(path),
            request_descriptor: descriptors().get_message_by_name(&Req::full_name()),
            body: Body::None,
            fixed: Vec::new(),
            from_headers: Vec::new(),
            success: StatusCode::OK,
            answer: Answer::Unary(json_answer::<Resp>),
            request: PhantomData,
        }
    }

    fn query<Req, Resp>(call: &Call<Req, Resp>, query: &str) -> Result<Value, ApiError>
    where
        Req: prost::Message + prost::Name + DeserializeOwned + Default + Send + 'static,
        Resp: prost::Message + Default + Send + 'static,
    {
        let uri: http::Uri = format!("/x?{query}").parse().unwrap();
        let mut message = Map::new();
        call.read_query(&uri, &mut message)?;
        Ok(Value::Object(message))
    }

    #[test]
    fn the_query_is_typed_by_the_request_message() {
        let list = call::<ListModelsRequest, ListModelsResponse>("/models");
        assert_eq!(
            query(&list, "page_size=5&page_token=abc&other=1").unwrap(),
            json!({ "page_size": 5, "page_token": "abc" })
        );
        let refused = query(&list, "page_size=many").unwrap_err();
        assert_eq!(refused.details, json!([{ "field": "page_size", "description": "must be a whole number" }]));
        assert!(query(&list, "page_size=99999999999").is_err());

        let delete = call::<DeleteModelRequest, DeleteModelResponse>("/models/{id}");
        assert_eq!(query(&delete, "confirm_data_loss=true").unwrap(), json!({ "confirm_data_loss": true }));
        let refused = query(&delete, "confirm_data_loss=yes").unwrap_err();
        assert_eq!(refused.details[0]["field"], "confirm_data_loss");
        // The path sets `id`; the query cannot.
        assert_eq!(query(&delete, "id=other").unwrap(), json!({}));

        // Parameters that are no field of the message, or that the path sets, are filters.
        let records = call::<ListEntitiesRequest, ListEntitiesResponse>("/{model}");
        assert_eq!(
            query(&records, "sort=-amount&status=sent&model=x&filter=y").unwrap(),
            json!({ "sort": "-amount", "filter": { "status": "sent", "model": "x", "filter": "y" } })
        );
    }
}
