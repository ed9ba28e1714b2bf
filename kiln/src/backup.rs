//! `kiln backup` and `kiln restore`: the whole installation's database as one archive, a
//! gzipped tar with a versioned `manifest.json`, taken while Kiln serves.
//!
//! - SQLite (the embedded store): the platform file and every workspace file, each copied
//!   with SQLite's online backup API from a read transaction opened on all of them at
//!   once, while the platform file's write lock is held for that instant: one consistent
//!   cut, writers blocked only for it.
//! - PostgreSQL: the platform tables (`public`) and every workspace schema (`ws_*`), read
//!   in one repeatable-read transaction: each table's definition (columns, defaults,
//!   constraints, indexes, sequences) from the catalog, its rows with `COPY`.
//!
//! Both carry the generated token secret of the data dir when there is one, so tokens
//! issued before stay valid after a restore. A restore goes only into an empty target of
//! the same kind (a workspace moves between kinds with export and import), in one
//! transaction on PostgreSQL, file by file then renamed into place on SQLite.

use std::{
    ffi::CString,
    io::Read,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::{Context, bail};
use futures::StreamExt;
use kiln_common::{
    Config,
    db::{quote_ident, redact_url},
};
use serde::{Deserialize, Serialize};
use sqlx::{
    Connection, Row,
    postgres::{PgConnectOptions, PgConnection},
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

/// What the first line of a manifest says it is.
pub const FORMAT: &str = "kiln-backup";
/// The archive layout this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The data dir's generated token secret, as the archive holds it.
const SECRET_ENTRY: &str = "secrets/jwt_secret";

/// What an archive holds, at `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub kiln_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// SQLite: the files, platform first (`sqlite/platform.db`, `sqlite/workspaces/<id>.db`).
    #[serde(default)]
    pub files: Vec<String>,
    /// PostgreSQL: the schemas, sequences and tables, in the order they are made.
    #[serde(default)]
    pub postgres: Option<PgSchema>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PgSchema {
    pub schemas: Vec<String>,
    pub sequences: Vec<PgSequence>,
    pub tables: Vec<PgTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgSequence {
    pub schema: String,
    pub name: String,
    pub data_type: String,
    /// None when no value was taken yet.
    pub last_value: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgTable {
    pub schema: String,
    pub name: String,
    pub columns: Vec<PgColumn>,
    /// `(name, definition)`: primary and unique keys and checks, then foreign keys (made
    /// after every table's keys).
    pub constraints: Vec<(String, String)>,
    /// `CREATE INDEX …` of the indexes no constraint makes.
    pub indexes: Vec<String>,
    pub rows: u64,
    /// Its rows in `COPY` text format, in the archive.
    pub data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgColumn {
    pub name: String,
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
}

/// What a backup or restore did, for its one line of output.
#[derive(Debug, Clone)]
pub struct Summary {
    pub database: String,
    /// Files (SQLite) or tables (PostgreSQL).
    pub parts: usize,
    /// Rows copied (PostgreSQL).
    pub rows: u64,
    pub bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.database.as_str() {
            "sqlite" => write!(f, "sqlite: {} files, {} bytes", self.parts, self.bytes),
            _ => write!(f, "postgres: {} tables, {} rows, {} bytes", self.parts, self.rows, self.bytes),
        }
    }
}

/// A directory removed when dropped: where an archive is put together or taken apart.
pub(crate) struct Staging(pub(crate) PathBuf);

impl Staging {
    pub(crate) fn new(near: &Path) -> anyhow::Result<Self> {
        let parent = near.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = parent.join(format!(".kiln-staging-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Staging(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn sqlite_file(url: &str) -> anyhow::Result<PathBuf> {
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|_| anyhow::anyhow!("KILN_DATABASE_URL: `{}` is not a valid SQLite URL", redact_url(url)))?
        .get_filename()
        .to_path_buf())
}

/// Writes the archive of `config`'s database to `to` (through a temporary file, renamed
/// into place once whole).
pub async fn backup(config: &Config, to: &Path) -> anyhow::Result<Summary> {
    let staging = Staging::new(to)?;
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        database: String::new(),
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now(),
        files: Vec::new(),
        postgres: None,
    };
    let mut summary = if is_sqlite(&config.database_url) {
        manifest.database = "sqlite".into();
        manifest.files = backup_sqlite(&sqlite_file(&config.database_url)?, &staging.0).await?;
        Summary { database: "sqlite".into(), parts: manifest.files.len(), rows: 0, bytes: 0 }
    } else {
        manifest.database = "postgres".into();
        let schema = backup_postgres(&config.database_url, &staging.0).await?;
        let rows = schema.tables.iter().map(|t| t.rows).sum();
        let summary = Summary { database: "postgres".into(), parts: schema.tables.len(), rows, bytes: 0 };
        manifest.postgres = Some(schema);
        summary
    };
    let secret = config.data_dir.join("jwt_secret");
    if config.jwt_secret.is_none() && secret.is_file() {
        let target = staging.0.join(SECRET_ENTRY);
        std::fs::create_dir_all(target.parent().unwrap_or(&staging.0))?;
        std::fs::copy(&secret, &target).with_context(|| format!("reading {}", secret.display()))?;
    }
    std::fs::write(staging.0.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;

    write_archive(&staging, to)?;
    summary.bytes = std::fs::metadata(to)?.len();
    Ok(summary)
}

/// Writes what `staging` holds (a `manifest.json` and the rest) to `to` as a gzipped tar,
/// manifest first, so a reader knows what it reads before it reads the rest; through a
/// temporary file renamed into place once whole.
pub(crate) fn write_archive(staging: &Staging, to: &Path) -> anyhow::Result<()> {
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let written = (|| -> anyhow::Result<()> {
        let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        tar.append_path_with_name(staging.0.join("manifest.json"), "manifest.json")?;
        append_sorted(&mut tar, &staging.0, Path::new(""))?;
        tar.into_inner()?.finish()?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, to).with_context(|| format!("moving the archive to {}", to.display()))
}

/// Appends what the directory `dir` holds (as `name` in the archive), by name at every
/// level: archives that are read as they stream put what comes first first.
fn append_sorted<W: std::io::Write>(tar: &mut tar::Builder<W>, dir: &Path, name: &Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let (path, inner) = (entry.path(), name.join(entry.file_name()));
        if inner == Path::new("manifest.json") {
            continue;
        }
        if path.is_dir() {
            tar.append_dir(&inner, &path)?;
            append_sorted(tar, &path, &inner)?;
        } else {
            tar.append_path_with_name(&path, &inner)?;
        }
    }
    Ok(())
}

/// Copies the platform file and every workspace file into `staging/sqlite/`, as of one
/// moment; returns their names in the archive, platform first.
async fn backup_sqlite(platform: &Path, staging: &Path) -> anyhow::Result<Vec<String>> {
    if !platform.is_file() {
        bail!("there is no database at {}", platform.display());
    }
    let mut files = vec![(platform.to_path_buf(), "sqlite/platform.db".to_string())];
    let dir = kiln_model_svc::workspace::workspace_dir(platform);
    if dir.is_dir() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "db"))
            .collect();
        found.sort();
        for path in found {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            files.push((path, format!("sqlite/workspaces/{name}")));
        }
    }
    // Platform writes wait while every file's read transaction opens: no change that
    // spans the platform file and a workspace file is half in the cut.
    let options =
        |path: &Path| SqliteConnectOptions::new().filename(path).busy_timeout(std::time::Duration::from_secs(30));
    let mut lock = SqliteConnection::connect_with(&options(platform)).await.context("opening the platform file")?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut lock).await.context("waiting for the platform file's writers")?;
    let mut readers = Vec::with_capacity(files.len());
    for (path, _) in &files {
        let mut reader = SqliteConnection::connect_with(&options(path).read_only(true))
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        sqlx::query("BEGIN").execute(&mut reader).await?;
        // The first read fixes the transaction's snapshot.
        sqlx::query("SELECT count(*) FROM sqlite_master").fetch_one(&mut reader).await?;
        readers.push(reader);
    }
    sqlx::query("ROLLBACK").execute(&mut lock).await?;
    lock.close().await?;

    std::fs::create_dir_all(staging.join("sqlite/workspaces"))?;
    for ((path, name), mut reader) in files.iter().zip(readers) {
        let target = staging.join(name);
        let mut handle = reader.lock_handle().await?;
        online_backup(handle.as_raw_handle(), &target).with_context(|| format!("copying {}", path.display()))?;
        drop(handle);
        let _ = sqlx::query("ROLLBACK").execute(&mut reader).await;
        reader.close().await?;
    }
    Ok(files.into_iter().map(|(_, name)| name).collect())
}

/// SQLite's online backup of the database open on `source` (inside its read transaction,
/// so as of its snapshot) into a new file at `target`.
fn online_backup(source: std::ptr::NonNull<libsqlite3_sys::sqlite3>, target: &Path) -> anyhow::Result<()> {
    use libsqlite3_sys as ffi;
    let path = CString::new(target.to_string_lossy().as_bytes()).context("a path with a NUL byte")?;
    let main = c"main";
    // SAFETY: `source` is a live connection held locked by the caller for this call;
    // `dest` is opened, used and closed here; every pointer passed is valid for the call.
    unsafe {
        let mut dest: *mut ffi::sqlite3 = std::ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
        if ffi::sqlite3_open_v2(path.as_ptr(), &mut dest, flags, std::ptr::null()) != ffi::SQLITE_OK {
            ffi::sqlite3_close(dest);
            bail!("cannot create {}", target.display());
        }
        let backup = ffi::sqlite3_backup_init(dest, main.as_ptr(), source.as_ptr(), main.as_ptr());
        if backup.is_null() {
            let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(dest)).to_string_lossy().to_string();
            ffi::sqlite3_close(dest);
            bail!("the backup did not start: {message}");
        }
        // Every page in one step: the source's snapshot is the transaction's.
        let stepped = ffi::sqlite3_backup_step(backup, -1);
        let finished = ffi::sqlite3_backup_finish(backup);
        let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(dest)).to_string_lossy().to_string();
        ffi::sqlite3_close(dest);
        if stepped != ffi::SQLITE_DONE || finished != ffi::SQLITE_OK {
            bail!("the backup failed ({stepped}/{finished}): {message}");
        }
    }
    Ok(())
}

