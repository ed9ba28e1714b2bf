//! The workspace's typed contract (`/api/v1/proto`, `kiln.ws.<workspace_slug>.v1`): derived
//! from the models as they are now, field numbers kept across renames and never reused,
//! each workspace seeing only its own. On every backend (the mesh asks app-svc for the
//! workspace's slug over the network).

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage as _, Value};
use serde_json::json;
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::harness::{Backend, TestApp, assert_error, spawn_app, token};

crate::on_every_backend!(
    the_contract_follows_model_changes_with_stable_numbers,
    each_workspace_has_its_own_slug_and_contract,
    typed_services_answer_over_grpc_and_grpc_web_with_every_value_exact,
    reflection_with_a_token_describes_the_callers_typed_services_only,
    watch_streams_every_change_to_the_models_records_from_any_api,
);

/// `/api/v1/proto` as text, and the descriptor set's file for the package.
async fn contract(app: &TestApp, access: &str) -> (String, prost_types::FileDescriptorProto) {
    let response = app.http.get(app.url("/api/v1/proto")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    let source = response.text().await.unwrap();
    let response = app.http.get(app.url("/api/v1/proto/descriptor")).bearer_auth(access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let set = prost_types::FileDescriptorSet::decode(response.bytes().await.unwrap()).unwrap();
    let file = set.file.into_iter().find(|f| f.package().starts_with("kiln.ws.")).expect("the workspace's file");
    (source, file)
}

/// (name, number) of each field of `message`.
fn numbers(file: &prost_types::FileDescriptorProto, message: &str) -> Vec<(String, i32)> {
    let message = file.message_type.iter().find(|m| m.name() == message).expect("the message");
    message.field.iter().map(|f| (f.name().to_string(), f.number())).collect()
}

async fn the_contract_follows_model_changes_with_stable_numbers(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let (status, profile) = app.get_with_token("/api/v1/auth/profile", &access).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["user"]["workspace_slug"], "ada");

    let (source, file) = contract(&app, &access).await;
    assert!(source.contains("package kiln.ws.ada.v1;"), "{source}");
    assert!(file.message_type.is_empty(), "system models are kiln.v1's: {source}");

    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
        { "name": "due", "type": "date" },
    ]});
    let (status, created) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{created}");
    let id = created["model"]["id"].as_str().unwrap().to_string();
    let given: Vec<i64> =
        created["model"]["fields"].as_array().unwrap().iter().map(|f| f["number"].as_i64().unwrap()).collect();
    assert_eq!(given, [16, 17, 18, 19]);
    let (source, file) = contract(&app, &access).await;
    assert!(source.contains("service InvoiceService {"), "{source}");
    assert!(source.contains("  optional string amount = 17;"), "{source}");
    assert!(source.contains("  optional Status status = 18;"), "{source}");
    let expected = [("id", 1), ("created_at", 2), ("updated_at", 3), ("created_by", 4)];
    let mut expected: Vec<(String, i32)> = expected.iter().map(|(n, i)| (n.to_string(), *i)).collect();
    expected.extend([("number", 16), ("amount", 17), ("status", 18), ("due", 19)].map(|(n, i)| (n.into(), i)));
    assert_eq!(numbers(&file, "Invoice"), expected);

    // `amount` renamed to `total`, `due` dropped, `note` added; numbers sent are ignored.
    let change = json!({ "confirm_data_loss": true, "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "total", "type": "decimal", "previous_name": "amount", "number": 99 },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
        { "name": "note", "type": "long_text", "number": 19 },
    ]});
    let (status, changed) =
        app.send(reqwest::Method::PUT, &format!("/api/v1/models/{id}"), &access, Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    let former = json!([{ "number": 17, "name": "amount" }, { "number": 19, "name": "due" }]);
    assert_eq!(changed["model"]["reserved_fields"], former, "the dropped field, and the renamed one's old name");
    let (source, file) = contract(&app, &access).await;
    let user_fields: Vec<(String, i32)> = numbers(&file, "Invoice").into_iter().skip(4).collect();
    assert_eq!(user_fields, [("number", 16), ("total", 17), ("status", 18), ("note", 20)].map(|(n, i)| (n.into(), i)));
    assert!(source.contains("reserved 19;") && source.contains("reserved \"amount\", \"due\";"), "{source}");
    assert!(!source.contains("reserved 17"), "a renamed field's number is in use: {source}");

    // A client of the contract before the change still names `amount` (now `total`) and
    // `due` (dropped) in its update masks: the first reaches `total`, the second changes
    // nothing; a name no version had is refused.
    let (status, made) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201, "{made}");
    let typed = Typed::new(&app, &access).await;
    let update = |paths: &[&str]| {
        let mut changes = typed.message("Invoice");
        changes.set_field_by_name("id", Value::String(made["record"]["id"].as_str().unwrap().into()));
        changes.set_field_by_name("total", Value::String("7.25".into()));
        let mut mask = typed.pool.get_message_by_name("google.protobuf.FieldMask").map(DynamicMessage::new).unwrap();
        mask.set_field_by_name("paths", Value::List(paths.iter().map(|p| Value::String(p.to_string())).collect()));
        let mut update = typed.message("UpdateInvoiceRequest");
        update.set_field_by_name("invoice", Value::Message(changes));
        update.set_field_by_name("update_mask", Value::Message(mask));
        update
    };
    let updated = typed.call("InvoiceService", "Update", update(&["amount", "due"])).await.unwrap();
    assert!(field(&updated, "total").as_str().unwrap().starts_with("7.25"), "{updated:?}");
    let refused = typed.call("InvoiceService", "Update", update(&["nope"])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(kiln_common::error::field_violations(&refused)[0].field, "update_mask");

    // Without a token: the contract is the caller's workspace's, so there is none.
    let response = app.http.get(app.url("/api/v1/proto")).send().await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_error(status, &body, 401, "unauthenticated");
    app.stop().await;
}

