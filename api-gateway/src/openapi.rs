//! The OpenAPI document, generated from code: paths from the REST route declarations,
//! schemas from the compiled protobuf descriptors (the same ones the JSON mapping is
//! generated from), descriptions from the comments in `proto/`. Also the `/docs` page.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder, Schema,
    path::{OperationBuilder, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    schema::{AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type},
    security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
};

use crate::rest::{Body, Route, path_parameters};

const ERROR_SCHEMA: &str = "Error";
const BEARER: &str = "bearer";

/// Builds the document for `routes`, served under `/api/v1` (and `/api`).
pub fn document(routes: &[Route], pool: &DescriptorPool) -> anyhow::Result<OpenApi> {
    let mut schemas = BTreeMap::new();
    let mut paths = PathsBuilder::new();
    for route in routes {
        let operation = operation(route, pool, &mut schemas)?;
        paths = paths.path(route.path, PathItem::new(http_method(&route.method), operation));
    }
    let mut components = ComponentsBuilder::new().schema(ERROR_SCHEMA, error_schema()).security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    Ok(OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Kiln API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "REST surface of Kiln. Bodies follow the proto3 JSON mapping of the kiln.v1 messages \
                     (field names as in the proto; 64-bit integers as strings). The same calls answer over \
                     gRPC and grpc-web on the same port.",
                ))
                .build(),
        )
        .servers(Some(vec![utoipa::openapi::Server::new("/api/v1")]))
        .paths(paths.build())
        .components(Some(components.build()))
        .build())
}

/// One route's operation: its parameters, body, answers and security; the schemas it
/// reaches are added to `schemas`.
fn operation(
    route: &Route,
    pool: &DescriptorPool,
    schemas: &mut BTreeMap<String, Schema>,
) -> anyhow::Result<utoipa::openapi::path::Operation> {
    let mut builder = OperationBuilder::new()
        .operation_id(Some(route.operation_id.clone()))
        .summary(Some(route.summary))
        .tag(route.tag);
    for parameter in parameters(route, pool) {
        builder = builder.parameter(parameter);
    }
    if let Some(message) = route.body_message(pool) {
        collect(&message, schemas);
        let required = if route.body == Body::OptionalMessage { Required::False } else { Required::True };
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", ContentBuilder::new().schema(Some(schema_ref(&message))).build())
                .required(Some(required))
                .build(),
        ));
    }
    let mut success = ResponseBuilder::new().description(success_text(route.success));
    if route.success != StatusCode::NO_CONTENT {
        let message = message(pool, &route.response_message)?;
        collect(&message, schemas);
        success = success.content(route.media, ContentBuilder::new().schema(Some(schema_ref(&message))).build());
    }
    builder = builder.response(route.success.as_u16().to_string(), success.build());
    for (status, text) in error_statuses(route) {
        let error = ContentBuilder::new().schema(Some(Ref::from_schema_name(ERROR_SCHEMA))).build();
        builder = builder.response(
            status.to_string(),
            ResponseBuilder::new().description(text).content("application/json", error).build(),
        );
    }
    if route.secured {
        builder = builder.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
    }
    Ok(builder.build())
}

/// A route's path parameters, then its query parameters: the request message's fields
/// that neither the path nor the body sets.
fn parameters(route: &Route, pool: &DescriptorPool) -> Vec<utoipa::openapi::path::Parameter> {
    let in_path = path_parameters(route.path).into_iter().map(|name| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    });
    // A map field takes the parameters that are no other field (a list's filters): the
    // summary says so; OpenAPI has no name for "any other parameter".
    let in_query = route.query_fields(pool).into_iter().filter(|field| !field.is_map()).map(|field| {
        ParameterBuilder::new()
            .name(field.name())
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .schema(Some(field_schema(&field, &mut Vec::new())))
            .build()
    });
    in_path.chain(in_query).collect()
}

fn message(pool: &DescriptorPool, name: &str) -> anyhow::Result<MessageDescriptor> {
    pool.get_message_by_name(name).ok_or_else(|| anyhow::anyhow!("no message {name} in the kiln.v1 descriptors"))
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn success_text(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("OK")
}

/// Every error an operation can answer with. 500 is never documented: it is a bug.
fn error_statuses(op: &Route) -> Vec<(u16, &'static str)> {
    let mut statuses = vec![(400, "Invalid input: `details` lists each failing field, parameter or the body")];
    if op.secured || op.tag == "auth" {
        statuses.push((401, "Missing, invalid or expired credentials"));
    }
    if op.secured {
        statuses.push((403, "Not allowed to the caller"));
        statuses.push((404, "Nothing of that name or id in the caller's workspace"));
        statuses.push((409, "Conflicts with what exists or a change made meanwhile, or the kind is managed elsewhere"));
    }
    if op.path.starts_with("/{model}") {
        statuses.push((405, "The model names a platform route without this method"));
    }
    if op.method != Method::GET && op.method != Method::DELETE {
        if !op.secured {
            statuses.push((409, "Conflicts with what exists"));
        }
        statuses.push((413, "Body too large"));
        statuses.push((415, "Body is not JSON"));
    }
    statuses.push((429, "Too many requests: from this address, this user or this workspace"));
    statuses.push((503, "Busy, or a service Kiln depends on is unavailable; retry shortly"));
    statuses.push((504, "No answer in time"));
    statuses
}

fn error_schema() -> Schema {
    let detail = ObjectBuilder::new()
        .property("field", ObjectBuilder::new().schema_type(Type::String))
        .property("description", ObjectBuilder::new().schema_type(Type::String));
    let error = ObjectBuilder::new()
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("e.g. invalid_argument, unauthenticated, not_found, already_exists")),
        )
        .required("code")
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("message")
        .property("details", ArrayBuilder::new().items(detail))
        .required("details");
    ObjectBuilder::new().property("error", error).required("error").into()
}