fn pg_options(url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|_| anyhow::anyhow!("KILN_DATABASE_URL: `{}` is not a valid PostgreSQL URL", redact_url(url)))
}

/// The schemas a backup covers: the platform's and every workspace's.
const PG_SCHEMAS: &str = "(n.nspname = 'public' OR n.nspname LIKE 'ws\\_%')";

/// Writes every table's rows of the platform and workspace schemas to `staging/postgres/`
/// and returns their definitions, all read in one snapshot.
async fn backup_postgres(url: &str, staging: &Path) -> anyhow::Result<PgSchema> {
    let mut conn = PgConnection::connect_with(&pg_options(url)?)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut conn).await?;
    let schemas: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT n.nspname::text FROM pg_namespace n WHERE {PG_SCHEMAS} ORDER BY n.nspname"
    )))
    .fetch_all(&mut conn)
    .await?;
    let sequences = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT s.schemaname::text, s.sequencename::text, format_type(s.data_type, NULL), s.last_value \
         FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE {PG_SCHEMAS} \
         ORDER BY 1, 2"
    )))
    .fetch_all(&mut conn)
    .await?
    .iter()
    .map(|row| {
        Ok(PgSequence {
            schema: row.try_get(0)?,
            name: row.try_get(1)?,
            data_type: row.try_get(2)?,
            last_value: row.try_get(3)?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let tables = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {PG_SCHEMAS} ORDER BY 2, 3"
    )))
    .fetch_all(&mut conn)
    .await?;
    std::fs::create_dir_all(staging.join("postgres"))?;
    let mut described = Vec::with_capacity(tables.len());
    for (n, row) in tables.iter().enumerate() {
        let (oid, schema, name): (i64, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let columns = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(oid)
        .fetch_all(&mut conn)
        .await?
        .iter()
        .map(|c| Ok(PgColumn { name: c.try_get(0)?, data_type: c.try_get(1)?, not_null: c.try_get(2)?, default: c.try_get(3)? }))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // Keys and checks before foreign keys, which need the keys they point at.
        let constraints = sqlx::query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::int8::oid \
             ORDER BY contype = 'f', conname",
        )
        .bind(oid)
        .fetch_all(&mut conn)
        .await?
        .iter()
        .map(|c| Ok((c.try_get(0)?, c.try_get(1)?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = $1::int8::oid \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY 1",
        )
        .bind(oid)
        .fetch_all(&mut conn)
        .await?;
        let data = format!("postgres/{n:05}.copy");
        let mut file = std::fs::File::create(staging.join(&data))?;
        let copy = format!("COPY {}.{} TO STDOUT", quote_ident(&schema), quote_ident(&name));
        let mut stream = conn.copy_out_raw(&copy).await?;
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            std::io::Write::write_all(&mut file, &chunk)?;
        }
        drop(stream);
        described.push(PgTable { schema, name, columns, constraints, indexes, rows, data });
    }
    sqlx::query("COMMIT").execute(&mut conn).await?;
    conn.close().await?;
    Ok(PgSchema { schemas, sequences, tables: described })
}

/// The manifest `reader` holds, once it says the archive `from` is a `what` of `format`
/// in the `version` this Kiln reads.
pub(crate) fn read_manifest<M: serde::de::DeserializeOwned>(
    reader: impl Read,
    from: &Path,
    what: &str,
    format: &str,
    version: u32,
) -> anyhow::Result<M> {
    let unreadable = || format!("{} has a manifest.json Kiln cannot read", from.display());
    let manifest: serde_json::Value = serde_json::from_reader(reader).with_context(unreadable)?;
    let said = |key: &str| manifest.get(key).cloned().unwrap_or_default();
    if said("format") != format {
        let said = said("format");
        bail!("{} is not a {what} (its manifest says `{}`)", from.display(), said.as_str().unwrap_or_default());
    }
    if said("version") != version {
        bail!(
            "{} is a {what} of format version {}; this kiln ({}) reads version {version}",
            from.display(),
            said("version"),
            env!("CARGO_PKG_VERSION")
        );
    }
    serde_json::from_value(manifest).with_context(unreadable)
}

/// Puts the archive `from` into `config`'s database, which must be empty.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<Summary> {
    let staging = Staging::new(&config.data_dir.join("restore"))?;
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive.entries().with_context(|| format!("{} is not a Kiln backup", from.display()))?;
    for entry in entries {
        let mut entry =
            entry.with_context(|| format!("{} is not a Kiln backup (not a gzipped tar)", from.display()))?;
        // `unpack_in` refuses paths that would leave the staging directory.
        if !entry.unpack_in(&staging.0)? {
            bail!("{} holds a path outside the archive: {}", from.display(), entry.path()?.display());
        }
    }
    let manifest = std::fs::File::open(staging.0.join("manifest.json"))
        .with_context(|| format!("{} is not a Kiln backup: it has no manifest.json", from.display()))?;
    let manifest: Manifest = read_manifest(manifest, from, "Kiln backup", FORMAT, FORMAT_VERSION)?;
    let target = if is_sqlite(&config.database_url) { "sqlite" } else { "postgres" };
    if manifest.database != target {
        bail!(
            "{} is a backup of a {} database and KILN_DATABASE_URL names a {target} one; move workspaces between \
             the two with export and import",
            from.display(),
            manifest.database
        );
    }
    let mut summary = if target == "sqlite" {
        restore_sqlite(&sqlite_file(&config.database_url)?, &staging.0, &manifest.files)?
    } else {
        let schema = manifest.postgres.as_ref().context("the manifest describes no PostgreSQL schema")?;
        restore_postgres(&config.database_url, &staging.0, schema).await?
    };
    let secret = staging.0.join(SECRET_ENTRY);
    if secret.is_file() {
        let kept = config.data_dir.join("jwt_secret");
        if !kept.exists() {
            std::fs::create_dir_all(&config.data_dir)?;
            let text = std::fs::read_to_string(&secret)?;
            kiln_common::token::write_private(&kept, &text).with_context(|| format!("writing {}", kept.display()))?;
        }
    }
    summary.bytes = std::fs::metadata(from)?.len();
    Ok(summary)
}