async fn each_workspace_has_its_own_slug_and_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = token(&app.register("ada@example.com").await, "access_token");
    let (status, created) = app.post_with_token("/api/v1/models", &ada, json!({ "name": "Ledger" })).await;
    assert_eq!(status, 201, "{created}");
    // Another Ada: the slug is taken, so hers has a suffix.
    let other = token(&app.register("ada@other.example").await, "access_token");
    let (_, profile) = app.get_with_token("/api/v1/auth/profile", &other).await;
    let slug = profile["user"]["workspace_slug"].as_str().unwrap().to_string();
    assert!(slug.starts_with("ada_") && slug.len() == "ada_".len() + 6, "{slug}");
    let (source, file) = contract(&app, &other).await;
    assert!(source.contains(&format!("package kiln.ws.{slug}.v1;")), "{source}");
    assert!(!source.contains("Ledger") && file.message_type.is_empty(), "{source}");
    app.stop().await;
}

/// A typed call's messages, by the descriptors a client got from `/api/v1/proto/descriptor`.
struct Dynamic(MessageDescriptor);

impl Codec for Dynamic {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = Dynamic;
    type Decoder = Dynamic;

    fn encoder(&mut self) -> Self::Encoder {
        Dynamic(self.0.clone())
    }

    fn decoder(&mut self) -> Self::Decoder {
        Dynamic(self.0.clone())
    }
}

impl Encoder for Dynamic {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for Dynamic {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// A client of one workspace's typed services.
struct Typed {
    pool: DescriptorPool,
    package: String,
    channel: tonic::transport::Channel,
    token: String,
}

impl Typed {
    async fn new(app: &TestApp, token: &str) -> Typed {
        let response = app.http.get(app.url("/api/v1/proto/descriptor")).bearer_auth(token).send().await.unwrap();
        let pool = DescriptorPool::decode(response.bytes().await.unwrap()).unwrap();
        let package = pool.files().find(|f| f.package_name().starts_with("kiln.ws.")).unwrap().package_name().into();
        Typed { pool, package, channel: crate::grpc::channel(app.addr).await, token: token.into() }
    }

    fn message(&self, name: &str) -> DynamicMessage {
        DynamicMessage::new(self.pool.get_message_by_name(&format!("{}.{name}", self.package)).unwrap())
    }

    /// `Service/Method` of the package with `request`, as this client's user.
    async fn call(
        &self,
        service: &str,
        method: &str,
        request: DynamicMessage,
    ) -> Result<DynamicMessage, tonic::Status> {
        self.call_as(&self.package, service, method, request, &self.token).await
    }

    /// `Service/Watch` as `token`: the stream of changes.
    async fn watch(&self, service: &str, token: &str) -> Result<tonic::Streaming<DynamicMessage>, tonic::Status> {
        let descriptor = self.pool.get_service_by_name(&format!("{}.{service}", self.package)).unwrap();
        let method = descriptor.methods().find(|m| m.name() == "Watch").unwrap();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/{}.{service}/Watch", self.package).parse().unwrap();
        let request = crate::grpc::with_token(DynamicMessage::new(method.input()), token);
        grpc.server_streaming(request, path, Dynamic(method.output())).await.map(|r| r.into_inner())
    }

