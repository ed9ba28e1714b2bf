//! `kiln`: parses the command line, loads the configuration once, starts the role and
//! stops it gracefully on SIGINT or SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use clap::{Arg, ArgAction, ArgMatches, Command, parser::ValueSource};
use kiln_common::{
    Config,
    config::{RawSettings, Role, SETTINGS},
    telemetry,
};

/// The command line. Every setting is a global flag, so `kiln --help` and
/// `kiln serve --help` both list them, each with its environment variable.
fn cli() -> Command {
    let mut kiln = Command::new("kiln")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Kiln: models become tables, APIs and running applications")
        .after_help(
            "Settings are read from flags, then KILN_* environment variables, then the configuration \
             file, then defaults; the first that sets a value wins. `kiln` alone is `kiln serve`.",
        )
        .subcommand(
            Command::new("serve").about("Run Kiln: every service in one process (default), or one role of the mesh"),
        )
        .subcommand(
            Command::new("config").about("Look at the configuration").subcommand_required(true).subcommand(
                Command::new("check").about(
                    "Print the effective configuration of the role (secrets masked) and where each value came from, \
                     then what is wrong or unsafe; exit 0 when nothing is, 1 when something is unsafe, 2 when a value \
                     cannot be used",
                ),
            ),
        )
        .subcommand(Command::new("migrate").about(
            "Bring the database tables the role owns up to date, then exit (every role migrates at start too; \
             a deployment runs this once before rolling out): all-in-one, model, app or build-worker",
        ))
        .subcommand(
            Command::new("backup")
                .about(
                    "Write the whole database (SQLite: the platform file and every workspace file; PostgreSQL: the \
                     platform tables and every ws_* schema) to one archive, consistent as of one moment, while Kiln \
                     serves",
                )
                .arg(Arg::new("to").long("to").value_name("FILE").required(true).help("The archive to write (.tar.gz)")),
        )
        .subcommand(
            Command::new("restore")
                .about(
                    "Put an archive of `kiln backup` into the database KILN_DATABASE_URL names, which must be empty and \
                     of the same kind (SQLite or PostgreSQL); then start Kiln on it",
                )
                .arg(Arg::new("from").long("from").value_name("FILE").required(true).help("The archive to read")),
        )
        .subcommand(
            Command::new("export")
                .about(
                    "Write the caller's workspace (models, records, templates, workflows, prompts) to one archive \
                     through the REST API of the Kiln at --url, printing progress",
                )
                .arg(Arg::new("to").long("to").value_name("FILE").required(true).help("The archive to write (.tar.gz)"))
                .args(remote_args()),
        )
        .subcommand(
            Command::new("import")
                .about(
                    "Read an archive of `kiln export` into the caller's workspace through the REST API of the Kiln at \
                     --url: the models it lacks are created, records keep their ids and times, ids it has are \
                     skipped (run it again to finish an import that stopped)",
                )
                .arg(Arg::new("from").long("from").value_name("FILE").required(true).help("The archive to read"))
                .arg(
                    Arg::new("dry-run")
                        .long("dry-run")
                        .action(ArgAction::SetTrue)
                        .help("Check every record and write nothing; row errors are listed by line"),
                )
                .args(remote_args()),
        )
        .subcommand(
            Command::new("healthcheck")
                .about(
                    "Exit 0 when the Kiln process at --url answers its gRPC health check with SERVING, or, for the ui role, \
                     GET /healthz with 200 (for containers)",
                )
                .arg(
                    Arg::new("url")
                        .long("url")
                        .value_name("URL")
                        .help("Any role's address: the gateway's or a service's gRPC listener [default: http://127.0.0.1:4000; ui role http://127.0.0.1:3000]"),
                ),
        )
        .arg(
            Arg::new("role")
                .long("role")
                .env("KILN_ROLE")
                .global(true)
                .value_parser(Role::ALL.map(Role::name))
                .default_value("all-in-one")
                .help("Which services this process runs"),
        )
        .arg(
            Arg::new("config")
                .long("config")
                .env("KILN_CONFIG")
                .global(true)
                .value_name("FILE")
                .help("Configuration file; keys as the flags with `_` for `-` [default: ./kiln.toml if present]"),
        );
    for setting in SETTINGS {
        let flag: &'static str = Box::leak(setting.key.replace('_', "-").into_boxed_str());
        kiln = kiln.arg(
            Arg::new(setting.key)
                .long(flag)
                .env(setting.env)
                .global(true)
                .value_name("VALUE")
                .action(ArgAction::Set)
                .hide_env_values(setting.key.contains("secret"))
                .help(setting.help),
        );
    }
    kiln
}

