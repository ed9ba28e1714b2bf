//! Configuration: one typed `Config`, read once at start-up.
//!
//! Every setting has one entry in [`SETTINGS`]: its key in `kiln.toml`, its `KILN_*`
//! environment variable and its flag. A value given as a flag wins over the environment,
//! which wins over the file, which wins over the built-in default. A bad value stops
//! start-up with one line that names where it came from.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// One setting: where it can be given and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Key in `kiln.toml`, and the flag without its leading `--` (with `-` for `_`).
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    pub help: &'static str,
}

macro_rules! settings {
    ($($key:literal, $env:literal, $help:literal;)*) => {
        /// Every setting Kiln reads.
        pub const SETTINGS: &[Setting] = &[$(Setting { key: $key, env: $env, help: $help }),*];
    };
}

settings! {
    "database_url", "KILN_DATABASE_URL", "Database: sqlite://PATH (created if missing) or postgres://… (the database is created if it does not exist) [default: sqlite://./data/kiln.db]";
    "redis_url", "KILN_REDIS_URL", "Redis for the build queue and live build logs (the mesh); unset means a queue table in the database and logs in process";
    "redis_prefix", "KILN_REDIS_PREFIX", "Prefix of Kiln's Redis keys and channels, so installations can share one Redis [default: kiln]";
    "build_max_attempts", "KILN_BUILD_MAX_ATTEMPTS", "Attempts a build gets before it fails and its job is dead-lettered [default: 3]";
    "build_lease", "KILN_BUILD_LEASE", "How long a build worker's hold on its job lasts without renewal (it renews every third of it); a worker that died loses its build to another after this [default: 30s]";
    "build_workers", "KILN_BUILD_WORKERS", "Builds one process runs at once; 0 runs none (builds are queued for other processes' workers) [default: 2]";
    "build_network", "KILN_BUILD_NETWORK", "Docker network mode of image builds, e.g. host when a build downloads through the host's network [default: the engine's]";
    "amqp_url", "KILN_AMQP_URL", "RabbitMQ for the event bus (amqp://…); required by the model, app and build-worker roles of the mesh; unset in all-in-one means in-process events";
    "amqp_exchange", "KILN_AMQP_EXCHANGE", "The RabbitMQ topic exchange events go through (consumer groups' queues are named after it), so installations can share one RabbitMQ [default: kiln.events]";
    "webhook_allow_private", "KILN_WEBHOOK_ALLOW_PRIVATE", "Let workflows' HTTP requests and webhooks reach loopback, private and link-local addresses (true or false); refused by default, so a workspace cannot reach the platform's own network [default: false]";
    "webhook_retry_base", "KILN_WEBHOOK_RETRY_BASE", "Wait before a failed webhook delivery is tried again; each next wait is four times longer, at most 6h [default: 5s]";
    "webhook_retry_window", "KILN_WEBHOOK_RETRY_WINDOW", "How long after its event a webhook delivery is still tried; a subscription whose deliveries failed for this long is disabled [default: 1d]";
    "jwt_secret", "KILN_JWT_SECRET", "Secret that signs access tokens, at least 32 bytes; required outside all-in-one, where one is generated into the data dir";
    "jwt_previous_secrets", "KILN_JWT_PREVIOUS_SECRETS", "Comma-separated secrets of earlier keys, still accepted for verification while tokens they signed expire";
    "http_addr", "KILN_HTTP_ADDR", "Address of the gateway's listener (REST, gRPC, grpc-web), or of the ui role's [default: 0.0.0.0:4000; ui role 0.0.0.0:3000]";
    "ui_api_url", "KILN_UI_API_URL", "Where browsers reach the gateway from a UI the ui role serves (the gateway must allow the UI's origin in KILN_CORS_ORIGINS) [default: http://localhost:4000]";
    "grpc_addr", "KILN_GRPC_ADDR", "Address a model, app or build-worker role listens on [default: 0.0.0.0:50051 / 50052 / 50053 by role]";
    "model_svc_url", "KILN_MODEL_SVC_URL", "Where the gateway reaches model-svc in the mesh [default: http://127.0.0.1:50051]";
    "app_svc_url", "KILN_APP_SVC_URL", "Where the gateway and model-svc reach app-svc in the mesh (model-svc asks it whether sessions are live) [default: http://127.0.0.1:50052]";
    "build_worker_url", "KILN_BUILD_WORKER_URL", "Where the gateway reaches build-worker in the mesh [default: http://127.0.0.1:50053]";
    "data_dir", "KILN_DATA_DIR", "Directory for embedded data: SQLite files, the generated JWT secret [default: ./data]";
    "docker_host", "KILN_DOCKER_HOST", "Docker engine for image builds [default: the local socket]";
    "generated_dir", "KILN_GENERATED_DIR", "Where builds write rendered source trees [default: ./generated]";
    "otlp_endpoint", "KILN_OTLP_ENDPOINT", "OpenTelemetry collector traces are exported to, e.g. http://collector:4317 (gRPC) or http://collector:4318 (HTTP); unset means none are exported (logs still carry trace ids)";
    "otlp_protocol", "KILN_OTLP_PROTOCOL", "How traces reach the collector: grpc (OTLP/gRPC) or http (OTLP/HTTP protobuf, to the endpoint's /v1/traces) [default: grpc]";
    "cors_origins", "KILN_CORS_ORIGINS", "Comma-separated origins browsers may call the API from; empty allows none";
    "access_token_ttl", "KILN_ACCESS_TOKEN_TTL", "Lifetime of access tokens, e.g. 900s, 15m [default: 15m]";
    "refresh_token_ttl", "KILN_REFRESH_TOKEN_TTL", "Lifetime of refresh tokens, e.g. 30d [default: 30d]";
    "auth_rate_limit", "KILN_AUTH_RATE_LIMIT", "Requests a client address may make to /auth routes and AuthService (REST, gRPC, grpc-web together) per minute [default: 60]";
    "user_rate_limit", "KILN_USER_RATE_LIMIT", "Requests a signed-in user may make per minute, every protocol together; 0 means no limit [default: 6000]";
    "workspace_rate_limit", "KILN_WORKSPACE_RATE_LIMIT", "Requests all the users of a workspace may make per minute together; 0 means no limit [default: 30000]";
    "trusted_proxies", "KILN_TRUSTED_PROXIES", "Comma-separated addresses or networks (CIDR) of reverse proxies in front of the gateway; only their X-Forwarded-For names the client [default: none, the peer is the client]";
    "request_timeout", "KILN_REQUEST_TIMEOUT", "Longest the gateway waits for a response to begin, for REST, gRPC and grpc-web alike (a shorter grpc-timeout from the client wins); then 504 or DEADLINE_EXCEEDED [default: 30s]";
    "max_concurrent_requests", "KILN_MAX_CONCURRENT_REQUESTS", "Requests the gateway works on at once, every protocol together; beyond that it answers 503 or UNAVAILABLE at once [default: 1024]";
    "shutdown_timeout", "KILN_SHUTDOWN_TIMEOUT", "On SIGTERM, how long in-flight requests may take to finish before the process stops anyway [default: 30s]";
    "statement_timeout", "KILN_STATEMENT_TIMEOUT", "Longest a database statement of a request may run (on SQLite, a read), e.g. 5s; longer ones answer 504 [default: 5s]";
    "max_body_bytes", "KILN_MAX_BODY_BYTES", "Largest REST request body accepted, in bytes [default: 1048576]";
    "log", "KILN_LOG", "Log filter, e.g. info or kiln=debug,sqlx=warn [default: info]";
    "log_format", "KILN_LOG_FORMAT", "auto, json or pretty; auto means pretty in a terminal, JSON otherwise [default: auto]";
}

