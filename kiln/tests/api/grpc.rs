//! The same calls over native gRPC (h2c, tonic client) and grpc-web (raw HTTP/1.1), plus
//! health and reflection on the gateway's port.

use kiln_common::error::field_violations;
use kiln_proto::v1::{
    GetModelRequest, GetProfileRequest, ListModelsRequest, LoginRequest, RefreshRequest, RegisterRequest,
    RegisterResponse, auth_service_client::AuthServiceClient, model_service_client::ModelServiceClient,
};
use prost::Message;
use tonic::{Code, Request, transport::Channel};

use crate::harness::{Backend, PASSWORD, spawn_app};

pub async fn channel(addr: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// A message framed as a gRPC (and grpc-web) body: flag byte, length, bytes.
pub fn framed(message: &impl Message) -> Vec<u8> {
    frame(0, &message.encode_to_vec())
}

/// A binary grpc-web call of `url` (`…/package.Service/Method`) carrying `message`,
/// ready for more headers (a token, a deadline) before it is sent.
pub fn grpc_web(http: &reqwest::Client, url: String, message: &impl Message) -> reqwest::RequestBuilder {
    http.post(url).header("content-type", "application/grpc-web+proto").body(framed(message))
}

pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

crate::on_every_backend!(auth_flow_over_native_grpc);

async fn auth_flow_over_native_grpc(backend: Backend) {
    let app = spawn_app(backend).await;
    let channel = channel(app.addr).await;
    let mut auth = AuthServiceClient::new(channel.clone());

    let registered = auth
        .register(RegisterRequest {
            email: "Ada@Example.com".into(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let user = registered.user.unwrap();
    assert_eq!((user.email.as_str(), user.display_name.as_str()), ("ada@example.com", "Ada"));

    let status = auth
        .register(RegisterRequest { email: "nope".into(), password: "short".into(), display_name: String::new() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = field_violations(&status).into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["email", "password"]);

    let status = auth
        .register(RegisterRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let login = auth
        .login(LoginRequest { email: "ada@example.com".into(), password: PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    let tokens = login.tokens.unwrap();
    let profile = auth.get_profile(with_token(GetProfileRequest {}, &tokens.access_token)).await.unwrap().into_inner();
    assert_eq!(profile.user.unwrap().id, user.id);
    assert_eq!(auth.get_profile(GetProfileRequest {}).await.unwrap_err().code(), Code::Unauthenticated);
    let wrong = auth.login(LoginRequest { email: "ada@example.com".into(), password: "wrong horse 9".into() }).await;
    assert_eq!(wrong.unwrap_err().code(), Code::Unauthenticated);

    let refreshed =
        auth.refresh(RefreshRequest { refresh_token: tokens.refresh_token.clone() }).await.unwrap().into_inner();
    assert_ne!(refreshed.tokens.unwrap().refresh_token, tokens.refresh_token);
    let reuse = auth.refresh(RefreshRequest { refresh_token: tokens.refresh_token }).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);

    // model-svc checks the token itself; through the gateway too.
    let mut models = ModelServiceClient::new(channel);
    let denied = models.list_models(ListModelsRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let fresh = auth.login(LoginRequest { email: "ada@example.com".into(), password: PASSWORD.into() }).await.unwrap();
    let access = fresh.into_inner().tokens.unwrap().access_token;
    let listed = models.list_models(with_token(ListModelsRequest::default(), &access)).await.unwrap().into_inner();
    assert!(listed.next_page_token.is_empty());
    let bad_page =
        models.list_models(with_token(ListModelsRequest { page_size: 1000, ..Default::default() }, &access)).await;
    assert_eq!(bad_page.unwrap_err().code(), Code::InvalidArgument);
    let bad_token =
        models.list_models(with_token(ListModelsRequest { page_token: "%%%".into(), ..Default::default() }, &access));
    assert_eq!(bad_token.await.unwrap_err().code(), Code::InvalidArgument);

    // Hostile text is refused or simply matches nothing: never a 500.
    for id in ["x\0y", "'; DROP TABLE users; --", "\"models\"", "ünï", &"a".repeat(5000)] {
        let answer = models.get_model(with_token(GetModelRequest { id: id.to_string() }, &access)).await;
        assert_eq!(answer.unwrap_err().code(), Code::NotFound, "{id:?}");
    }
    let nul_login = auth.login(LoginRequest { email: "ada\0@example.com".into(), password: "x\0".into() }).await;
    assert_eq!(nul_login.unwrap_err().code(), Code::Unauthenticated);
    let nul_name = auth
        .register(RegisterRequest {
            email: "nul@example.com".into(),
            password: PASSWORD.into(),
            display_name: "a\0b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(nul_name.code(), Code::InvalidArgument);
    app.stop().await;
}

/// One grpc-web frame: flag byte, big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a grpc-web response body into (data frames, trailer text).
pub fn frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut data, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            trailers.push_str(std::str::from_utf8(payload).unwrap());
        } else {
            data.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes after the last frame");
    (data, trailers)
}

async fn grpc_web_call(
    app: &crate::harness::TestApp,
    path: &str,
    message: impl Message,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = grpc_web(&app.http, app.url(path), &message).header("x-grpc-web", "1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn grpc_web_over_plain_http1_with_trailer_frame() {
    let app = spawn_app(Backend::Sqlite).await;
    let register =
        RegisterRequest { email: "web@example.com".into(), password: PASSWORD.into(), display_name: String::new() };
    let (headers, body) = grpc_web_call(&app, "/kiln.v1.AuthService/Register", register).await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/grpc-web"));
    let (data, trailers) = frames(&body);
    assert_eq!(data.len(), 1);
    let response = RegisterResponse::decode(data[0].as_slice()).unwrap();
    assert_eq!(response.user.unwrap().email, "web@example.com");
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // An error: the status travels in the trailers (or, trailers-only, in the headers).
    let login = LoginRequest { email: "web@example.com".into(), password: "wrong horse 9".into() };
    let (headers, body) = grpc_web_call(&app, "/kiln.v1.AuthService/Login", login).await;
    let (data, trailers) = frames(&body);
    assert!(data.is_empty());
    let status = headers.get("grpc-status").map(|v| v.to_str().unwrap().to_string()).unwrap_or_else(|| {
        trailers.lines().find_map(|l| l.strip_prefix("grpc-status:")).unwrap_or_default().trim().to_string()
    });
    assert_eq!(status, "16", "UNAUTHENTICATED; headers {headers:?} trailers {trailers:?}");

    let (headers, body) = grpc_web_call(&app, "/kiln.v1.NoSuchService/List", LoginRequest::default()).await;
    let (_, trailers) = frames(&body);
    let unimplemented = headers.get("grpc-status").is_some_and(|v| v == "12") || trailers.contains("grpc-status:12");
    assert!(unimplemented, "a service not served answers UNIMPLEMENTED");
    app.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served_on_the_gateway_port() {
    use tokio_stream::StreamExt;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    use tonic_reflection::pb::{v1, v1alpha};

    let app = spawn_app(Backend::Sqlite).await;
    let channel = channel(app.addr).await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "kiln.v1.AuthService", "kiln.v1.ModelService"] {
        let answer = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "kiln.v1.NoSuchService".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "kiln.v1.ApplicationService",
            "kiln.v1.AuthService",
            "kiln.v1.BuildService",
            "kiln.v1.EntityService",
            "kiln.v1.ModelService",
            "kiln.v1.PromptService",
            "kiln.v1.TemplateService",
            "kiln.v1.WebhookService",
            "kiln.v1.WorkflowService"
        ]
    );

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "kiln.v1.AuthService".into(),
        )),
    };
    let mut stream = alpha.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = stream.next().await.unwrap().unwrap();
    assert!(matches!(
        answer.message_response,
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref files)) if !files.file_descriptor_proto.is_empty()
    ));

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/kiln.v1.Nothing/Nope");
    let codec = tonic_prost::ProstCodec::<LoginRequest, LoginRequest>::default();
    let missing = grpc.unary(Request::new(LoginRequest::default()), path, codec).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unimplemented);
    app.stop().await;
}

/// Every method of every service the server lists over reflection (v1), as
/// `package.Service/Method`.
pub async fn reflected_methods(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = |request: MessageRequest| ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([ask(MessageRequest::ListServices(String::new()))]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let mut methods = Vec::new();
    for service in list.service {
        let request = ask(MessageRequest::FileContainingSymbol(service.name.clone()));
        let mut answers = reflection.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            answers.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected the file of {}", service.name);
        };
        for bytes in files.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            for declared in &file.service {
                if format!("{}.{}", file.package(), declared.name()) == service.name {
                    methods.extend(declared.method.iter().map(|m| format!("{}/{}", service.name, m.name())));
                }
            }
        }
    }
    methods
}
