//! Starting Kiln for a test: [`spawn_app`] on port 0 with a fresh database, and helpers
//! that speak REST, gRPC and grpc-web to it.

use std::{net::SocketAddr, path::PathBuf, str::FromStr};

use kiln::Running;
use kiln_common::{Config, Db, config::Role};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

pub const JWT_SECRET: &str = "test-7f3a9c1e5b8d0246-secret-ace13579bdf0";
pub const PASSWORD: &str = "correct horse 9";

/// Which database a test runs against, and how Kiln is laid out over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// All-in-one on an SQLite file.
    Sqlite,
    /// All-in-one on PostgreSQL.
    Postgres,
    /// The mesh on PostgreSQL: gateway, model, app and build-worker roles as separate
    /// servers on loopback ports, each service's role connecting as a database user that
    /// reaches only the tables its service owns.
    Mesh,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("KILN_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test; dropped (PostgreSQL) or deleted (SQLite) on drop.
pub struct TestDatabase {
    pub url: String,
    pub dir: PathBuf,
    postgres_name: Option<String>,
    /// Database users made for this database ([`TestDatabase::service_users`]), dropped with it.
    postgres_users: Vec<String>,
}

/// A database user per service, each able to reach only what its service owns.
pub struct ServiceUsers {
    pub model_url: String,
    pub app_url: String,
    pub build_url: String,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("kiln-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.join("kiln.db").display());
                TestDatabase { url, dir, postgres_name: None, postgres_users: Vec::new() }
            }
            Backend::Postgres | Backend::Mesh => {
                let name = format!("kiln_test_{id}");
                let server = PgConnectOptions::from_str(&postgres_server_url()).expect("KILN_TEST_POSTGRES_URL");
                let url =
                    format!("postgres://{}@{}:{}/{name}", server.get_username(), server.get_host(), server.get_port());
                TestDatabase { url, dir, postgres_name: Some(name), postgres_users: Vec::new() }
            }
        }
    }

    /// Makes the database (PostgreSQL) and a login per service that can create tables
    /// (each service migrates its own, so it owns them) and nothing else: no access to
    /// another service's tables.
    pub async fn service_users(&mut self) -> ServiceUsers {
        let name = self.postgres_name.clone().expect("service users need PostgreSQL");
        let server = sqlx::PgPool::connect(&postgres_server_url()).await.unwrap();
        let execute = async |pool: &sqlx::PgPool, sql: String| {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        };
        execute(&server, format!("CREATE DATABASE \"{name}\"")).await;
        let (model, app, build) = (format!("{name}_model"), format!("{name}_app"), format!("{name}_build"));
        for user in [&model, &app, &build] {
            execute(&server, format!("CREATE ROLE \"{user}\" LOGIN")).await;
            self.postgres_users.push(user.clone());
        }
        // model-svc makes a schema per workspace for its tables.
        execute(&server, format!("GRANT CREATE ON DATABASE \"{name}\" TO \"{model}\"")).await;
        server.close().await;
        let database = sqlx::PgPool::connect(&self.url).await.unwrap();
        execute(&database, format!("GRANT USAGE, CREATE ON SCHEMA public TO \"{model}\", \"{app}\", \"{build}\""))
            .await;
        database.close().await;
        let url_of = |user: &str| self.url.replacen("postgres://postgres@", &format!("postgres://{user}@"), 1);
        ServiceUsers { model_url: url_of(&model), app_url: url_of(&app), build_url: url_of(&build) }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(name) = self.postgres_name.take() {
            let users = std::mem::take(&mut self.postgres_users);
            // Drop runs outside any runtime guarantee: use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&postgres_server_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        for user in users {
                            let sql = format!("DROP ROLE IF EXISTS \"{user}\"");
                            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        }
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A configuration for tests: loopback port 0, the given database, a fixed secret.
/// A model role of the mesh, asking `app` (an app role) whether sessions are live.
pub async fn start_model_role(database: &TestDatabase, app: &Running) -> Running {
    let mut config = test_config(Role::Model, database);
    config.app_svc_url = format!("http://{}", app.grpc_addr.expect("an app role serves gRPC"));
    kiln::start(config).await.unwrap()
}

pub fn test_config(role: Role, db: &TestDatabase) -> Config {
    let mut config = Config::defaults(Role::AllInOne).expect("defaults");
    config.role = role;
    config.http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.grpc_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database_url = db.url.clone();
    config.data_dir = db.dir.clone();
    config.jwt_secret = Some(JWT_SECRET.into());
    config.auth_rate_limit_per_minute = 100_000;
    config.generated_dir = db.dir.join("generated");
    // No Docker engine unless a test asks for one: image steps are skipped, saying why.
    config.docker_host = Some(format!("unix://{}", db.dir.join("no-docker.sock").display()));
    // The mesh's event bus is the local RabbitMQ, each test on an exchange of its own;
    // all-in-one keeps its events in process, as it does by default.
    config.amqp_url = (role != Role::AllInOne).then(amqp_url);
    config.amqp_exchange = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    config
}

/// The local RabbitMQ the tests share.
pub fn amqp_url() -> String {
    std::env::var("KILN_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Removes a test's exchange and its consumer groups' queues from RabbitMQ (those that
/// are there: each on a channel of its own, as RabbitMQ closes a channel that names a
/// missing one).
pub async fn remove_exchange(exchange: &str, groups: &[&str]) {
    let connection = lapin::Connection::connect(&amqp_url(), Default::default()).await.unwrap();
    for group in groups {
        let channel = connection.create_channel().await.unwrap();
        let _ = channel.queue_delete(format!("{exchange}.{group}").into(), Default::default()).await;
    }
    let channel = connection.create_channel().await.unwrap();
    let _ = channel.exchange_delete(exchange.into(), Default::default()).await;
}

/// The consumer groups Kiln's own roles keep on the bus.
pub const KILN_GROUPS: &[&str] = &[kiln_app_svc::workflows::triggers::EVENT_GROUP, kiln_app_svc::webhooks::EVENT_GROUP];

/// The local Redis the tests share; each test's keys under a prefix of its own.
pub fn redis_url() -> String {
    std::env::var("KILN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// An address on loopback no listener has now: for roles that must know each other's
/// addresses before they start. Taken below the kernel's ephemeral range (where port-0
/// listeners and outgoing connections get theirs, so none of those can take it before
/// the role binds it), each once per test process.
pub fn free_address() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 20_000 + (std::process::id() % 5_000) as u16, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "no free port left below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return SocketAddr::from(([127, 0, 0, 1], port));
        }
    }
}

/// A running Kiln: all-in-one, or the roles of the mesh (the gateway last).
pub struct TestApp {
    /// The gateway's address.
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The database, as its owner (every service's tables).
    pub db: Db,
    running: Vec<Running>,
    /// How an all-in-one Kiln was started, to start it again.
    config: Option<Config>,
    /// The RabbitMQ exchange of the test's own, removed with Kiln's groups' queues at stop.
    exchange: Option<String>,
    // Dropped last: the database outlives the servers that use it.
    _database: TestDatabase,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Kiln on `backend`, its configuration (every role's) changed by `adjust` first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut database = TestDatabase::new(backend);
    let mut config = test_config(Role::AllInOne, &database);
    adjust(&mut config);
    let restartable = (backend != Backend::Mesh).then(|| config.clone());
    let exchange = (backend == Backend::Mesh || config.amqp_url.is_some()).then(|| config.amqp_exchange.clone());
    let running = match backend {
        Backend::Sqlite | Backend::Postgres => vec![kiln::start(config).await.expect("kiln starts")],
        Backend::Mesh => {
            let MeshRoles { app, model, build, gateway, .. } = start_mesh(&mut database, config).await;
            vec![app, model, build, gateway]
        }
    };
    let addr = running.last().and_then(|gateway| gateway.http_addr).expect("gateway address");
    let db = Db::connect(&database.url, Default::default()).await.expect("test connects to the app's database");
    TestApp { addr, http: reqwest::Client::new(), db, running, config: restartable, exchange, _database: database }
}

/// The roles of a mesh, with the database users its services connect as.
pub struct MeshRoles {
    pub users: ServiceUsers,
    pub app: Running,
    pub model: Running,
    pub build: Running,
    pub gateway: Running,
}

/// The mesh's roles on `database`, each from `config` with its role and, for a service,
/// the database user of its own.
pub async fn start_mesh(database: &mut TestDatabase, config: Config) -> MeshRoles {
    let users = database.service_users().await;
    // app-svc calls model-svc and build-worker, which call it back: each is told the
    // others' addresses before any starts.
    let (app_addr, model_addr, build_addr) = (free_address(), free_address(), free_address());
    let config = Config {
        app_svc_url: format!("http://{app_addr}"),
        model_svc_url: format!("http://{model_addr}"),
        build_worker_url: format!("http://{build_addr}"),
        redis_url: Some(redis_url()),
        redis_prefix: format!("kiln-test-{}", uuid::Uuid::new_v4().simple()),
        amqp_url: Some(amqp_url()),
        ..config
    };
    let role = |role: Role, database_url: &str, grpc_addr: SocketAddr| Config {
        role,
        database_url: database_url.to_string(),
        grpc_addr,
        ..config.clone()
    };
    let app = kiln::start(role(Role::App, &users.app_url, app_addr)).await.expect("the app role starts");
    let model = kiln::start(role(Role::Model, &users.model_url, model_addr)).await.expect("the model role starts");
    let build =
        kiln::start(role(Role::BuildWorker, &users.build_url, build_addr)).await.expect("the build role starts");
    let gateway = kiln::start(role(Role::Gateway, "", config.grpc_addr)).await.expect("the gateway starts");
    MeshRoles { users, app, model, build, gateway }
}

/// A call with a bearer token and an optional JSON body, read as (status, JSON).
pub async fn send_json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    access: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).bearer_auth(access);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

impl TestApp {
    /// A Kiln of already started `running` roles (the gateway last) on `database`.
    pub async fn of(running: Vec<Running>, database: TestDatabase) -> TestApp {
        let addr = running.last().and_then(|gateway| gateway.http_addr).expect("gateway address");
        let db = Db::connect(&database.url, Default::default()).await.expect("test connects to the app's database");
        TestApp { addr, http: reqwest::Client::new(), db, running, config: None, exchange: None, _database: database }
    }

    /// Stops an all-in-one Kiln and starts it again on the same database and data, its
    /// configuration changed by `adjust` first; it answers on a new port.
    pub async fn restart(&mut self, adjust: impl FnOnce(&mut Config)) {
        while let Some(running) = self.running.pop() {
            running.stop().await.expect("graceful stop");
        }
        let config = self.config.as_mut().expect("an all-in-one Kiln restarts");
        adjust(config);
        let running = kiln::start(config.clone()).await.expect("kiln starts again");
        self.addr = running.http_addr.expect("gateway address");
        self.running.push(running);
    }

    /// A second all-in-one Kiln on the same database and settings (another process of
    /// the same installation); it stops with this one.
    pub async fn start_twin(&mut self) {
        let config = self.config.clone().expect("an all-in-one Kiln has a twin");
        let twin = kiln::start(config).await.expect("the twin starts");
        self.add_role(twin);
    }

    /// A role started later; it stops after the gateway, with the others.
    pub fn add_role(&mut self, role: Running) {
        self.running.insert(0, role);
    }

    /// [`send_json`] to `path` on this app.
    pub async fn send(&self, method: reqwest::Method, path: &str, access: &str, body: Option<Value>) -> (u16, Value) {
        send_json(&self.http, method, self.url(path), access, body).await
    }

    /// The database URL the app was started on.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    /// Every item of a paged list at `path` (its `key` array), page after page.
    pub async fn all_pages(&self, path: &str, key: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let (status, page) =
                self.get_with_token(&format!("{path}{separator}page_size=100&page_token={page_token}"), token).await;
            assert_eq!(status, 200, "{path}: {page}");
            let keys: Vec<&String> = page.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            items.extend(
                page[key].as_array().unwrap_or_else(|| panic!("{path}: no `{key}`, only {keys:?}")).iter().cloned(),
            );
            match page["next_page_token"].as_str() {
                Some(next) if !next.is_empty() => page_token = next.to_string(),
                _ => return items,
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).json(&body).send().await.expect("request");
        read(response).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request");
        read(response).await
    }

    /// Registers a user; returns the whole 201 body.
    pub async fn register(&self, email: &str) -> Value {
        let (status, body) = self.post("/api/v1/auth/register", json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Posts with an access token.
    pub async fn post_with_token(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.expect("request");
        read(response).await
    }

    /// `(name, type, not null)` of each column of a workspace's table, read straight from
    /// the database: the PostgreSQL schema `ws_<id>` or the workspace's SQLite file.
    pub async fn columns(&self, workspace_id: uuid::Uuid, table: &str) -> Vec<(String, String, bool)> {
        match &self.db {
            Db::Postgres(pool) => sqlx::query_as::<_, (String, String, String)>(
                "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            )
            .bind(format!("ws_{}", workspace_id.simple()))
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(name, ty, nullable)| (name, ty, nullable == "NO"))
            .collect(),
            Db::Sqlite(_) => {
                let file = self._database.dir.join("workspaces").join(format!("{}.db", workspace_id.hyphenated()));
                if !file.exists() {
                    return Vec::new();
                }
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
                let sql = format!("SELECT name, type, \"notnull\" FROM pragma_table_info('{table}')");
                let rows = sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                rows.into_iter().map(|(name, ty, notnull)| (name, ty, notnull == 1)).collect()
            }
        }
    }

    /// Where SQLite workspace files go.
    pub fn columns_dir(&self) -> std::path::PathBuf {
        self._database.dir.join("workspaces")
    }

    pub async fn stop(mut self) {
        // The gateway first, then the roles behind it.
        while let Some(running) = self.running.pop() {
            running.stop().await.expect("graceful stop");
        }
        self.db.close().await;
        if let Some(exchange) = self.exchange.take() {
            remove_exchange(&exchange, KILN_GROUPS).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for running in self.running.drain(..) {
            running.stop_token().cancel();
        }
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// Asserts the documented error shape and returns the body's `error`.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, expected_code: &str) -> Value {
    assert_eq!(status, expected_status, "{body}");
    let error = body.get("error").unwrap_or_else(|| panic!("no error object in {body}")).clone();
    assert_eq!(error["code"], expected_code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error.get("details").is_some(), "{body}");
    error
}

pub fn token(body: &Value, which: &str) -> String {
    body["tokens"][which].as_str().unwrap_or_else(|| panic!("no {which} in {body}")).to_string()
}

/// Runs each named `async fn(Backend)` test on SQLite, on PostgreSQL and on the mesh.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $crate::on_sqlite_and_postgres!($($name),*);
        mod mesh {
            $(#[tokio::test] async fn $name() { super::$name($crate::harness::Backend::Mesh).await })*
        }
    };
}

/// Runs each named `async fn(Backend)` test on the two stores of one process: SQLite and
/// PostgreSQL (what holds for the mesh's database is what holds for PostgreSQL's).
#[macro_export]
macro_rules! on_sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::harness::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::harness::Backend::Postgres).await })*
        }
    };
}