/// Where a raw value came from, so an error can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf, &'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(key) => write!(f, "--{}", key.replace('_', "-")),
            Source::Env(var) => f.write_str(var),
            Source::File(path, key) => write!(f, "{} `{key}`", path.display()),
        }
    }
}

/// A setting that could not be used; its `Display` is the one line start-up prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

impl ConfigError {
    fn new(source: impl fmt::Display, message: impl Into<String>) -> Self {
        Self { source_name: source.to_string(), message: message.into() }
    }
}

/// Raw values by setting key, each with its source, before parsing.
#[derive(Default, Clone)]
pub struct RawSettings {
    values: BTreeMap<&'static str, (String, Source)>,
}

/// How a setting's value may be shown: secrets never, URLs without their password.
fn shown(key: &str, value: &str) -> String {
    if key.contains("secret") {
        "***".into()
    } else if key.ends_with("_url") {
        crate::db::redact_url(value)
    } else {
        value.into()
    }
}

impl fmt::Debug for RawSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(key, (value, source))| (key, (shown(key, value), source))))
            .finish()
    }
}

impl RawSettings {
    /// Values from the environment; `env` is passed in so tests control it.
    pub fn from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let env: BTreeMap<&str, &str> = env.into_iter().collect();
        let mut raw = Self::default();
        for setting in SETTINGS {
            if let Some(value) = env.get(setting.env) {
                raw.values.insert(setting.key, (value.to_string(), Source::Env(setting.env)));
            }
        }
        raw
    }

    /// Values from a `kiln.toml`; unknown keys are refused.
    pub fn from_toml(path: PathBuf, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::new(path.display(), e.message().to_string()))?;
        let mut raw = Self::default();
        for (key, value) in table {
            let setting = SETTINGS
                .iter()
                .find(|s| s.key == key)
                .ok_or_else(|| ConfigError::new(path.display(), format!("unknown setting `{key}`")))?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(ConfigError::new(
                        Source::File(path.clone(), setting.key),
                        format!("expected a string, number or list, got {}", other.type_str()),
                    ));
                }
            };
            raw.values.insert(setting.key, (text, Source::File(path.clone(), setting.key)));
        }
        Ok(raw)
    }

    /// Where the value of setting `key` came from; None: its default.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).filter(|(value, _)| !value.trim().is_empty()).map(|(_, source)| source)
    }

    /// Sets a value given as a flag.
    pub fn set_flag(&mut self, key: &str, value: String) {
        if let Some(setting) = SETTINGS.iter().find(|s| s.key == key) {
            self.values.insert(setting.key, (value, Source::Flag(setting.key)));
        }
    }

    /// Sets a value as if it came from the environment.
    pub fn set_env(&mut self, key: &str, value: String) {
        if let Some(setting) = SETTINGS.iter().find(|s| s.key == key) {
            self.values.insert(setting.key, (value, Source::Env(setting.env)));
        }
    }

    /// Lays `over` on top of `self`: its values win.
    pub fn overlay(mut self, over: RawSettings) -> Self {
        self.values.extend(over.values);
        self
    }

    fn take(&mut self, key: &str) -> Option<(String, Source)> {
        self.values.remove(key).filter(|(v, _)| !v.trim().is_empty())
    }

    fn parse<T>(&mut self, key: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, source)) => parse(value.trim()).map_err(|m| ConfigError::new(source, m)),
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        self.take(key).map(|(v, _)| v.trim().to_string())
    }
}