/// Where `export` and `import` find the API, and whose workspace they move.
fn remote_args() -> [Arg; 2] {
    [
        Arg::new("url")
            .long("url")
            .value_name("URL")
            .default_value("http://localhost:4000")
            .help("The gateway of the Kiln holding the workspace"),
        Arg::new("token")
            .long("token")
            .env("KILN_TOKEN")
            .hide_env_values(true)
            .value_name("TOKEN")
            .help("An access token of the workspace's user (POST /api/v1/auth/login)"),
    ]
}

/// `kiln export` or `kiln import`.
async fn move_workspace(command: &str, matches: &ArgMatches) -> ExitCode {
    let arg = |name: &str| matches.get_one::<String>(name).map_or("", String::as_str);
    let remote = match kiln::archive::Remote::new(arg("url"), arg("token")) {
        Ok(remote) => remote,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = std::io::stdout();
    let done = if command == "export" {
        let file = PathBuf::from(arg("to"));
        kiln::archive::export(&remote, &file, &mut progress).await.map(|done| (done, file))
    } else {
        let file = PathBuf::from(arg("from"));
        let dry_run = matches.get_flag("dry-run");
        kiln::archive::import(&remote, &file, dry_run, &mut progress).await.map(|done| (done, file))
    };
    match done {
        Ok((done, file)) => {
            let (models, records, skipped) = (done.models, done.records, done.skipped);
            match command {
                "export" => println!("exported: {models} models, {records} records: {}", file.display()),
                _ if matches.get_flag("dry-run") => {
                    println!("checked: {records} records would be imported, {skipped} skipped: {}", file.display())
                }
                _ => println!(
                    "imported: {models} models created, {records} records imported, {skipped} skipped: {}",
                    file.display()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kiln could not {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(matches: &ArgMatches) -> Result<Config, String> {
    load_with_sources(matches).map(|(config, _)| config)
}

/// The configuration and the raw settings it was made of (where each value came from).
fn load_with_sources(matches: &ArgMatches) -> Result<(Config, RawSettings), String> {
    let (role, raw) = raw_settings(matches)?;
    let config = Config::from_raw(role, raw.clone()).map_err(|e| e.to_string())?;
    Ok((config, raw))
}

/// `loaded`, or its error said on stderr and the exit code for it.
fn or_say<T>(loaded: Result<T, String>) -> Result<T, ExitCode> {
    loaded.map_err(|line| {
        eprintln!("{line}");
        ExitCode::from(2)
    })
}

/// The configuration, or its error said on stderr and the exit code for it.
fn load_or_say(matches: &ArgMatches) -> Result<Config, ExitCode> {
    or_say(load(matches))
}

/// The role and the settings given for it, each with its source, not yet parsed.
fn raw_settings(matches: &ArgMatches) -> Result<(Role, RawSettings), String> {
    let role: Role = match matches.get_one::<String>("role") {
        Some(name) => name.parse().map_err(|e: kiln_common::config::ConfigError| e.to_string())?,
        None => Role::AllInOne,
    };
    let file = match matches.get_one::<String>("config") {
        Some(path) => {
            let path = PathBuf::from(path);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("configuration error: {}: {e}", path.display()))?;
            RawSettings::from_toml(path, &text).map_err(|e| e.to_string())?
        }
        None => match std::fs::read_to_string("kiln.toml") {
            Ok(text) => RawSettings::from_toml("kiln.toml".into(), &text).map_err(|e| e.to_string())?,
            Err(_) => RawSettings::default(),
        },
    };
    let mut given = RawSettings::default();
    for setting in SETTINGS {
        if let Some(value) = matches.get_one::<String>(setting.key) {
            match matches.value_source(setting.key) {
                Some(ValueSource::CommandLine) => given.set_flag(setting.key, value.clone()),
                _ => given.set_env(setting.key, value.clone()),
            }
        }
    }
    Ok((role, file.overlay(given)))
}

/// `kiln config check`: the effective configuration as a table, then every problem.
fn config_check(matches: &ArgMatches) -> ExitCode {
    let (config, raw) = match or_say(load_with_sources(matches)) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    print!("{}", check_report(&config, &raw));
    if config.hazards().is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn check_report(config: &Config, raw: &RawSettings) -> String {
    use std::fmt::Write as _;
    let mut report = format!("kiln {} · role {}\n\n", env!("CARGO_PKG_VERSION"), config.role.name());
    let shown = config.effective();
    let width = shown.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let value_width = shown.iter().map(|(_, value)| value.len()).max().unwrap_or(0).min(48);
    for (key, value) in &shown {
        let from = raw.source(key).map_or_else(|| "default".to_string(), ToString::to_string);
        let value = if value.is_empty() { "(unset)" } else { value };
        let _ = writeln!(report, "{key:width$}  {value:value_width$}  {from}");
    }
    let hazards = config.hazards();
    match hazards.len() {
        0 => report.push_str("\nnothing unsafe found\n"),
        n => {
            let serve = match config.role {
                Role::AllInOne => "all-in-one starts with a warning for each",
                _ => "`kiln serve` refuses to start this role with any",
            };
            let _ = writeln!(report, "\n{n} unsafe setting{} ({serve}):", if n == 1 { "" } else { "s" });
            for hazard in hazards {
                let _ = writeln!(report, "  {hazard}");
            }
        }
    }
    report
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// One gRPC health check of the whole server (service ""), with a short deadline.
/// The ui role serves no gRPC: its health is `GET /healthz` answering 200.
async fn http_healthcheck(url: &str) -> ExitCode {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), check).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("unhealthy: {url}: /healthz did not answer 200");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: {url}: no answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(url: &str) -> ExitCode {
    let result = async {
        let channel = kiln_common::GrpcChannel::remote(url)?;
        let check = kiln_common::grpc::check_health(&channel, "");
        tokio::time::timeout(std::time::Duration::from_secs(3), check).await??;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = cli().get_matches();
    if let Some(check) = matches.subcommand_matches("healthcheck") {
        let ui = check.get_one::<String>("role").is_some_and(|role| role == Role::Ui.name());
        let default = if ui { "http://127.0.0.1:3000" } else { "http://127.0.0.1:4000" };
        let url = check.get_one::<String>("url").map(String::as_str).unwrap_or(default);
        return if ui { http_healthcheck(url).await } else { healthcheck(url).await };
    }
    for command in ["export", "import"] {
        if let Some(matches) = matches.subcommand_matches(command) {
            return move_workspace(command, matches).await;
        }
    }
    if let Some(check) = matches.subcommand_matches("config").and_then(|config| config.subcommand_matches("check")) {
        return config_check(check);
    }
    if let Some(migrate) = matches.subcommand_matches("migrate") {
        let config = match load_or_say(migrate) {
            Ok(config) => config,
            Err(code) => return code,
        };
        telemetry::init(&config);
        return match kiln::migrate(&config).await {
            Ok(owners) => {
                println!("migrated: {}", owners.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kiln could not migrate: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    for (command, verb) in [("backup", "back up"), ("restore", "restore")] {
        let Some(matches) = matches.subcommand_matches(command) else { continue };
        let config = match load_or_say(matches) {
            Ok(config) => config,
            Err(code) => return code,
        };
        let file =
            PathBuf::from(matches.get_one::<String>(if command == "backup" { "to" } else { "from" }).map_or("", |v| v));
        let done = if command == "backup" {
            kiln::backup::backup(&config, &file).await
        } else {
            kiln::backup::restore(&config, &file).await
        };
        return match done {
            Ok(summary) => {
                println!(
                    "{}: {summary}: {}",
                    if command == "backup" { "backed up" } else { "restored" },
                    file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kiln could not {verb}: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Global flags reach the subcommand's matches; `kiln` alone serves with the root's.
    let serve = matches.subcommand_matches("serve").unwrap_or(&matches);
    let config = match load_or_say(serve) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // A role of the mesh serves a network: it does not start with a secret anyone can
    // read, a default password or an API open to every web page.
    let hazards = config.hazards();
    if config.role != Role::AllInOne && !hazards.is_empty() {
        for hazard in hazards {
            eprintln!("{hazard}");
        }
        return ExitCode::from(2);
    }
    telemetry::init(&config);
    for hazard in hazards {
        tracing::warn!("{hazard} (the mesh roles refuse this)");
    }
    let running = match kiln::start(config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("kiln could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stop = running.stop_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    let stopped = running.wait().await;
    // The last spans (the shutdown's) leave before the process does; the exporter's
    // calls need the runtime free to run them.
    let _ = tokio::task::spawn_blocking(telemetry::flush).await;
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln stopped with an error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed_and_documents_every_setting() {
        cli().debug_assert();
        let root = cli().render_long_help().to_string();
        let mut built = cli();
        built.build();
        let serve = built.find_subcommand_mut("serve").map(|c| c.render_long_help().to_string()).unwrap_or_default();
        for help in [root, serve] {
            for setting in SETTINGS {
                assert!(help.contains(setting.env), "{} missing from help", setting.env);
                assert!(help.contains(&format!("--{}", setting.key.replace('_', "-"))), "{} flag missing", setting.key);
            }
            assert!(help.contains("KILN_ROLE") && help.contains("KILN_CONFIG"));
        }
    }

    #[test]
    fn config_check_shows_each_value_with_its_source_and_no_secret() {
        let matches = cli().get_matches_from([
            "kiln",
            "config",
            "check",
            "--role",
            "gateway",
            "--jwt-secret",
            "ci-only-secret-ci-only-secret-0123456789",
            "--database-url",
            "postgres://kiln:Vb8sK2pQzz@db/kiln",
        ]);
        let check = matches.subcommand_matches("config").and_then(|c| c.subcommand_matches("check")).unwrap();
        let (role, raw) = raw_settings(check).unwrap();
        let report = check_report(&Config::from_raw(role, raw.clone()).unwrap(), &raw);
        assert!(report.contains("role gateway"), "{report}");
        let line =
            |key: &str| report.lines().find(|l| l.starts_with(&format!("{key} "))).unwrap_or_default().to_string();
        assert!(
            line("database_url").contains("postgres://kiln:***@db/kiln")
                && line("database_url").ends_with("--database-url")
        );
        assert!(line("jwt_secret").contains("***") && line("jwt_secret").ends_with("--jwt-secret"));
        assert!(line("request_timeout").contains("30s") && line("request_timeout").ends_with("default"));
        assert!(line("otlp_endpoint").contains("(unset)"), "{report}");
        assert!(!report.contains("Vb8sK2pQzz") && !report.contains("ci-only-secret"), "{report}");
        assert!(report.contains("1 unsafe setting (`kiln serve` refuses to start this role with any):"), "{report}");
        assert!(report.contains("  configuration error: KILN_JWT_SECRET: is an example secret published with Kiln"));
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../README.md");
        for setting in SETTINGS {
            assert!(readme.contains(&format!("`{}`", setting.env)), "README lacks {}", setting.env);
            assert!(readme.contains(&format!("`{}`", setting.key)), "README lacks key {}", setting.key);
        }
    }

    #[test]
    fn a_bad_flag_value_is_one_line_naming_the_flag() {
        let matches = cli().get_matches_from(["kiln", "serve", "--http-addr", "nowhere"]);
        let err = load(matches.subcommand_matches("serve").unwrap()).unwrap_err();
        assert_eq!(err, "configuration error: --http-addr: `nowhere` is not an address like 0.0.0.0:4000");
    }

    /// The compose file must not run with a secret or password anyone can read here, nor
    /// publish the data services beyond the host's loopback.
    #[test]
    fn compose_requires_its_secrets_and_keeps_data_services_on_loopback() {
        let compose: yaml_serde::Value = yaml_serde::from_str(include_str!("../../docker-compose.yml")).unwrap();
        let env = &compose["x-kiln-env"];
        for key in ["KILN_JWT_SECRET", "KILN_DATABASE_URL", "KILN_REDIS_URL", "KILN_AMQP_URL"] {
            let value = env[key].as_str().unwrap_or_default();
            assert!(value.contains(":?"), "{key} must come from a required variable, not a default: {value}");
        }
        let services = &compose["services"];
        for (service, secret) in
            [("postgres", "POSTGRES_PASSWORD"), ("redis", "REDISCLI_AUTH"), ("rabbitmq", "RABBITMQ_DEFAULT_PASS")]
        {
            let value = services[service]["environment"][secret].as_str().unwrap_or_default();
            assert!(value.starts_with("${") && value.contains(":?"), "{service}: {secret} = {value}");
            let ports = services[service]["ports"].as_sequence().cloned().unwrap_or_default();
            assert!(!ports.is_empty(), "{service} publishes its port for local tools");
            for port in ports {
                let port = port.as_str().unwrap_or_default().to_string();
                assert!(port.starts_with("127.0.0.1:"), "{service} publishes {port} beyond loopback");
            }
        }
    }
}