/// A TCP proxy in front of the test PostgreSQL server that a test can cut, as if the
/// database went away (established connections are killed, new ones closed at once),
/// stall (established connections are killed, new ones hang unanswered) and restore.
pub struct DatabaseProxy {
    pub port: u16,
    state: std::sync::Arc<tokio::sync::watch::Sender<ProxyState>>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyState {
    Up,
    Down,
    Stalled,
}

impl DatabaseProxy {
    pub async fn start() -> Self {
        let server = PgConnectOptions::from_str(&postgres_server_url()).expect("KILN_TEST_POSTGRES_URL");
        let upstream = format!("{}:{}", server.get_host(), server.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let (state, _) = tokio::sync::watch::channel(ProxyState::Up);
        let state = std::sync::Arc::new(state);
        let shared = state.clone();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let holding = held.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watching = shared.subscribe();
                let upstream = upstream.clone();
                let holding = holding.clone();
                tokio::spawn(async move {
                    let now = *watching.borrow_and_update();
                    match now {
                        ProxyState::Down => return, // dropped: the client sees its connection closed
                        // Held unanswered until the state changes, then dropped.
                        ProxyState::Stalled => {
                            holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = watching.changed().await;
                            holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            return;
                        }
                        ProxyState::Up => {}
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watching.wait_for(|state| *state != ProxyState::Up) => {}
                    }
                });
            }
        });
        DatabaseProxy { port, state, held }
    }

    /// Waits until a connection is held unanswered by the stall: a request is waiting on
    /// the database.
    pub async fn until_held(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "nothing reached the stalled database");
            tokio::task::yield_now().await;
        }
    }

    /// `url` (a test database's) through the proxy.
    pub fn via(&self, url: &str) -> String {
        let direct = PgConnectOptions::from_str(url).expect("test database URL");
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            direct.get_username(),
            self.port,
            direct.get_database().expect("a database name")
        )
    }

    pub fn cut(&self) {
        self.state.send_replace(ProxyState::Down);
    }

    pub fn stall(&self) {
        self.state.send_replace(ProxyState::Stalled);
    }

    pub fn restore(&self) {
        self.state.send_replace(ProxyState::Up);
    }
}