/// Which services a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every service in one process, the gateway in front.
    AllInOne,
    Gateway,
    Model,
    App,
    BuildWorker,
    /// The web UI's files alone, on a port of their own; the browser calls the gateway.
    Ui,
}

impl Role {
    /// Every role, in the order `--role` lists them.
    pub const ALL: [Role; 6] = [Role::AllInOne, Role::Gateway, Role::Model, Role::App, Role::BuildWorker, Role::Ui];

    pub fn name(self) -> &'static str {
        match self {
            Role::AllInOne => "all-in-one",
            Role::Gateway => "gateway",
            Role::Model => "model",
            Role::App => "app",
            Role::BuildWorker => "build-worker",
            Role::Ui => "ui",
        }
    }

    fn default_http_port(self) -> u16 {
        if self == Role::Ui { 3000 } else { 4000 }
    }

    fn default_grpc_port(self) -> u16 {
        match self {
            Role::Model => 50051,
            Role::App => 50052,
            Role::BuildWorker => 50053,
            Role::AllInOne | Role::Gateway | Role::Ui => 4000,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, ConfigError> {
        Role::ALL.into_iter().find(|role| role.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
            ConfigError::new("--role", format!("`{name}` is not a role; one of: {}", known.join(", ")))
        })
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

/// How traces are sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    Http,
}

/// The whole configuration of one process. Its `Debug` shows no secret and no password.
#[derive(Clone)]
pub struct Config {
    pub role: Role,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub build_max_attempts: u32,
    pub build_workers: usize,
    pub build_lease: Duration,
    pub build_network: Option<String>,
    pub amqp_url: Option<String>,
    pub amqp_exchange: String,
    /// Outgoing requests of workflows and webhooks may reach private addresses.
    pub webhook_allow_private: bool,
    pub webhook_retry_base: Duration,
    pub webhook_retry_window: Duration,
    /// None in all-in-one until one is generated into the data dir.
    pub jwt_secret: Option<String>,
    pub jwt_previous_secrets: Vec<String>,
    pub http_addr: SocketAddr,
    /// Where browsers reach the gateway from a UI the ui role serves.
    pub ui_api_url: String,
    pub grpc_addr: SocketAddr,
    pub model_svc_url: String,
    pub app_svc_url: String,
    pub build_worker_url: String,
    pub data_dir: PathBuf,
    pub docker_host: Option<String>,
    pub generated_dir: PathBuf,
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: OtlpProtocol,
    pub cors_origins: Vec<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub auth_rate_limit_per_minute: u32,
    /// Requests per minute per user; 0 is no limit.
    pub user_rate_limit_per_minute: u32,
    /// Requests per minute per workspace; 0 is no limit.
    pub workspace_rate_limit_per_minute: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub shutdown_timeout: Duration,
    pub statement_timeout: Duration,
    pub max_body_bytes: usize,
    pub log: String,
    pub log_format: LogFormat,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entry(&"role", &self.role.name()).entries(self.effective()).finish()
    }
}

