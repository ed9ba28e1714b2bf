//! The workspace's typed services, `kiln.ws.<workspace_slug>.v1.<Model>Service`, answered
//! live from its contract ([`crate::contract`]): a call's messages are decoded and encoded
//! with the contract's descriptors (prost-reflect dynamic messages), turned into the
//! record engine's own requests, and answered by the same engine, caller check and
//! tenant scoping as EntityService. A model change is in the next call: the contract is
//! kept with the compiled models and forgotten with them.
//!
//! Values keep their precision: an int64 goes to the engine as a number while a double
//! holds it exactly and as a string of digits beyond (what the record codec takes), and
//! comes back the same way; decimals are text both ways.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

/// A boxed future, as tonic's service traits take them.
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
use kiln_common::{
    Db, GrpcChannel, Principal, ServiceError,
    error::FieldViolation,
    limits::is_safe_integer,
    records::{
        engine::{Records, Watched},
        feed::ChangeKind,
        fields::FieldType,
    },
};
use kiln_proto::v1::{
    CreateEntityRequest, DeleteEntityRequest, Field, GetEntityRequest, GetProfileRequest, ListEntitiesRequest, Model,
    ReservedField, UpdateEntityRequest, auth_service_client::AuthServiceClient,
};
use pbjson_types::{Struct, value::Kind as JsonKind};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tokio_util::sync::CancellationToken;
use tonic::{
    Status,
    body::Body,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::{Body as HttpBody, Bytes, StdError},
    metadata::MetadataMap,
    server::{Grpc, ServerStreamingService, UnaryService},
};

use crate::{Callers, catalog::Catalog, contract::Contract, models::user_models};

/// The record's own fields in every typed message.
const RECORD_FIELDS: [&str; 4] = ["id", "created_at", "updated_at", "created_by"];

/// Workspaces' contracts: their slugs (asked of app-svc, which owns workspaces; a slug
/// never changes) and their models, derived once per change of the models.
#[derive(Debug, Clone)]
pub struct Contracts {
    db: Db,
    app: GrpcChannel,
    catalog: Catalog,
    slugs: Arc<Mutex<HashMap<uuid::Uuid, String>>>,
}

impl Contracts {
    pub fn new(db: Db, app: GrpcChannel, catalog: Catalog) -> Self {
        Contracts { db, app, catalog, slugs: Arc::default() }
    }

    /// The slug of the caller's workspace, asked of app-svc with the caller's own token.
    pub async fn slug(&self, principal: Principal, metadata: &MetadataMap) -> Result<String, Status> {
        if let Some(slug) = self.slugs.lock().unwrap_or_else(|p| p.into_inner()).get(&principal.workspace_id) {
            return Ok(slug.clone());
        }
        let request = tonic::Request::from_parts(metadata.clone(), Default::default(), GetProfileRequest {});
        let profile = AuthServiceClient::new(self.app.clone()).get_profile(request).await?.into_inner();
        let slug = profile.user.map(|u| u.workspace_slug).unwrap_or_default();
        if slug.is_empty() {
            return Err(ServiceError::Internal(anyhow::anyhow!("app-svc gave no workspace slug")).into());
        }
        self.slugs.lock().unwrap_or_else(|p| p.into_inner()).insert(principal.workspace_id, slug.clone());
        Ok(slug)
    }

    /// The caller's workspace's contract, from its user models as they are now.
    pub async fn of(&self, principal: Principal, metadata: &MetadataMap) -> Result<Arc<Contract>, Status> {
        if let Some(contract) = self.catalog.contract(principal.workspace_id) {
            return Ok(contract);
        }
        let slug = self.slug(principal, metadata).await?;
        let models = user_models(&self.db, principal.workspace_id).await?;
        let contract = Arc::new(Contract::derive(&slug, &models).map_err(ServiceError::Internal)?);
        self.catalog.keep_contract(principal.workspace_id, contract.clone());
        Ok(contract)
    }
}

/// The typed services of every workspace: one tower service for every path under
/// `/kiln.ws.`, which model-svc's router falls back to.
#[derive(Clone)]
pub struct TypedApi {
    records: Records<Catalog>,
    callers: Callers,
    contracts: Contracts,
    max_message_bytes: usize,
    /// Cancelled when the process stops: watches end then.
    stopping: CancellationToken,
}

