//! The mesh: model, app and gateway roles as separate servers on loopback ports, sharing
//! one PostgreSQL database, and one auth flow through the gateway.

use std::time::Duration;

use kiln_common::config::Role;
use kiln_proto::v1::{ListModelsRequest, model_service_client::ModelServiceClient};
use serde_json::json;
use tonic::Code;

use crate::{
    grpc::{channel, with_token},
    harness::{
        MeshRoles, PASSWORD, TestDatabase, assert_error, read, start_mesh, start_model_role, test_config, token,
    },
};

/// The four roles on loopback ports, the gateway pointed at the other three.
struct Mesh {
    _database: TestDatabase,
    model: kiln::Running,
    app: kiln::Running,
    build: kiln::Running,
    gateway: kiln::Running,
    base: String,
    http: reqwest::Client,
}

impl Mesh {
    /// Each role connects as a database user of its own, which reaches only the tables
    /// its service owns: app-svc's identity, sessions, audit and platform-kind tables are
    /// out of model-svc's reach, and model-svc's models out of app-svc's.
    async fn start() -> Self {
        let mut database = TestDatabase::new(crate::harness::Backend::Mesh);
        let config = test_config(Role::AllInOne, &database);
        let MeshRoles { users, app, model, build, gateway } = start_mesh(&mut database, config).await;
        for (user, url, foreign) in [
            (
                "model",
                &users.model_url,
                [
                    "sessions",
                    "users",
                    "refresh_tokens",
                    "audit_log",
                    "workspaces",
                    "applications",
                    "components",
                    "templates",
                    "workflows",
                    "prompts",
                ]
                .as_slice(),
            ),
            ("app", &users.app_url, ["models", "model_versions", "model_seeds"].as_slice()),
        ] {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            for table in foreign {
                let sql = format!("SELECT 1 FROM {table} LIMIT 1");
                let denied = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&pool).await.unwrap_err();
                let code = denied.as_database_error().and_then(|e| e.code()).map(|c| c.to_string());
                assert_eq!(code.as_deref(), Some("42501"), "the {user} role reads {table}: {denied}");
            }
            pool.close().await;
        }
        let base = format!("http://{}", gateway.http_addr.unwrap());
        Mesh { _database: database, model, app, build, gateway, base, http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        read(self.http.post(format!("{}{path}", self.base)).json(body).send().await.unwrap()).await
    }

    async fn log_in(&self) -> String {
        let (status, login) = self.post("/api/v1/auth/login", &credentials()).await;
        assert_eq!(status, 200, "{login}");
        token(&login, "access_token")
    }

    async fn log_out(&self, access: &str) {
        let logout = self.http.post(format!("{}/api/v1/auth/logout", self.base)).bearer_auth(access).send().await;
        assert_eq!(logout.unwrap().status(), 204);
    }
}

fn credentials() -> serde_json::Value {
    json!({ "email": "mesh@example.com", "password": PASSWORD })
}