impl Config {
    /// Every setting's value as it may be shown (secrets masked, URLs without their
    /// password), in the order of [`SETTINGS`]: what `kiln config check` prints and
    /// what `Debug` shows.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let url = |u: &Option<String>| u.as_deref().map(crate::db::redact_url).unwrap_or_default();
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        let list = |items: &[String]| items.join(",");
        SETTINGS
            .iter()
            .map(|setting| {
                let value = match setting.key {
                    "database_url" => crate::db::redact_url(&self.database_url),
                    "redis_url" => url(&self.redis_url),
                    "redis_prefix" => self.redis_prefix.clone(),
                    "build_max_attempts" => self.build_max_attempts.to_string(),
                    "build_lease" => duration_text(self.build_lease),
                    "build_workers" => self.build_workers.to_string(),
                    "build_network" => text(&self.build_network),
                    "amqp_url" => url(&self.amqp_url),
                    "amqp_exchange" => self.amqp_exchange.clone(),
                    "webhook_allow_private" => self.webhook_allow_private.to_string(),
                    "webhook_retry_base" => duration_text(self.webhook_retry_base),
                    "webhook_retry_window" => duration_text(self.webhook_retry_window),
                    "jwt_secret" => self.jwt_secret.as_ref().map(|_| "***".to_string()).unwrap_or_default(),
                    "jwt_previous_secrets" => {
                        list(&self.jwt_previous_secrets.iter().map(|_| "***".into()).collect::<Vec<_>>())
                    }
                    "http_addr" => self.http_addr.to_string(),
                    "ui_api_url" => self.ui_api_url.clone(),
                    "grpc_addr" => self.grpc_addr.to_string(),
                    "model_svc_url" => self.model_svc_url.clone(),
                    "app_svc_url" => self.app_svc_url.clone(),
                    "build_worker_url" => self.build_worker_url.clone(),
                    "data_dir" => self.data_dir.display().to_string(),
                    "docker_host" => text(&self.docker_host),
                    "generated_dir" => self.generated_dir.display().to_string(),
                    "otlp_endpoint" => url(&self.otlp_endpoint),
                    "otlp_protocol" => format!("{:?}", self.otlp_protocol).to_lowercase(),
                    "cors_origins" => list(&self.cors_origins),
                    "access_token_ttl" => duration_text(self.access_token_ttl),
                    "refresh_token_ttl" => duration_text(self.refresh_token_ttl),
                    "auth_rate_limit" => self.auth_rate_limit_per_minute.to_string(),
                    "user_rate_limit" => self.user_rate_limit_per_minute.to_string(),
                    "workspace_rate_limit" => self.workspace_rate_limit_per_minute.to_string(),
                    "trusted_proxies" => {
                        list(&self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>())
                    }
                    "request_timeout" => duration_text(self.request_timeout),
                    "max_concurrent_requests" => self.max_concurrent_requests.to_string(),
                    "shutdown_timeout" => duration_text(self.shutdown_timeout),
                    "statement_timeout" => duration_text(self.statement_timeout),
                    "max_body_bytes" => self.max_body_bytes.to_string(),
                    "log" => self.log.clone(),
                    "log_format" => format!("{:?}", self.log_format).to_lowercase(),
                    other => unreachable!("setting `{other}` has no field in Config"),
                };
                (setting.key, value)
            })
            .collect()
    }

    /// What makes this configuration unsafe to serve a network with, one line each: a
    /// secret anyone can read or guess, a well-known password on a database reached
    /// over the network, an API every web page may call. The mesh roles refuse to
    /// start with any; `kiln config check` names them for every role.
    pub fn hazards(&self) -> Vec<ConfigError> {
        let mut found = Vec::new();
        let secrets = self.jwt_secret.iter().map(|s| ("KILN_JWT_SECRET", s));
        for (env, secret) in secrets.chain(self.jwt_previous_secrets.iter().map(|s| ("KILN_JWT_PREVIOUS_SECRETS", s))) {
            if let Some(why) = guessable_secret(secret) {
                found.push(ConfigError::new(env, why));
            }
        }
        if self.cors_origins.iter().any(|origin| origin == "*") {
            found.push(ConfigError::new(
                "KILN_CORS_ORIGINS",
                "`*` lets every web page call the API with its visitors' access tokens; list the origins the web UI is served from",
            ));
        }
        let urls = [
            ("KILN_DATABASE_URL", Some(&self.database_url)),
            ("KILN_REDIS_URL", self.redis_url.as_ref()),
            ("KILN_AMQP_URL", self.amqp_url.as_ref()),
        ];
        for (env, url) in urls {
            if let Some(why) = url.and_then(|url| default_password(url)) {
                found.push(ConfigError::new(env, why));
            }
        }
        found
    }
}

/// Secrets written in this repository's examples: anyone can read them.
const PUBLISHED_SECRETS: &[&str] = &["ci-only-secret-ci-only-secret-0123456789"];

/// Passwords an intruder tries first: the images' and installers' defaults.
const DEFAULT_PASSWORDS: &[&str] =
    &["postgres", "password", "guest", "admin", "root", "secret", "changeme", "change-me", "kiln", "redis", "rabbitmq"];

/// Fewest different characters a random secret of 32 bytes or more has by any chance
/// (a hex one has about 16); fewer means it was typed, not drawn.
const MIN_SECRET_VARIETY: usize = 10;

fn guessable_secret(secret: &str) -> Option<String> {
    const MAKE_ONE: &str = "make one with `openssl rand -hex 32`";
    if PUBLISHED_SECRETS.contains(&secret) {
        return Some(format!("is an example secret published with Kiln; {MAKE_ONE}"));
    }
    let variety = secret.chars().collect::<std::collections::BTreeSet<_>>().len();
    let characters = if variety == 1 { "character" } else { "characters" };
    (variety < MIN_SECRET_VARIETY)
        .then(|| format!("has only {variety} different {characters}, so it was typed rather than drawn; {MAKE_ONE}"))
}

/// Why a URL's password must not be used: it is a well-known default and the host is
/// not this machine (a local service with its default password is a developer's).
fn default_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let host = host.rsplit_once(':').map_or(host, |(host, _)| host).trim_matches(['[', ']']);
    let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!local && DEFAULT_PASSWORDS.contains(&password.to_ascii_lowercase().as_str()))
        .then(|| format!("the password of `{user}` at {host} is a well-known default; set a password of its own"))
}