impl TypedApi {
    pub fn new(
        records: Records<Catalog>,
        callers: Callers,
        contracts: Contracts,
        max_message_bytes: usize,
        stopping: CancellationToken,
    ) -> Self {
        TypedApi { records, callers, contracts, max_message_bytes, stopping }
    }

    /// Answers one call (any path: a path outside the workspaces' packages is UNIMPLEMENTED).
    pub async fn call<B>(self, request: http::Request<B>) -> http::Response<Body>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send,
    {
        let path = request.uri().path().to_string();
        match self.route(&path, request.headers().clone()).await {
            Ok(call) => self.serve(call, request).await,
            Err(status) => status.into_http(),
        }
    }

    /// Who calls which method of which model, or why the call cannot be made.
    async fn route(&self, path: &str, headers: http::HeaderMap) -> Result<Call, Status> {
        let path = path.trim_start_matches('/');
        let (service, method) = path.split_once('/').unwrap_or((path, ""));
        if !service.starts_with("kiln.ws.") {
            return Err(Status::unimplemented(format!("{service} is not served here")));
        }
        let metadata = MetadataMap::from_headers(headers);
        let principal = self.callers.principal(&metadata).await?;
        let contract = self.contracts.of(principal, &metadata).await?;
        // Another workspace's services are not found, whoever's they are.
        let not_found = || Status::not_found(format!("no service {service} in your workspace ({})", contract.package));
        if !service.starts_with(&format!("{}.", contract.package)) {
            return Err(not_found());
        }
        let model = Arc::clone(contract.model_of(service).ok_or_else(not_found)?);
        let descriptor = contract.pool().get_service_by_name(service).ok_or_else(not_found)?;
        let method = descriptor
            .methods()
            .find(|m| m.name() == method)
            .ok_or_else(|| Status::unimplemented(format!("{service} has no method {method}")))?;
        let record = contract
            .pool()
            .get_message_by_name(&format!("{}.{}", contract.package, crate::contract::pascal(&model.singular)))
            .ok_or_else(|| Status::internal("the contract has no message for its model"))?;
        Ok(Call { principal, model, method, record })
    }

    async fn serve<B>(self, call: Call, request: http::Request<B>) -> http::Response<Body>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send,
    {
        let codec = DynamicCodec { input: call.method.input() };
        let mut grpc = Grpc::new(codec).max_decoding_message_size(self.max_message_bytes);
        if call.method.is_server_streaming() {
            return grpc.server_streaming(Watch { api: self, call: Arc::new(call) }, request).await;
        }
        grpc.unary(Unary { api: self, call: Arc::new(call) }, request).await
    }