#[tokio::test]
async fn gateway_reaches_model_and_app_roles_over_the_network() {
    let mesh = Mesh::start().await;
    let (status, body) = read(mesh.http.get(format!("{}/readyz", mesh.base)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    sessions_live_and_end_through_the_gateway(&mesh).await;
    roles_called_directly_want_a_live_session(&mesh).await;
    the_meta_loop_runs_across_the_roles(&mesh).await;
    a_role_that_goes_away_is_reported_not_hidden(mesh).await;
}

/// Register, log in, refresh, read the profile, log out: the app role behind the gateway.
async fn sessions_live_and_end_through_the_gateway(mesh: &Mesh) {
    let (status, registered) = mesh.post("/api/v1/auth/register", &credentials()).await;
    assert_eq!(status, 201, "{registered}");
    let (status, login) = mesh.post("/api/v1/auth/login", &credentials()).await;
    assert_eq!(status, 200, "{login}");
    let refresh = json!({ "refresh_token": token(&login, "refresh_token") });
    let (status, refreshed) = mesh.post("/api/v1/auth/refresh", &refresh).await;
    assert_eq!(status, 200, "{refreshed}");
    let access = token(&refreshed, "access_token");
    let profile = mesh.http.get(format!("{}/api/v1/auth/profile", mesh.base)).bearer_auth(&access).send().await;
    let (status, profile) = read(profile.unwrap()).await;
    assert_eq!((status, &profile["user"]["email"]), (200, &json!("mesh@example.com")));
    mesh.log_out(&access).await;
    let (status, body) = mesh.post("/api/v1/auth/refresh", &refresh).await;
    assert_error(status, &body, 401, "unauthenticated");
}

/// model-svc, called directly, refuses a call without a valid token, and a logged-out
/// session as well: announced at once, and within the cache's staleness bound at worst.
async fn roles_called_directly_want_a_live_session(mesh: &Mesh) {
    let mut direct = ModelServiceClient::new(channel(mesh.model.grpc_addr.unwrap()).await);
    let denied = direct.list_models(ListModelsRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let forged = direct.list_models(with_token(ListModelsRequest::default(), "eyJhbGciOiJub25lIn0.e30.")).await;
    assert_eq!(forged.unwrap_err().code(), Code::Unauthenticated);
    let access = mesh.log_in().await;
    assert!(direct.list_models(with_token(ListModelsRequest::default(), &access)).await.is_ok());
    mesh.log_out(&access).await;
    let deadline = std::time::Instant::now() + kiln_common::sessions::SESSION_CACHE_TTL + Duration::from_secs(1);
    loop {
        match direct.list_models(with_token(ListModelsRequest::default(), &access)).await {
            Err(ended) if ended.code() == Code::Unauthenticated => break,
            other => {
                assert!(std::time::Instant::now() < deadline, "the ended session still works: {other:?}");
                tokio::task::yield_now().await;
            }
        }
    }
}

/// A model becomes a table in the workspace's schema; its records answer over REST, over
/// native gRPC and over grpc-web (plain HTTP/1.1), all through the gateway.
async fn the_meta_loop_runs_across_the_roles(mesh: &Mesh) {
    let (base, http) = (&mesh.base, &mesh.http);
    let access = mesh.log_in().await;
    let invoice = json!({ "name": "Invoice", "fields": [
        { "name": "number", "type": "text", "required": true, "unique": true },
        { "name": "amount", "type": "decimal" }
    ]});
    let created = http.post(format!("{base}/api/v1/models")).bearer_auth(&access).json(&invoice).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let record = json!({ "number": "M-1", "amount": 12.5 });
    let (status, body) =
        read(http.post(format!("{base}/api/invoices")).bearer_auth(&access).json(&record).send().await.unwrap()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["record"]["id"].as_str().unwrap().to_string();
    let (status, body) =
        read(http.get(format!("{base}/api/invoices/{id}")).bearer_auth(&access).send().await.unwrap()).await;
    assert_eq!((status, &body["record"]["amount"]), (200, &json!("12.5")));
    // A system kind's records: the starter templates app-svc seeded, and a new application.
    let (status, body) =
        read(http.get(format!("{base}/api/v1/templates")).bearer_auth(&access).send().await.unwrap()).await;
    let starters = kiln_common::seeds::starter_templates().unwrap().len();
    assert_eq!((status, body["records"].as_array().map(Vec::len)), (200, Some(starters)), "{body}");
    let shop = json!({ "name": "Shop" });
    let (status, body) =
        read(http.post(format!("{base}/api/v1/applications")).bearer_auth(&access).json(&shop).send().await.unwrap())
            .await;
    assert_eq!(status, 201, "{body}");
    let mut entities =
        kiln_proto::v1::entity_service_client::EntityServiceClient::new(channel(mesh.gateway.http_addr.unwrap()).await);
    let listed = entities
        .list_entities(with_token(
            kiln_proto::v1::ListEntitiesRequest { model: "invoices".into(), ..Default::default() },
            &access,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.records.len(), 1);
    let request = kiln_proto::v1::GetEntityRequest { model: "invoices".into(), id: id.clone() };
    let call = crate::grpc::grpc_web(http, format!("{base}/kiln.v1.EntityService/GetEntity"), &request);
    let web = call.bearer_auth(&access).send().await.unwrap();
    assert_eq!(web.version(), reqwest::Version::HTTP_11);
    let (data, trailers) = crate::grpc::frames(&web.bytes().await.unwrap());
    let got: kiln_proto::v1::GetEntityResponse = prost::Message::decode(data[0].as_slice()).unwrap();
    assert_eq!(serde_json::to_value(got.record.unwrap()).unwrap()["number"], json!("M-1"));
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    mesh.log_out(&access).await;
}

/// A role that goes away makes the gateway unready, not broken: its gRPC health says
/// which services went with it, `/readyz` names them, and their calls answer UNAVAILABLE.
async fn a_role_that_goes_away_is_reported_not_hidden(mesh: Mesh) {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let gateway = channel(mesh.gateway.http_addr.unwrap()).await;
    let mut through = ModelServiceClient::new(gateway.clone());
    assert_eq!(through.list_models(ListModelsRequest::default()).await.unwrap_err().code(), Code::Unauthenticated);
    let access = mesh.log_in().await;
    let mut health = HealthClient::new(gateway);
    let mut status_of = async |service: &str| {
        health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status()
    };
    for service in ["", "kiln.v1.EntityService", "kiln.v1.AuthService"] {
        assert_eq!(status_of(service).await, ServingStatus::Serving, "{service:?}");
    }
    mesh.model.stop().await.unwrap();
    for (service, expected) in [
        ("", ServingStatus::Serving),
        ("kiln.v1.ModelService", ServingStatus::NotServing),
        ("kiln.v1.EntityService", ServingStatus::NotServing),
        ("kiln.v1.AuthService", ServingStatus::Serving),
    ] {
        assert_eq!(status_of(service).await, expected, "{service:?}");
    }
    let (status, body) = read(mesh.http.get(format!("{}/readyz", mesh.base)).send().await.unwrap()).await;
    assert_error(status, &body, 503, "unavailable");
    assert_eq!(body["error"]["details"][0]["field"], "kiln.v1.ModelService", "{body}");
    let listed = through.list_models(with_token(ListModelsRequest::default(), &access)).await.unwrap_err();
    assert_eq!(listed.code(), Code::Unavailable);
    for running in [mesh.gateway, mesh.app, mesh.build] {
        running.stop().await.unwrap();
    }
}

/// Two model roles on one PostgreSQL: a change made through one is what the other uses
/// for the very next call, though each keeps its models compiled between calls.
#[tokio::test]
async fn a_model_change_in_one_model_role_is_seen_at_once_by_another() {
    use kiln_proto::v1::{
        CreateEntityRequest, CreateModelRequest, Field, GetModelRequest, UpdateModelRequest,
        entity_service_client::EntityServiceClient,
    };
    let database = TestDatabase::new(crate::harness::Backend::Postgres);
    let app = kiln::start(test_config(Role::App, &database)).await.unwrap();
    let first = start_model_role(&database, &app).await;
    let second = start_model_role(&database, &app).await;
    let mut auth = kiln_proto::v1::auth_service_client::AuthServiceClient::new(channel(app.grpc_addr.unwrap()).await);
    let registered = auth
        .register(kiln_proto::v1::RegisterRequest {
            email: "replicas@example.com".into(),
            password: PASSWORD.into(),
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let access = registered.tokens.unwrap().access_token;
    let mut models_one = ModelServiceClient::new(channel(first.grpc_addr.unwrap()).await);
    let mut entities_one = EntityServiceClient::new(channel(first.grpc_addr.unwrap()).await);
    let mut entities_two = EntityServiceClient::new(channel(second.grpc_addr.unwrap()).await);
    let field = |name: &str, previous: &str| Field {
        name: name.into(),
        r#type: "decimal".into(),
        previous_name: previous.into(),
        ..Default::default()
    };
    let create = CreateModelRequest { name: "Meter".into(), fields: vec![field("amount", "")], ..Default::default() };
    models_one.create_model(with_token(create, &access)).await.unwrap();
    let record = |json: serde_json::Value| CreateEntityRequest {
        model: "meters".into(),
        record: Some(serde_json::from_value(json).unwrap()),
    };
    // Both roles have compiled the model now.
    for entities in [&mut entities_one, &mut entities_two] {
        entities.create_entity(with_token(record(json!({ "amount": 1 })), &access)).await.unwrap();
    }
    for round in 0..3 {
        let (from, to) = if round % 2 == 0 { ("amount", "total") } else { ("total", "amount") };
        let change = UpdateModelRequest {
            id: "meters".into(),
            fields: vec![field(to, from), field(&format!("extra{round}"), "")],
            ..Default::default()
        };
        models_one.update_model(with_token(change, &access)).await.unwrap();
        // The other role, at once: the new name is a field, the old one is not.
        let made =
            entities_two.create_entity(with_token(record(json!({ to: 2, format!("extra{round}"): 3 })), &access));
        let made = made.await.unwrap_or_else(|e| panic!("round {round}: {e:?}")).into_inner();
        let made = serde_json::to_value(made.record.unwrap()).unwrap();
        assert_eq!(made[to], json!("2"), "{made}");
        let refused = entities_two.create_entity(with_token(record(json!({ from: 2 })), &access)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "round {round}: {refused:?}");
        let version = models_one.get_model(with_token(GetModelRequest { id: "meters".into() }, &access));
        assert_eq!(version.await.unwrap().into_inner().model.unwrap().version, 2 * round + 2);
        // Drop the extra field again so the next round starts from one field.
        let back = UpdateModelRequest {
            id: "meters".into(),
            fields: vec![field(to, "")],
            confirm_data_loss: true,
            ..Default::default()
        };
        models_one.update_model(with_token(back, &access)).await.unwrap();
        let listed = entities_two.list_entities(with_token(
            kiln_proto::v1::ListEntitiesRequest { model: "meters".into(), ..Default::default() },
            &access,
        ));
        let listed = listed.await.unwrap().into_inner();
        let first_record = serde_json::to_value(&listed.records[0]).unwrap();
        assert!(first_record.get(format!("extra{round}")).is_none(), "a dropped field is not shown: {first_record}");
    }
    for running in [first, second, app] {
        running.stop().await.unwrap();
    }
}

/// The model role has no sessions table: it asks the app role, which owns it. While the
/// app role is away, a session the model role has not seen is UNAVAILABLE (retry), never
/// taken as live and never an internal error.
#[tokio::test]
async fn a_model_role_asks_the_app_role_about_sessions() {
    use kiln_proto::v1::{LoginRequest, RegisterRequest, auth_service_client::AuthServiceClient};
    let database = TestDatabase::new(crate::harness::Backend::Postgres);
    let app = kiln::start(test_config(Role::App, &database)).await.unwrap();
    let model = start_model_role(&database, &app).await;
    let mut auth = AuthServiceClient::new(channel(app.grpc_addr.unwrap()).await);
    let register =
        RegisterRequest { email: "asked@example.com".into(), password: PASSWORD.into(), display_name: String::new() };
    let first = auth.register(register).await.unwrap().into_inner().tokens.unwrap().access_token;
    let login = LoginRequest { email: "asked@example.com".into(), password: PASSWORD.into() };
    let second = auth.login(login).await.unwrap().into_inner().tokens.unwrap().access_token;

    let mut direct = ModelServiceClient::new(channel(model.grpc_addr.unwrap()).await);
    assert!(direct.list_models(with_token(ListModelsRequest::default(), &first)).await.is_ok());
    app.stop().await.unwrap();
    let unseen = direct.list_models(with_token(ListModelsRequest::default(), &second)).await.unwrap_err();
    assert_eq!(unseen.code(), Code::Unavailable, "{unseen:?}");
    model.stop().await.unwrap();
}