fn schema_ref(message: &MessageDescriptor) -> RefOr<Schema> {
    match well_known(message) {
        Some(schema) => RefOr::T(schema),
        None => Ref::from_schema_name(message.name()).into(),
    }
}

/// Adds the schema of `message` and of every message it reaches.
fn collect(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Schema>) {
    let mut seen = BTreeSet::new();
    let mut stack = vec![message.clone()];
    while let Some(message) = stack.pop() {
        if well_known(&message).is_some() || !seen.insert(message.full_name().to_string()) {
            continue;
        }
        let mut object =
            ObjectBuilder::new().description(comment(message.parent_file().file_descriptor_proto(), message.path()));
        for field in message.fields() {
            let mut reached = Vec::new();
            object = object.property(field.name(), field_schema(&field, &mut reached));
            for m in reached {
                if !schemas.contains_key(m.name()) {
                    stack.push(m);
                }
            }
        }
        schemas.insert(message.name().to_string(), object.into());
    }
}

fn field_schema(field: &FieldDescriptor, reached: &mut Vec<MessageDescriptor>) -> RefOr<Schema> {
    let description = comment(field.parent_file().file_descriptor_proto(), field.path());
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { unreachable!("map fields are entry messages") };
        let value = kind_schema(&entry.map_entry_value_field().kind(), reached);
        return ObjectBuilder::new()
            .additional_properties(Some(AdditionalProperties::RefOr(value)))
            .description(description)
            .into();
    }
    let item = kind_schema(&field.kind(), reached);
    if field.is_list() {
        return ArrayBuilder::new().items(item).description(description).into();
    }
    match item {
        RefOr::T(Schema::Object(object)) => {
            let mut object = object;
            if object.description.is_none() {
                object.description = description;
            }
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

fn kind_schema(kind: &Kind, reached: &mut Vec<MessageDescriptor>) -> RefOr<Schema> {
    let scalar = |t: Type, format: Option<KnownFormat>| -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(t).format(format.map(SchemaFormat::KnownFormat)).into()
    };
    match kind {
        Kind::Double | Kind::Float => scalar(Type::Number, Some(KnownFormat::Double)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => scalar(Type::Integer, Some(KnownFormat::Int32)),
        Kind::Uint32 | Kind::Fixed32 => scalar(Type::Integer, Some(KnownFormat::Int32)),
        // proto3 JSON writes 64-bit integers as strings (and reads either).
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            scalar(Type::String, Some(KnownFormat::Int64))
        }
        Kind::Bool => scalar(Type::Boolean, None),
        Kind::String => scalar(Type::String, None),
        Kind::Bytes => scalar(Type::String, Some(KnownFormat::Byte)),
        Kind::Enum(e) => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(e.values().map(|v| v.name().to_string())))
            .into(),
        Kind::Message(m) => {
            if well_known(m).is_none() {
                reached.push(m.clone());
            }
            schema_ref(m)
        }
    }
}

/// Schemas of the well-known types, as their JSON mapping writes them.
fn well_known(message: &MessageDescriptor) -> Option<Schema> {
    let schema: Schema = match message.full_name() {
        "google.protobuf.Timestamp" => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into(),
        "google.protobuf.Duration" => {
            ObjectBuilder::new().schema_type(Type::String).description(Some("e.g. \"1.5s\"")).into()
        }
        "google.protobuf.Struct" => ObjectBuilder::new().schema_type(Type::Object).into(),
        "google.protobuf.ListValue" => {
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(SchemaType::AnyValue)).into()
        }
        "google.protobuf.Value" => {
            ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some("any JSON value")).into()
        }
        "google.protobuf.Empty" => ObjectBuilder::new().schema_type(Type::Object).into(),
        _ => return None,
    };
    Some(schema)
}

/// The leading comment of the element at `path` in `file`, if it has one.
fn comment(file: &prost_reflect::prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let info = file.source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
}

/// A self-contained page listing the operations and schemas; no script from elsewhere,
/// so it works where Kiln runs offline.
pub fn docs_page(doc: &OpenApi) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Kiln API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}\
         code,pre{font:13px ui-monospace,monospace}.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}\
         .m{display:inline-block;min-width:4.5rem;font-weight:700}.GET{color:#0a6}.POST{color:#06c}.PUT{color:#a60}\
         .PATCH{color:#a0a}.DELETE{color:#c22}pre{background:#f6f6f6;padding:.6rem;overflow:auto}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>Kiln API <small>{}</small></h1><p>{}</p><p>Machine-readable: <a href=\"openapi.json\">openapi.json</a>. \
         Base path <code>/api/v1</code> (also <code>/api</code>).</p>",
        escape(&doc.info.version),
        escape(doc.info.description.as_deref().unwrap_or_default())
    ));
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            html.push_str(&format!(
                "<div class=\"op\"><span class=\"m {method}\">{method}</span><code>{}</code> — {}",
                escape(path),
                escape(op.summary.as_deref().unwrap_or_default())
            ));
            if op.security.is_some() {
                html.push_str(" <em>(access token)</em>");
            }
            let statuses: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
            html.push_str(&format!("<br><small>answers: {}</small></div>", statuses.join(", ")));
        }
    }
    if let Some(components) = &doc.components {
        html.push_str("<h2>Schemas</h2>");
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            html.push_str(&format!("<h3 id=\"{0}\">{0}</h3><pre>{1}</pre>", escape(name), escape(&json)));
        }
    }
    html.push_str("</body></html>");
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