    /// One unary method, on the record engine.
    async fn answer(&self, call: &Call, request: DynamicMessage) -> Result<DynamicMessage, Status> {
        let (principal, model) = (call.principal, call.model.plural.clone());
        let output = call.method.output();
        let typed = call.typed();
        let text = |name: &str| match request.get_field_by_name(name).as_deref() {
            Some(Value::String(text)) => text.clone(),
            _ => String::new(),
        };
        match call.method.name() {
            "List" => {
                let page_size = match request.get_field_by_name("page_size").as_deref() {
                    Some(Value::I32(n)) => *n,
                    _ => 0,
                };
                let filter = match request.get_field_by_name("filter").as_deref() {
                    Some(Value::Map(map)) => map
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                        .collect(),
                    _ => Default::default(),
                };
                let listed = self
                    .records
                    .list(
                        principal,
                        ListEntitiesRequest {
                            model,
                            page_size,
                            page_token: text("page_token"),
                            sort: text("sort"),
                            filter,
                        },
                    )
                    .await?;
                let mut answer = DynamicMessage::new(output);
                let records: Vec<Value> =
                    listed.records.iter().map(|r| typed.message_of(r).map(Value::Message)).collect::<Result<_, _>>()?;
                answer.set_field_by_number(1, Value::List(records));
                answer.set_field_by_number(2, Value::String(listed.next_page_token));
                Ok(answer)
            }
            "Get" => {
                let found = self.records.get(principal, GetEntityRequest { model, id: text("id") }).await?;
                typed.message_of(&found.record.unwrap_or_default())
            }
            "Create" => {
                let record = typed.record_of(&given_record(&request), None)?;
                let created =
                    self.records.create(principal, CreateEntityRequest { model, record: Some(record) }).await?;
                typed.message_of(&created.record.unwrap_or_default())
            }
            "Update" => {
                let given = given_record(&request);
                let id = match given.get_field_by_name("id").as_deref() {
                    Some(Value::String(id)) if !id.is_empty() => id.clone(),
                    _ => {
                        return Err(
                            ServiceError::invalid_field(format!("{}.id", call.model.singular), "is required").into()
                        );
                    }
                };
                let mask = match request.get_field_by_name("update_mask").as_deref() {
                    Some(Value::Message(mask)) => match mask.get_field_by_name("paths").as_deref() {
                        Some(Value::List(paths)) if !paths.is_empty() => {
                            Some(paths.iter().filter_map(|p| p.as_str().map(str::to_string)).collect::<Vec<_>>())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let record = typed.record_of(&given, mask.as_deref())?;
                let request = UpdateEntityRequest { model, id, record: Some(record), partial: true };
                let updated = self.records.update(principal, request).await?;
                typed.message_of(&updated.record.unwrap_or_default())
            }
            "Delete" => {
                self.records.delete(principal, DeleteEntityRequest { model, id: text("id") }).await?;
                Ok(DynamicMessage::new(output))
            }
            other => Err(Status::unimplemented(format!("{other} is not a method of a typed service"))),
        }
    }
}

/// The record a Create or Update request carries (empty when it carries none).
fn given_record(request: &DynamicMessage) -> DynamicMessage {
    let record = request.descriptor().get_field(1).and_then(|field| match request.get_field(&field).as_ref() {
        Value::Message(record) => Some(record.clone()),
        _ => None,
    });
    record.unwrap_or_else(|| {
        let kind = request.descriptor().get_field(1).map(|f| f.kind());
        match kind.as_ref().and_then(|k| k.as_message()) {
            Some(message) => DynamicMessage::new(message.clone()),
            None => DynamicMessage::new(request.descriptor()),
        }
    })
}

/// One call, routed.
struct Call {
    principal: Principal,
    model: Arc<Model>,
    method: prost_reflect::MethodDescriptor,
    /// The model's message.
    record: MessageDescriptor,
}

impl Call {
    /// The conversions between the model's message and the engine's records.
    fn typed(&self) -> Typed<'_> {
        Typed { fields: &self.model.fields, former: &self.model.reserved_fields, message: &self.record }
    }
}

/// A Watch call: every committed change to the model's records from now on, each with
/// the record as it is (none once deleted), until the caller goes away. The changes are
/// the record engine's (`Records::watch`, as EntityService's WatchEntities), each turned
/// into the model's `<Model>Change` message.
struct Watch {
    api: TypedApi,
    call: Arc<Call>,
}

impl Watch {
    /// The change message (`<Model>Change`) for `watched`.
    fn message(call: &Call, watched: Watched) -> Result<DynamicMessage, Status> {
        let mut message = DynamicMessage::new(call.method.output());
        let kind = match watched.kind {
            ChangeKind::Created => 1,
            ChangeKind::Updated => 2,
            ChangeKind::Deleted => 3,
        };
        message.set_field_by_number(1, Value::EnumNumber(kind));
        message.set_field_by_number(2, Value::String(watched.id));
        if let Some(record) = watched.record {
            message.set_field_by_number(3, Value::Message(call.typed().message_of(&record)?));
        }
        Ok(message)
    }
}

type Changes =
    std::pin::Pin<Box<dyn tonic::codegen::tokio_stream::Stream<Item = Result<DynamicMessage, Status>> + Send>>;

impl ServerStreamingService<DynamicMessage> for Watch {
    type Response = DynamicMessage;
    type ResponseStream = Changes;
    type Future = BoxFuture<Result<tonic::Response<Changes>, Status>>;

    fn call(&mut self, _: tonic::Request<DynamicMessage>) -> Self::Future {
        let (api, call) = (self.api.clone(), self.call.clone());
        Box::pin(async move {
            let changes = api.records.watch(call.principal, &call.model.plural, api.stopping.clone()).await?;
            use tonic::codegen::tokio_stream::StreamExt as _;
            let changes = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(changes)
                .map(move |watched| watched.map_err(Status::from).and_then(|watched| Watch::message(&call, watched)));
            Ok(tonic::Response::new(Box::pin(changes) as Changes))
        })
    }
}

/// A model's typed message and its fields: the conversions to and from the engine's records.
struct Typed<'a> {
    fields: &'a [Field],
    /// Dropped fields and former names of renamed ones.
    former: &'a [ReservedField],
    message: &'a MessageDescriptor,
}

impl Typed<'_> {
    /// The field an update mask's `path` names: a field by its name, or by a name it had
    /// before a rename (a client of the older contract sends that one). `Ok(None)`: a
    /// field dropped since, which a client of the older contract may still name and which
    /// changes nothing, as a value of it in the message does.
    fn masked(&self, path: &str) -> Result<Option<&str>, FieldViolation> {
        if let Some(field) = self.fields.iter().find(|f| f.name == path) {
            return Ok(Some(&field.name));
        }
        match self.former.iter().find(|r| r.name == path) {
            Some(former) => Ok(self.fields.iter().find(|f| f.number == former.number).map(|f| f.name.as_str())),
            None => Err(FieldViolation::new("update_mask", format!("`{path}` is not a field of this model"))),
        }
    }