fn restore_sqlite(platform: &Path, staging: &Path, files: &[String]) -> anyhow::Result<Summary> {
    let workspaces = kiln_model_svc::workspace::workspace_dir(platform);
    let occupied =
        platform.exists() || std::fs::read_dir(&workspaces).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        bail!(
            "the target is not empty: {} or {} exists; restore into an empty data location",
            platform.display(),
            workspaces.display()
        );
    }
    std::fs::create_dir_all(&workspaces)?;
    if let Some(parent) = platform.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut placed = Vec::new();
    for name in files {
        let source = staging.join(name);
        let target = match name.strip_prefix("sqlite/workspaces/") {
            Some(file) if !file.contains('/') && file.ends_with(".db") => workspaces.join(file),
            Some(_) => bail!("the archive names a workspace file Kiln would not write: {name}"),
            None if name == "sqlite/platform.db" => platform.to_path_buf(),
            None => bail!("the archive names a file Kiln does not know: {name}"),
        };
        // Beside the target first, then renamed: no half-written file under its real name.
        let partial = PathBuf::from(format!("{}.partial", target.display()));
        std::fs::copy(&source, &partial).with_context(|| format!("{name} is missing from the archive"))?;
        placed.push((partial, target));
    }
    for (partial, target) in &placed {
        std::fs::rename(partial, target)?;
    }
    Ok(Summary { database: "sqlite".into(), parts: placed.len(), rows: 0, bytes: 0 })
}