    async fn call_as(
        &self,
        package: &str,
        service: &str,
        method: &str,
        request: DynamicMessage,
        token: &str,
    ) -> Result<DynamicMessage, tonic::Status> {
        let descriptor = self.pool.get_service_by_name(&format!("{}.{service}", self.package)).unwrap();
        let output = descriptor.methods().find(|m| m.name() == method).unwrap().output();
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/{package}.{service}/{method}").parse().unwrap();
        grpc.unary(crate::grpc::with_token(request, token), path, Dynamic(output)).await.map(|r| r.into_inner())
    }
}

fn field(message: &DynamicMessage, name: &str) -> Value {
    message.get_field_by_name(name).unwrap().into_owned()
}

async fn typed_services_answer_over_grpc_and_grpc_web_with_every_value_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true },
        { "name": "amount", "type": "decimal" },
        { "name": "count", "type": "integer" },
        { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
        { "name": "sent_at", "type": "datetime" },
        { "name": "extra", "type": "json" },
    ]});
    let (status, created) = app.post_with_token("/api/v1/models", &access, invoice).await;
    assert_eq!(status, 201, "{created}");
    let typed = Typed::new(&app, &access).await;

    // Create: an int64 beyond 2^53, an exact decimal, an enum, a timestamp, JSON.
    let big = (1_i64 << 53) + 1;
    let mut record = typed.message("Invoice");
    record.set_field_by_name("number", Value::String("INV-1".into()));
    record.set_field_by_name("amount", Value::String("12.50".into()));
    record.set_field_by_name("count", Value::I64(big));
    record.set_field_by_name("status", Value::EnumNumber(2));
    let mut sent_at = typed.pool.get_message_by_name("google.protobuf.Timestamp").map(DynamicMessage::new).unwrap();
    sent_at.set_field_by_name("seconds", Value::I64(1_767_225_600));
    record.set_field_by_name("sent_at", Value::Message(sent_at.clone()));
    let extra = kiln_proto::wkt::Value { kind: Some(kiln_proto::wkt::value::Kind::StringValue("hello".into())) };
    let extra_type = typed.pool.get_message_by_name("google.protobuf.Value").unwrap();
    record.set_field_by_name(
        "extra",
        Value::Message(DynamicMessage::decode(extra_type, extra.encode_to_vec().as_slice()).unwrap()),
    );
    let mut create = typed.message("CreateInvoiceRequest");
    create.set_field_by_name("invoice", Value::Message(record));
    let made = typed.call("InvoiceService", "Create", create).await.unwrap();
    let id = field(&made, "id").as_str().unwrap().to_string();
    assert_eq!(field(&made, "count"), Value::I64(big), "all 64 bits kept");
    assert_eq!(field(&made, "status"), Value::EnumNumber(2));
    assert_eq!(field(&made, "sent_at"), Value::Message(sent_at));
    assert!(made.get_field_by_name("created_at").is_some());

    // REST reads the same record; the int64 is a string there (beyond 2^53).
    let (status, rest) = app.get_with_token(&format!("/api/v1/invoices/{id}"), &access).await;
    assert_eq!(status, 200, "{rest}");
    let rest = &rest["record"];
    assert_eq!(
        (&rest["count"], &rest["status"], &rest["extra"]),
        (&json!(big.to_string()), &json!("sent"), &json!("hello"))
    );

    // Update with a mask: only `amount` changes; `status` named but unset is cleared.
    let mut changes = typed.message("Invoice");
    changes.set_field_by_name("id", Value::String(id.clone()));
    changes.set_field_by_name("amount", Value::String("99.95".into()));
    changes.set_field_by_name("number", Value::String("not this".into()));
    let mut mask = typed.pool.get_message_by_name("google.protobuf.FieldMask").map(DynamicMessage::new).unwrap();
    mask.set_field_by_name("paths", Value::List(vec![Value::String("amount".into()), Value::String("status".into())]));
    let mut update = typed.message("UpdateInvoiceRequest");
    update.set_field_by_name("invoice", Value::Message(changes));
    update.set_field_by_name("update_mask", Value::Message(mask));
    let updated = typed.call("InvoiceService", "Update", update).await.unwrap();
    let amount = field(&updated, "amount");
    assert!(amount.as_str().unwrap().starts_with("99.95"), "{amount:?}");
    assert_eq!(field(&updated, "number"), Value::String("INV-1".into()));
    assert!(!updated.has_field_by_name("status"), "cleared");

    // A required field left out: INVALID_ARGUMENT with the field named.
    let mut create = typed.message("CreateInvoiceRequest");
    create.set_field_by_name("invoice", Value::Message(typed.message("Invoice")));
    let refused = typed.call("InvoiceService", "Create", create).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let violations = kiln_common::error::field_violations(&refused);
    assert!(violations.iter().any(|v| v.field == "number"), "{violations:?}");

    // List, and the same Get over grpc-web.
    let listed = typed.call("InvoiceService", "List", typed.message("ListInvoicesRequest")).await.unwrap();
    assert_eq!(field(&listed, "invoices").as_list().map(<[Value]>::len), Some(1));
    let mut get = typed.message("GetInvoiceRequest");
    get.set_field_by_name("id", Value::String(id.clone()));
    let url = app.url(&format!("/{}.InvoiceService/Get", typed.package));
    let body = app
        .http
        .post(url)
        .header("content-type", "application/grpc-web+proto")
        .bearer_auth(&access)
        .body(frame(&get.encode_to_vec()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (data, trailers) = crate::grpc::frames(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let got = DynamicMessage::decode(typed.message("Invoice").descriptor(), data[0].as_slice()).unwrap();
    assert_eq!(field(&got, "count"), Value::I64(big));

    // Another workspace: the service is not found, whatever its token.
    let bob = token(&app.register("bob@example.com").await, "access_token");
    let mut get = typed.message("GetInvoiceRequest");
    get.set_field_by_name("id", Value::String(id.clone()));
    let hidden = typed.call_as(&typed.package, "InvoiceService", "Get", get.clone(), &bob).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert!(!hidden.message().contains(&id), "{hidden:?}");

    // A model change is in the next call: `amount` renamed keeps its number (old clients
    // still read it), and the renamed field is there for new ones.
    let (status, model) = app.get_with_token("/api/v1/models/invoices", &access).await;
    assert_eq!(status, 200);
    let mut fields = model["model"]["fields"].as_array().unwrap().clone();
    fields[1] = json!({ "name": "total", "type": "decimal", "previous_name": "amount" });
    let change = json!({ "fields": fields });
    let (status, changed) = app.send(reqwest::Method::PUT, "/api/v1/models/invoices", &access, Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    let old_client = typed.call("InvoiceService", "Get", get.clone()).await.unwrap();
    assert!(field(&old_client, "amount").as_str().unwrap().starts_with("99.95"), "same number, old name");
    let renewed = Typed::new(&app, &access).await;
    let fresh = renewed.call("InvoiceService", "Get", get.clone()).await.unwrap();
    assert!(field(&fresh, "total").as_str().unwrap().starts_with("99.95"));

    // Delete, then Get is NOT_FOUND.
    let mut delete = typed.message("DeleteInvoiceRequest");
    delete.set_field_by_name("id", Value::String(id));
    typed.call("InvoiceService", "Delete", delete).await.unwrap();
    assert_eq!(typed.call("InvoiceService", "Get", get).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

/// A gRPC (and grpc-web) data frame.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Reflection v1 `ListServices` and v1alpha `FileContainingSymbol` as the holder of
/// `token` (none: anonymous): the services listed, and the file's messages.
async fn reflect(app: &TestApp, token: Option<&str>, symbol: &str) -> (Vec<String>, Option<Vec<String>>) {
    use tonic_reflection::pb::{v1, v1alpha};
    let channel = crate::grpc::channel(app.addr).await;
    let with = |request| match token {
        Some(token) => crate::grpc::with_token(tokio_stream::iter([request]), token),
        None => tonic::Request::new(tokio_stream::iter([request])),
    };
    let list = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut answers = client.server_reflection_info(with(list)).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(listed)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let services = listed.service.into_iter().map(|s| s.name).collect();
    let find = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let with = |request| match token {
        Some(token) => crate::grpc::with_token(tokio_stream::iter([request]), token),
        None => tonic::Request::new(tokio_stream::iter([request])),
    };
    let mut answers = client.server_reflection_info(with(find)).await.unwrap().into_inner();
    // A symbol not found ends the stream with NOT_FOUND.
    let answer = answers.message().await.ok().flatten().and_then(|answer| answer.message_response);
    let messages = match answer {
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) => Some(
            files
                .file_descriptor_proto
                .iter()
                .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
                .flat_map(|file| file.message_type.into_iter().map(|m| m.name().to_string()))
                .collect(),
        ),
        _ => None,
    };
    (services, messages)
}

async fn reflection_with_a_token_describes_the_callers_typed_services_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = token(&app.register("ada@example.com").await, "access_token");
    let (status, created) = app.post_with_token("/api/v1/models", &ada, json!({ "name": "Invoice" })).await;
    assert_eq!(status, 201, "{created}");

    let (services, messages) = reflect(&app, Some(&ada), "kiln.ws.ada.v1.Invoice").await;
    assert!(services.contains(&"kiln.ws.ada.v1.InvoiceService".to_string()), "{services:?}");
    assert!(services.contains(&"kiln.v1.ModelService".to_string()), "{services:?}");
    let messages = messages.expect("the contract's file");
    assert!(messages.contains(&"Invoice".to_string()) && messages.contains(&"CreateInvoiceRequest".to_string()));

    // Anonymous, or another tenant: the platform's services, nothing of Ada's.
    let bob = token(&app.register("bob@example.com").await, "access_token");
    for caller in [None, Some(bob.as_str()), Some("not-a-token")] {
        let (services, messages) = reflect(&app, caller, "kiln.ws.ada.v1.Invoice").await;
        assert!(services.iter().all(|s| !s.starts_with("kiln.ws.ada.")), "{caller:?}: {services:?}");
        assert!(services.contains(&"kiln.v1.ModelService".to_string()), "{services:?}");
        assert_eq!(messages, None, "{caller:?}");
    }
    app.stop().await;
}

async fn watch_streams_every_change_to_the_models_records_from_any_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let access = token(&app.register("ada@example.com").await, "access_token");
    for name in ["Invoice", "Customer"] {
        let model = json!({ "name": name, "fields": [{ "name": "number", "type": "text" }] });
        let (status, created) = app.post_with_token("/api/v1/models", &access, model).await;
        assert_eq!(status, 201, "{created}");
    }
    let typed = Typed::new(&app, &access).await;
    let mut changes = typed.watch("InvoiceService", &access).await.unwrap();

    // Written over REST; a change to another model is not this watch's.
    let (_, other) = app.post_with_token("/api/v1/customers", &access, json!({ "number": "C-1" })).await;
    assert_eq!(other["record"]["number"], "C-1");
    let (status, made) = app.post_with_token("/api/v1/invoices", &access, json!({ "number": "INV-1" })).await;
    assert_eq!(status, 201, "{made}");
    let id = made["record"]["id"].as_str().unwrap().to_string();
    let created = next(&mut changes).await;
    assert_eq!((field(&created, "kind"), field(&created, "id")), (Value::EnumNumber(1), Value::String(id.clone())));
    let record = field(&created, "invoice");
    assert_eq!(field(record.as_message().unwrap(), "number"), Value::String("INV-1".into()));

    // Written over the typed service itself.
    let mut changes_to = typed.message("Invoice");
    changes_to.set_field_by_name("id", Value::String(id.clone()));
    changes_to.set_field_by_name("number", Value::String("INV-2".into()));
    let mut update = typed.message("UpdateInvoiceRequest");
    update.set_field_by_name("invoice", Value::Message(changes_to));
    typed.call("InvoiceService", "Update", update).await.unwrap();
    let updated = next(&mut changes).await;
    assert_eq!(field(&updated, "kind"), Value::EnumNumber(2));
    assert_eq!(field(field(&updated, "invoice").as_message().unwrap(), "number"), Value::String("INV-2".into()));

    let (status, _) = app.send(reqwest::Method::DELETE, &format!("/api/v1/invoices/{id}"), &access, None).await;
    assert_eq!(status, 204);
    let deleted = next(&mut changes).await;
    assert_eq!((field(&deleted, "kind"), field(&deleted, "id")), (Value::EnumNumber(3), Value::String(id)));
    assert!(!deleted.has_field_by_name("invoice"));

    // Another workspace cannot watch Ada's invoices.
    let bob = token(&app.register("bob@example.com").await, "access_token");
    assert_eq!(typed.watch("InvoiceService", &bob).await.unwrap_err().code(), Code::NotFound);

    // Stopping the process that serves the watch ends it (it does not hold the drain
    // up). In the mesh the gateway stops first: it ends the watches it relays, with
    // UNAVAILABLE (call again), rather than wait for them until its drain times out.
    let stopping = tokio::spawn(app.stop());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), changes.message()).await;
    if backend == Backend::Mesh {
        let Ok(Err(status)) = ended else { panic!("the relayed watch did not end with a status: {ended:?}") };
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("the gateway is stopping"), "{status:?}");
    } else {
        assert!(matches!(ended, Ok(Ok(None)) | Ok(Err(_))), "the watch still runs: {ended:?}");
    }
    stopping.await.unwrap();
}

/// The next change a watch sees, within a deadline.
async fn next(changes: &mut tonic::Streaming<DynamicMessage>) -> DynamicMessage {
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), changes.message()).await;
    next.expect("a change within 10 s").unwrap().expect("the watch goes on")
}