/// A duration as the settings take it: `250ms`, `90s`, `15m`, `12h`, `30d`.
fn duration_text(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        _ if duration.subsec_nanos() != 0 || secs == 0 => format!("{}ms", duration.as_millis()),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3_600) => format!("{}h", secs / 3_600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// Shortest secret accepted for signing tokens (HS256 wants at least 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Config {
    /// Parses raw settings for a role.
    pub fn from_raw(role: Role, mut raw: RawSettings) -> Result<Self, ConfigError> {
        let database_url = raw.parse("database_url", "sqlite://./data/kiln.db".to_string(), |v| {
            if v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://") {
                Ok(v.to_string())
            } else {
                Err(format!("`{}` is neither sqlite://… nor postgres://…", crate::db::redact_url(v)))
            }
        })?;
        let jwt_secret = raw.parse("jwt_secret", None, |v| {
            if v.len() < MIN_JWT_SECRET_BYTES {
                Err(format!("must be at least {MIN_JWT_SECRET_BYTES} bytes long, got {}", v.len()))
            } else {
                Ok(Some(v.to_string()))
            }
        })?;
        if jwt_secret.is_none() && !matches!(role, Role::AllInOne | Role::Ui) {
            return Err(ConfigError::new(
                "KILN_JWT_SECRET",
                format!("required for the {} role (every role of the mesh must share it)", role.name()),
            ));
        }
        let jwt_previous_secrets = raw.parse("jwt_previous_secrets", Vec::new(), |v| {
            let list = split_list(v);
            match list.iter().find(|s| s.len() < MIN_JWT_SECRET_BYTES) {
                Some(_) => Err(format!("every secret must be at least {MIN_JWT_SECRET_BYTES} bytes long")),
                None => Ok(list),
            }
        })?;
        let http_addr =
            raw.parse("http_addr", SocketAddr::from(([0, 0, 0, 0], role.default_http_port())), parse_addr)?;
        let ui_api_url = raw.parse("ui_api_url", "http://localhost:4000".into(), parse_url)?;
        let grpc_addr =
            raw.parse("grpc_addr", SocketAddr::from(([0, 0, 0, 0], role.default_grpc_port())), parse_addr)?;
        let model_svc_url = raw.parse("model_svc_url", "http://127.0.0.1:50051".into(), parse_url)?;
        let app_svc_url = raw.parse("app_svc_url", "http://127.0.0.1:50052".into(), parse_url)?;
        let build_worker_url = raw.parse("build_worker_url", "http://127.0.0.1:50053".into(), parse_url)?;
        let data_dir = raw.parse("data_dir", PathBuf::from("./data"), |v| Ok(PathBuf::from(v)))?;
        let generated_dir = raw.parse("generated_dir", PathBuf::from("./generated"), |v| Ok(PathBuf::from(v)))?;
        let cors_origins = raw.parse("cors_origins", Vec::new(), |v| {
            let list = split_list(v);
            for origin in &list {
                if origin != "*" && http::HeaderValue::from_str(origin).is_err()
                    || !(origin == "*" || origin.starts_with("http://") || origin.starts_with("https://"))
                {
                    return Err(format!("`{origin}` is not an origin like https://app.example.com"));
                }
            }
            Ok(list)
        })?;
        // Bounded: a token outliving these is a risk, and a huge value would overflow the
        // time arithmetic of issuing one.
        let access_token_ttl = raw.parse(
            "access_token_ttl",
            Duration::from_secs(15 * 60),
            duration_at_most(Duration::from_secs(86_400), "1d"),
        )?;
        let refresh_token_ttl = raw.parse(
            "refresh_token_ttl",
            Duration::from_secs(30 * 86_400),
            duration_at_most(Duration::from_secs(365 * 86_400), "365d"),
        )?;
        let auth_rate_limit_per_minute = raw.parse("auth_rate_limit", 60, |v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{v}` is not a whole number above 0")),
        })?;
        let per_minute =
            |v: &str| v.parse::<u32>().map_err(|_| format!("`{v}` is not a whole number (0 for no limit)"));
        let user_rate_limit_per_minute = raw.parse("user_rate_limit", 6000, per_minute)?;
        let workspace_rate_limit_per_minute = raw.parse("workspace_rate_limit", 30000, per_minute)?;
        let trusted_proxies = raw.parse("trusted_proxies", Vec::new(), |v| {
            split_list(v)
                .iter()
                .map(|item| {
                    item.parse::<ipnet::IpNet>()
                        .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| format!("`{item}` is not an address or network like 10.0.0.0/8"))
                })
                .collect()
        })?;
        let request_timeout = raw.parse("request_timeout", Duration::from_secs(30), parse_duration)?;
        let max_concurrent_requests = raw.parse("max_concurrent_requests", 1024, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{v}` is not a whole number above 0")),
        })?;
        let shutdown_timeout = raw.parse("shutdown_timeout", Duration::from_secs(30), parse_duration)?;
        let statement_timeout = raw.parse("statement_timeout", Duration::from_secs(5), parse_duration)?;
        let build_lease = raw.parse("build_lease", Duration::from_secs(30), |v| match parse_duration(v)? {
            lease if lease >= Duration::from_secs(1) => Ok(lease),
            _ => Err(format!("`{v}` is shorter than 1s")),
        })?;
        let redis_prefix = raw.parse("redis_prefix", "kiln".to_string(), parse_name)?;
        let amqp_exchange = raw.parse("amqp_exchange", "kiln.events".to_string(), parse_name)?;
        let amqp_url = raw.parse("amqp_url", None, |v| match v.split_once("://") {
            Some(("amqp", rest)) if !rest.is_empty() => Ok(Some(v.to_string())),
            Some(("amqps", _)) => {
                Err("amqps:// needs TLS, which this build leaves out; use amqp:// inside the network".into())
            }
            _ => Err(format!("`{}` is not an amqp://… URL", crate::db::redact_url(v))),
        })?;
        if amqp_url.is_none() && matches!(role, Role::Model | Role::App | Role::BuildWorker) {
            return Err(ConfigError::new(
                "KILN_AMQP_URL",
                format!("required for the {} role (its events reach the other roles through RabbitMQ)", role.name()),
            ));
        }
        let webhook_allow_private = raw.parse("webhook_allow_private", false, |v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("`{v}` is not true or false")),
        })?;
        let webhook_retry_base =
            raw.parse("webhook_retry_base", Duration::from_secs(5), |v| match parse_duration(v)? {
                base if base >= Duration::from_millis(1) => Ok(base),
                _ => Err(format!("`{v}` is shorter than 1ms")),
            })?;
        let webhook_retry_window =
            raw.parse("webhook_retry_window", Duration::from_secs(86_400), |v| match parse_duration(v)? {
                window if window >= Duration::from_millis(1) && window <= Duration::from_secs(30 * 86_400) => {
                    Ok(window)
                }
                _ => Err(format!("`{v}` is not between 1ms and 30d")),
            })?;
        let build_max_attempts = raw.parse("build_max_attempts", 3, |v| match v.parse::<u32>() {
            Ok(n) if (1..=20).contains(&n) => Ok(n),
            _ => Err(format!("`{v}` is not a whole number from 1 to 20")),
        })?;
        let build_workers = raw.parse("build_workers", 2, |v| match v.parse::<usize>() {
            Ok(n) if n <= 64 => Ok(n),
            _ => Err(format!("`{v}` is not a whole number from 0 to 64")),
        })?;
        let max_body_bytes = raw.parse("max_body_bytes", 1 << 20, |v| match v.parse::<usize>() {
            Ok(n) if n >= 1024 => Ok(n),
            _ => Err(format!("`{v}` is not a number of bytes of at least 1024")),
        })?;
        let otlp_protocol = raw.parse("otlp_protocol", OtlpProtocol::Grpc, |v| match v {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http" => Ok(OtlpProtocol::Http),
            _ => Err(format!("`{v}` is not one of grpc, http")),
        })?;
        let otlp_endpoint = raw.parse("otlp_endpoint", None, |v| {
            if v.starts_with("http://") || v.starts_with("https://") {
                Ok(Some(v.to_string()))
            } else {
                Err(format!("`{}` is not an http:// or https:// URL", crate::db::redact_url(v)))
            }
        })?;
        let log_format = raw.parse("log_format", LogFormat::Auto, |v| match v {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err(format!("`{v}` is not one of auto, json, pretty")),
        })?;
        let log = raw.parse("log", "info".to_string(), |v| {
            tracing_subscriber::EnvFilter::try_new(v).map(|_| v.to_string()).map_err(|e| e.to_string())
        })?;
        Ok(Config {
            role,
            database_url,
            redis_url: raw.string("redis_url"),
            redis_prefix,
            build_max_attempts,
            build_workers,
            build_lease,
            build_network: raw.string("build_network"),
            amqp_url,
            amqp_exchange,
            webhook_allow_private,
            webhook_retry_base,
            webhook_retry_window,
            jwt_secret,
            jwt_previous_secrets,
            http_addr,
            ui_api_url,
            grpc_addr,
            model_svc_url,
            app_svc_url,
            build_worker_url,
            data_dir,
            docker_host: raw.string("docker_host"),
            generated_dir,
            otlp_endpoint,
            otlp_protocol,
            cors_origins,
            access_token_ttl,
            refresh_token_ttl,
            auth_rate_limit_per_minute,
            user_rate_limit_per_minute,
            workspace_rate_limit_per_minute,
            trusted_proxies,
            request_timeout,
            max_concurrent_requests,
            shutdown_timeout,
            statement_timeout,
            max_body_bytes,
            log,
            log_format,
        })
    }

    /// The defaults for a role, as if nothing were set.
    pub fn defaults(role: Role) -> Result<Self, ConfigError> {
        Self::from_raw(role, RawSettings::default())
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| format!("`{v}` is not an address like 0.0.0.0:4000"))
}