async fn restore_postgres(url: &str, staging: &Path, schema: &PgSchema) -> anyhow::Result<Summary> {
    // Made if it does not exist, as at start-up.
    kiln_common::Db::connect(url, Default::default()).await?.close().await;
    let mut conn = PgConnection::connect_with(&pg_options(url)?).await?;
    let existing: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {PG_SCHEMAS}"
    )))
    .fetch_one(&mut conn)
    .await?;
    if existing > 0 {
        bail!("the target database is not empty ({existing} tables); restore into an empty database");
    }
    let table = |schema: &str, name: &str| format!("{}.{}", quote_ident(schema), quote_ident(name));
    let mut tx = conn.begin().await?;
    for name in &schema.schemas {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(name))))
            .execute(&mut *tx)
            .await?;
    }
    for sequence in &schema.sequences {
        let sql = format!("CREATE SEQUENCE {} AS {}", table(&sequence.schema, &sequence.name), sequence.data_type);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    let mut rows = 0;
    for described in &schema.tables {
        let columns: Vec<String> = described
            .columns
            .iter()
            .map(|c| {
                let mut column = format!("{} {}", quote_ident(&c.name), c.data_type);
                if let Some(default) = &c.default {
                    column.push_str(&format!(" DEFAULT {default}"));
                }
                if c.not_null {
                    column.push_str(" NOT NULL");
                }
                column
            })
            .collect();
        let name = table(&described.schema, &described.name);
        let sql = format!("CREATE TABLE {name} ({})", columns.join(", "));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.with_context(|| format!("creating {name}"))?;
        let data = std::fs::read(staging.join(&described.data))
            .with_context(|| format!("the rows of {name} are missing from the archive"))?;
        let mut copy = tx.copy_in_raw(&format!("COPY {name} FROM STDIN")).await?;
        copy.send(data).await?;
        rows += copy.finish().await.with_context(|| format!("loading the rows of {name}"))?;
    }
    // Keys and indexes once the rows are in (faster); foreign keys last, once every key
    // they point at exists.
    for foreign in [false, true] {
        for described in &schema.tables {
            let name = table(&described.schema, &described.name);
            for (constraint, definition) in &described.constraints {
                if definition.starts_with("FOREIGN KEY") != foreign {
                    continue;
                }
                let sql = format!("ALTER TABLE {name} ADD CONSTRAINT {} {definition}", quote_ident(constraint));
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("{name}: {definition}"))?;
            }
            if !foreign {
                for index in &described.indexes {
                    sqlx::query(sqlx::AssertSqlSafe(index.clone()))
                        .execute(&mut *tx)
                        .await
                        .with_context(|| index.clone())?;
                }
            }
        }
    }
    for sequence in &schema.sequences {
        if let Some(last) = sequence.last_value {
            sqlx::query("SELECT setval($1, $2)")
                .bind(table(&sequence.schema, &sequence.name))
                .bind(last)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(Summary { database: "postgres".into(), parts: schema.tables.len(), rows, bytes: 0 })
}