    /// The engine's record of a typed message: the user fields it sets (with `mask`, the
    /// fields it names, an unset one cleared). The record's own fields are the server's.
    fn record_of(&self, message: &DynamicMessage, mask: Option<&[String]>) -> Result<Struct, Status> {
        let mut record = BTreeMap::new();
        let mut violations = Vec::new();
        let mask: Option<Vec<&str>> = mask.map(|paths| {
            paths
                .iter()
                .filter_map(|path| {
                    self.masked(path).unwrap_or_else(|violation| {
                        violations.push(violation);
                        None
                    })
                })
                .collect()
        });
        for field in self.fields {
            let Some(descriptor) = self.message.get_field_by_name(&field.name) else { continue };
            let wanted = match &mask {
                Some(mask) => mask.contains(&field.name.as_str()),
                None => message.has_field(&descriptor),
            };
            if !wanted {
                continue;
            }
            let value = if message.has_field(&descriptor) {
                match json_of(field, &message.get_field(&descriptor)) {
                    Ok(value) => value,
                    Err(why) => {
                        violations.push(FieldViolation::new(field.name.clone(), why));
                        continue;
                    }
                }
            } else {
                JsonKind::NullValue(0)
            };
            record.insert(field.name.clone(), pbjson_types::Value { kind: Some(value) });
        }
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations).into());
        }
        Ok(Struct { fields: record.into_iter().collect() })
    }

    /// The typed message of an engine record.
    fn message_of(&self, record: &Struct) -> Result<DynamicMessage, Status> {
        let mut message = DynamicMessage::new(self.message.clone());
        let broken = |name: &str| Status::internal(format!("the stored value of `{name}` does not fit its type"));
        for name in RECORD_FIELDS {
            let (Some(descriptor), Some(JsonKind::StringValue(text))) =
                (self.message.get_field_by_name(name), record.fields.get(name).and_then(|v| v.kind.as_ref()))
            else {
                continue;
            };
            let value = match descriptor.kind().as_message() {
                Some(timestamp) => timestamp_of(timestamp, text).ok_or_else(|| broken(name))?,
                None => Value::String(text.clone()),
            };
            message.set_field(&descriptor, value);
        }
        for field in self.fields {
            let Some(descriptor) = self.message.get_field_by_name(&field.name) else { continue };
            let Some(stored) = record.fields.get(&field.name).and_then(|v| v.kind.as_ref()) else { continue };
            if matches!(stored, JsonKind::NullValue(_)) {
                continue;
            }
            let value = typed_of(field, &descriptor, stored).ok_or_else(|| broken(&field.name))?;
            message.set_field(&descriptor, value);
        }
        Ok(message)
    }
}