/// A name of letters, digits, `_`, `-` and `.` (a prefix of keys, an exchange).
fn parse_name(v: &str) -> Result<String, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        Ok(v.to_string())
    } else {
        Err(format!("`{v}` is not a name of letters, digits, `_`, `-` and `.`"))
    }
}

fn parse_url(v: &str) -> Result<String, String> {
    match v.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => {
            Ok(v.trim_end_matches('/').to_string())
        }
        _ => Err(format!("`{v}` is not a URL like http://model-svc:50051")),
    }
}

/// Parses `250ms`, `90`, `90s`, `15m`, `12h` or `30d`.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let err = || format!("`{v}` is not a duration like 900s, 15m, 12h or 30d");
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().map_err(|_| err())?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
        "h" => Duration::from_secs(n.checked_mul(3_600).ok_or_else(err)?),
        "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(err)?),
        _ => return Err(err()),
    };
    if duration.is_zero() {
        return Err(err());
    }
    Ok(duration)
}

/// A duration of at most `max` (named as `max_text` in the error).
fn duration_at_most(max: Duration, max_text: &'static str) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| match parse_duration(v)? {
        d if d > max => Err(format!("`{v}` is longer than the {max_text} allowed")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_by_name_and_an_unknown_one_is_an_error() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
        }
        let err = "all_in_one".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("`all_in_one` is not a role") && err.contains("build-worker"), "{err}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::defaults(Role::AllInOne).unwrap();
        assert_eq!(config.database_url, "sqlite://./data/kiln.db");
        assert_eq!(config.http_addr.port(), 4000);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert!(config.jwt_secret.is_none());
        assert!(config.redis_url.is_none());
    }

    #[test]
    fn flags_win_over_env_which_wins_over_file() {
        let file = RawSettings::from_toml(
            "kiln.toml".into(),
            "http_addr = \"127.0.0.1:1\"\nlog = \"debug\"\nauth_rate_limit = 5",
        )
        .unwrap();
        let env = RawSettings::from_env([("KILN_HTTP_ADDR", "127.0.0.1:2"), ("KILN_LOG", "warn")]);
        let mut flags = RawSettings::default();
        flags.set_flag("http_addr", "127.0.0.1:3".into());
        let config = Config::from_raw(Role::AllInOne, file.overlay(env).overlay(flags)).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:3".parse().unwrap());
        assert_eq!(config.log, "warn");
        assert_eq!(config.auth_rate_limit_per_minute, 5);
    }

    #[test]
    fn a_bad_value_names_its_source_in_one_line() {
        let env = RawSettings::from_env([("KILN_HTTP_ADDR", "not-an-address")]);
        let err = Config::from_raw(Role::AllInOne, env).unwrap_err().to_string();
        assert_eq!(err, "configuration error: KILN_HTTP_ADDR: `not-an-address` is not an address like 0.0.0.0:4000");
        assert!(!err.contains('\n'));

        let mut flags = RawSettings::default();
        flags.set_flag("access_token_ttl", "soon".into());
        let err = Config::from_raw(Role::AllInOne, flags).unwrap_err().to_string();
        assert!(err.starts_with("configuration error: --access-token-ttl: "), "{err}");

        let err = RawSettings::from_toml("kiln.toml".into(), "colour = \"red\"").unwrap_err().to_string();
        assert_eq!(err, "configuration error: kiln.toml: unknown setting `colour`");
    }

    #[test]
    fn mesh_roles_need_a_shared_secret() {
        let err = Config::defaults(Role::Gateway).unwrap_err();
        assert_eq!(err.source_name, "KILN_JWT_SECRET");
        let short = RawSettings::from_env([("KILN_JWT_SECRET", "short")]);
        let err = Config::from_raw(Role::Model, short).unwrap_err();
        assert!(err.message.contains("at least 32 bytes"), "{err}");
        let secret = ("KILN_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        let ok = RawSettings::from_env([secret, ("KILN_AMQP_URL", "amqp://kiln:pw@rabbitmq:5672/%2f")]);
        let config = Config::from_raw(Role::Model, ok).unwrap();
        assert_eq!(config.grpc_addr.port(), 50051);
    }

    #[test]
    fn the_roles_that_make_events_need_rabbitmq() {
        let secret = ("KILN_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        for role in [Role::Model, Role::App, Role::BuildWorker] {
            let err = Config::from_raw(role, RawSettings::from_env([secret])).unwrap_err();
            assert_eq!(err.source_name, "KILN_AMQP_URL", "{role:?}");
            assert!(err.message.contains("RabbitMQ"), "{err}");
        }
        for role in [Role::AllInOne, Role::Gateway] {
            let config = Config::from_raw(role, RawSettings::from_env([secret])).unwrap();
            assert_eq!((config.amqp_url, config.amqp_exchange.as_str()), (None, "kiln.events"));
        }
        let bad =
            [("amqps://h/%2f", "needs TLS"), ("http://rabbitmq", "not an amqp://"), ("amqp://", "not an amqp://")];
        for (url, why) in bad {
            let err = Config::from_raw(Role::App, RawSettings::from_env([secret, ("KILN_AMQP_URL", url)])).unwrap_err();
            assert!(err.to_string().contains(why), "{url}: {err}");
        }
        let odd = RawSettings::from_env([secret, ("KILN_AMQP_EXCHANGE", "kiln events")]);
        assert_eq!(Config::from_raw(Role::AllInOne, odd).unwrap_err().source_name, "KILN_AMQP_EXCHANGE");
    }

    #[test]
    fn secrets_and_passwords_never_show_in_debug_output() {
        let env = RawSettings::from_env([
            ("KILN_JWT_SECRET", "super-secret-signing-key-0123456789abcdef"),
            ("KILN_JWT_PREVIOUS_SECRETS", "older-secret-signing-key-0123456789abcdef"),
            ("KILN_DATABASE_URL", "postgres://kiln:db-password@db/kiln"),
            ("KILN_REDIS_URL", "redis://:redis-password@redis:6379"),
        ]);
        let raw = format!("{env:?}");
        let config = format!("{:?}", Config::from_raw(Role::Gateway, env).unwrap());
        for shown in [raw, config] {
            for secret in ["super-secret", "older-secret", "db-password", "redis-password"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("postgres://kiln:***@db/kiln"), "{shown}");
        }
    }

    #[test]
    fn the_effective_configuration_shows_every_setting_in_a_form_it_takes_back() {
        let env = RawSettings::from_env([
            ("KILN_BUILD_LEASE", "90s"),
            ("KILN_WEBHOOK_RETRY_BASE", "250ms"),
            ("KILN_CORS_ORIGINS", "https://a.example,http://localhost:3000"),
            ("KILN_TRUSTED_PROXIES", "10.0.0.0/8"),
            ("KILN_LOG_FORMAT", "json"),
        ]);
        let config = Config::from_raw(Role::Gateway, env.overlay(secret_env())).unwrap();
        let shown = config.effective();
        let keys: Vec<&str> = shown.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, SETTINGS.iter().map(|s| s.key).collect::<Vec<_>>());
        let mut again = secret_env();
        for (key, value) in shown.iter().filter(|(key, _)| !key.contains("secret")) {
            again.set_env(key, value.clone());
        }
        let reread = Config::from_raw(Role::Gateway, again).unwrap();
        assert_eq!(reread.effective(), shown);
        let value = |key: &str| shown.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(value("build_lease"), Some("90s"));
        assert_eq!(value("webhook_retry_base"), Some("250ms"));
        assert_eq!(value("refresh_token_ttl"), Some("30d"));
        assert_eq!(value("jwt_secret"), Some("***"));
    }

    fn secret_env() -> RawSettings {
        RawSettings::from_env([("KILN_JWT_SECRET", "3f9c0d7a51e24b8896a1c5e07d4f2b6a")])
    }

    #[test]
    fn hazards_name_guessable_secrets_open_cors_and_default_passwords_on_the_network() {
        let safe = Config::from_raw(
            Role::Gateway,
            RawSettings::from_env([
                ("KILN_JWT_SECRET", "3f9c0d7a51e24b8896a1c5e07d4f2b6a"),
                ("KILN_DATABASE_URL", "postgres://kiln:Vb8sK2pQ@db.internal/kiln"),
                // A developer's local services with their defaults are theirs.
                ("KILN_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                ("KILN_REDIS_URL", "redis://:redis@[::1]:6379"),
                ("KILN_CORS_ORIGINS", "https://kiln.example"),
            ]),
        )
        .unwrap();
        assert_eq!(safe.hazards(), []);

        let unsafe_ = Config::from_raw(
            Role::Gateway,
            RawSettings::from_env([
                ("KILN_JWT_SECRET", "ci-only-secret-ci-only-secret-0123456789"),
                ("KILN_JWT_PREVIOUS_SECRETS", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                ("KILN_DATABASE_URL", "postgres://postgres:Postgres@db.internal:5432/kiln"),
                ("KILN_AMQP_URL", "amqp://guest:guest@rabbitmq:5672/%2f"),
                ("KILN_CORS_ORIGINS", "*"),
            ]),
        )
        .unwrap();
        let lines: Vec<String> = unsafe_.hazards().iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        let starts = [
            "configuration error: KILN_JWT_SECRET: is an example secret published with Kiln",
            "configuration error: KILN_JWT_PREVIOUS_SECRETS: has only 1 different character,",
            "configuration error: KILN_CORS_ORIGINS: `*` lets every web page call the API",
            "configuration error: KILN_DATABASE_URL: the password of `postgres` at db.internal is a well-known default",
            "configuration error: KILN_AMQP_URL: the password of `guest` at rabbitmq is a well-known default",
        ];
        for (line, start) in lines.iter().zip(starts) {
            assert!(line.starts_with(start), "{line}");
            assert!(!line.contains("Postgres@") && !line.contains("guest@"), "no password is shown: {line}");
        }
    }

    #[test]
    fn durations_and_lists_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("0").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        let env = RawSettings::from_env([("KILN_REFRESH_TOKEN_TTL", "213503982334601d")]);
        let err = Config::from_raw(Role::AllInOne, env).unwrap_err().to_string();
        assert!(err.contains("longer than the 365d allowed"), "{err}");
        let env = RawSettings::from_env([("KILN_ACCESS_TOKEN_TTL", "2d")]);
        assert!(Config::from_raw(Role::AllInOne, env).is_err());
        let env = RawSettings::from_env([("KILN_DATABASE_URL", "mysql://kiln:s3cret@db/kiln")]);
        let err = Config::from_raw(Role::AllInOne, env).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(parse_duration("5w").is_err());
        assert_eq!(split_list(" a, ,b "), vec!["a".to_string(), "b".to_string()]);
        let env = RawSettings::from_env([("KILN_CORS_ORIGINS", "https://a.example, http://localhost:3000")]);
        let config = Config::from_raw(Role::AllInOne, env).unwrap();
        assert_eq!(config.cors_origins.len(), 2);
        let env = RawSettings::from_env([("KILN_CORS_ORIGINS", "javascript:alert(1)")]);
        assert!(Config::from_raw(Role::AllInOne, env).is_err());
        let env = RawSettings::from_env([("KILN_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]);
        assert_eq!(Config::from_raw(Role::AllInOne, env).unwrap().trusted_proxies.len(), 3);
        let env = RawSettings::from_env([("KILN_TRUSTED_PROXIES", "10.0.0.0/33")]);
        assert!(Config::from_raw(Role::AllInOne, env).is_err());
    }
}