/// A typed value as the record codec takes it.
fn json_of(field: &Field, value: &Value) -> Result<JsonKind, String> {
    let ty = FieldType::parse(&field.r#type);
    Ok(match (ty, value) {
        (Some(FieldType::Integer), Value::I64(n)) if is_safe_integer(*n) => JsonKind::NumberValue(*n as f64),
        // Beyond what a double holds exactly: digits, which the codec reads as all 64 bits.
        (Some(FieldType::Integer), Value::I64(n)) => JsonKind::StringValue(n.to_string()),
        (Some(FieldType::Boolean), Value::Bool(b)) => JsonKind::BoolValue(*b),
        (Some(FieldType::Enum), Value::EnumNumber(0)) => JsonKind::NullValue(0),
        (Some(FieldType::Enum), Value::EnumNumber(n)) => {
            let value = usize::try_from(*n).ok().and_then(|n| field.enum_values.get(n.wrapping_sub(1)));
            JsonKind::StringValue(value.ok_or_else(|| format!("{n} is not a value of this enum"))?.clone())
        }
        (Some(FieldType::DateTime), Value::Message(timestamp)) => {
            let timestamp = prost_types::Timestamp::decode(timestamp.encode_to_vec().as_slice())
                .map_err(|e| format!("is not a timestamp: {e}"))?;
            let time = chrono::DateTime::from_timestamp(timestamp.seconds, timestamp.nanos.max(0) as u32)
                .ok_or("is out of range")?;
            JsonKind::StringValue(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        (Some(FieldType::Json), Value::Message(json)) => pbjson_types::Value::decode(json.encode_to_vec().as_slice())
            .map_err(|e| format!("is not a JSON value: {e}"))?
            .kind
            .unwrap_or(JsonKind::NullValue(0)),
        (_, Value::String(text)) => JsonKind::StringValue(text.clone()),
        _ => return Err("has a value of the wrong type".into()),
    })
}

/// A stored value as its typed field holds it; None when it does not fit.
fn typed_of(field: &Field, descriptor: &prost_reflect::FieldDescriptor, stored: &JsonKind) -> Option<Value> {
    let ty = FieldType::parse(&field.r#type)?;
    Some(match (ty, stored) {
        (FieldType::Integer, JsonKind::NumberValue(n)) => Value::I64(*n as i64),
        (FieldType::Integer, JsonKind::StringValue(digits)) => Value::I64(digits.parse().ok()?),
        (FieldType::Boolean, JsonKind::BoolValue(b)) => Value::Bool(*b),
        (FieldType::Decimal, JsonKind::NumberValue(n)) => Value::String(n.to_string()),
        (FieldType::Enum, JsonKind::StringValue(text)) => {
            Value::EnumNumber(field.enum_values.iter().position(|v| v == text).map_or(0, |i| i as i32 + 1))
        }
        (FieldType::DateTime, JsonKind::StringValue(text)) => timestamp_of(descriptor.kind().as_message()?, text)?,
        (FieldType::Json, json) => {
            let json = pbjson_types::Value { kind: Some(json.clone()) };
            Value::Message(
                DynamicMessage::decode(descriptor.kind().as_message()?.clone(), json.encode_to_vec().as_slice())
                    .ok()?,
            )
        }
        (_, JsonKind::StringValue(text)) => Value::String(text.clone()),
        _ => return None,
    })
}

/// An RFC 3339 time as a `google.protobuf.Timestamp` of `descriptor`.
fn timestamp_of(descriptor: &MessageDescriptor, text: &str) -> Option<Value> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let timestamp = prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 };
    Some(Value::Message(DynamicMessage::decode(descriptor.clone(), timestamp.encode_to_vec().as_slice()).ok()?))
}

/// A unary method of a typed service, for tonic's server machinery.
struct Unary {
    api: TypedApi,
    call: Arc<Call>,
}

impl UnaryService<DynamicMessage> for Unary {
    type Response = DynamicMessage;
    type Future = BoxFuture<Result<tonic::Response<DynamicMessage>, Status>>;

    fn call(&mut self, request: tonic::Request<DynamicMessage>) -> Self::Future {
        let (api, call) = (self.api.clone(), self.call.clone());
        Box::pin(async move { api.answer(&call, request.into_inner()).await.map(tonic::Response::new) })
    }
}

/// Decodes a method's requests by their descriptor (answers carry their own).
struct DynamicCodec {
    input: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.input.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the answer: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("the request is not a {}: {e}", self.0.full_name())))
    }
}

/// [`TypedApi`] as a tower service, for a router's fallback.
impl<B> tonic::codegen::Service<http::Request<B>> for TypedApi
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send,
{
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let api = self.clone();
        Box::pin(async move { Ok(api.call(request).await) })
    }
}
