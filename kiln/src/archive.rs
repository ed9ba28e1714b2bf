//! `kiln export` and `kiln import`: one workspace as an archive, through the REST API of
//! a running Kiln with the caller's access token, so it works against any deployment and
//! moves a workspace between installations and between SQLite and PostgreSQL.
//!
//! The archive is a gzipped tar:
//! - `manifest.json`: the format and its version, the Kiln that wrote it, and each kind
//!   exported with its number of records;
//! - `models.json`: the definitions of the workspace's models, each after the models its
//!   relations point at;
//! - `records/NNNN.<plural>.jsonl`: the records of each model, then of the workspace's
//!   templates, workflows and prompts, one JSON object per line in order of creation,
//!   with their ids, times and author. Starter items nobody changed are left out: every
//!   workspace is seeded with its own.
//!
//! An import creates the models the workspace lacks (one it has must have the same
//! fields), then sends the records in batches to `POST /{model}/import`, which keeps
//! their ids and times and skips the ids the workspace already has: an import that
//! stopped is finished by running it again. Both print their progress as they go.

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader, BufWriter, Write},
    path::Path,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::backup::{Staging, read_manifest, write_archive};

/// What the manifest says the archive is.
pub const FORMAT: &str = "kiln-workspace";
/// The archive layout this Kiln writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The workspace's own kinds of the platform that travel with its models' records.
const SYSTEM_KINDS: [&str; 3] = ["templates", "workflows", "prompts"];
/// Records asked for per page on export.
const PAGE_SIZE: u32 = 100;
/// Rows and JSON bytes sent per import call: well inside a call's row limit and the
/// default request body limit (1 MiB).
const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 512 * 1024;
/// Progress is printed every this many records of a kind, and when the kind is done.
const PROGRESS_EVERY: u64 = 5000;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub kiln_version: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// In the order their records follow in the archive.
    pub kinds: Vec<Kind>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Kind {
    pub plural: String,
    pub records: u64,
}

/// Where the API is and who calls it.
pub struct Remote {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Remote {
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        if token.trim().is_empty() {
            bail!("an access token is needed: --token or KILN_TOKEN (POST /api/v1/auth/login gives one)");
        }
        let api = format!("{}/api/v1", url.trim_end_matches('/'));
        Ok(Remote { http: reqwest::Client::new(), api, token: token.trim().to_string() })
    }

    /// `method path` with `body`: the answer's status and JSON.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.api)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {}{path}", self.api))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, json))
    }

    /// `method path`, which must answer 2xx.
    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} /api/v1{path} answered {status}: {}", said(&answer));
        }
        Ok(answer)
    }
}

impl Remote {
    /// Each item of the paged list at `path` (its `key` array), page after page.
    async fn each_listed(
        &self,
        path: &str,
        key: &str,
        mut each: impl FnMut(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut token = String::new();
        loop {
            let page = format!("{path}{separator}page_size={PAGE_SIZE}&page_token={token}");
            let page = self.ok(reqwest::Method::GET, &page, None).await?;
            for item in page[key].as_array().into_iter().flatten() {
                each(item)?;
            }
            token = page["next_page_token"].as_str().unwrap_or_default().to_string();
            if token.is_empty() {
                return Ok(());
            }
        }
    }
}

/// An error body's message and field details, in one line.
fn said(answer: &Value) -> String {
    let message = answer["error"]["message"].as_str().map_or_else(|| answer.to_string(), str::to_string);
    let details: Vec<String> = answer["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some(format!("{}: {}", d["field"].as_str()?, d["description"].as_str()?)))
        .collect();
    if details.len() > 1 { format!("{message} ({})", details.join("; ")) } else { message }
}

/// A model's definition as the archive keeps it: what `POST /models` takes.
fn definition(model: &Value, plurals_by_id: &HashMap<String, String>) -> Value {
    let fields: Vec<Value> = model["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|field| {
            let mut field = field.as_object().cloned().unwrap_or_default();
            // Given by the server, and a rename's history: neither is part of a definition.
            field.remove("number");
            field.remove("previous_name");
            // A relation names its target by plural, which is the same in every workspace.
            if let Some(Value::String(target)) = field.get_mut("relation").and_then(|r| r.get_mut("target"))
                && let Some(plural) = plurals_by_id.get(target.as_str())
            {
                *target = plural.clone();
            }
            Value::Object(field)
        })
        .collect();
    let mut definition = Map::new();
    for key in ["name", "plural", "label", "label_plural", "description", "title_field"] {
        if let Some(value) = model.get(key).filter(|v| !v.is_null()) {
            definition.insert(key.into(), value.clone());
        }
    }
    definition.insert("fields".into(), Value::Array(fields));
    Value::Object(definition)
}

/// The plurals a definition's relations point at.
fn targets(definition: &Value) -> Vec<String> {
    definition["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|field| field["relation"]["target"].as_str().map(str::to_string))
        .collect()
}

/// Definitions ordered so each comes after the models it points at (among these); a
/// cycle keeps the order it was given in.
fn after_their_targets(definitions: Vec<Value>) -> Vec<Value> {
    let mut placed: HashSet<String> = HashSet::new();
    let mut waiting = definitions;
    let mut ordered = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        let known: HashSet<String> = waiting.iter().filter_map(|d| d["plural"].as_str().map(str::to_string)).collect();
        let ready = waiting.iter().position(|d| {
            let plural = d["plural"].as_str().unwrap_or_default();
            targets(d).iter().all(|t| t == plural || placed.contains(t) || !known.contains(t))
        });
        let next = waiting.remove(ready.unwrap_or(0));
        placed.insert(next["plural"].as_str().unwrap_or_default().to_string());
        ordered.push(next);
    }
    ordered
}

/// Whether a record is a starter item nobody changed: seeded (no author) and never updated.
fn untouched_starter(record: &Value) -> bool {
    record["created_by"].is_null() && record["created_at"] == record["updated_at"]
}

/// What an export or import did, for its last line.
#[derive(Debug, Default)]
pub struct Done {
    pub models: usize,
    pub records: u64,
    pub skipped: u64,
}

/// Writes the caller's workspace to `to`.
pub async fn export(remote: &Remote, to: &Path, progress: &mut impl Write) -> anyhow::Result<Done> {
    let mut models = Vec::new();
    remote
        .each_listed("/models", "models", |model| {
            models.push(model.clone());
            Ok(())
        })
        .await?;
    let plurals_by_id: HashMap<String, String> = models
        .iter()
        .filter_map(|m| Some((m["id"].as_str()?.to_string(), m["plural"].as_str()?.to_string())))
        .collect();
    let definitions = after_their_targets(
        models.iter().filter(|m| m["is_system"] != json!(true)).map(|m| definition(m, &plurals_by_id)).collect(),
    );

    let staging = Staging::new(to)?;
    std::fs::write(staging.0.join("models.json"), serde_json::to_vec_pretty(&definitions)?)?;
    std::fs::create_dir_all(staging.0.join("records"))?;
    let plurals = definitions
        .iter()
        .filter_map(|d| d["plural"].as_str().map(str::to_string))
        .chain(SYSTEM_KINDS.map(str::to_string));
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        exported_at: chrono::Utc::now(),
        kinds: Vec::new(),
    };
    let mut done = Done { models: definitions.len(), ..Done::default() };
    for (n, plural) in plurals.enumerate() {
        let system = SYSTEM_KINDS.contains(&plural.as_str());
        let path = staging.0.join("records").join(format!("{:04}.{plural}.jsonl", n + 1));
        let mut file = BufWriter::new(std::fs::File::create(&path)?);
        let mut records = 0u64;
        let path = format!("/{plural}?sort=created_at");
        let listed = remote.each_listed(&path, "records", |record| {
            if system && untouched_starter(record) {
                return Ok(());
            }
            serde_json::to_writer(&mut file, record)?;
            file.write_all(b"\n")?;
            records += 1;
            if records.is_multiple_of(PROGRESS_EVERY) {
                writeln!(progress, "exporting {plural}: {records} records")?;
            }
            Ok(())
        });
        listed.await?;
        file.flush()?;
        writeln!(progress, "exported {plural}: {records} records")?;
        done.records += records;
        manifest.kinds.push(Kind { plural, records });
    }
    std::fs::write(staging.0.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    write_archive(&staging, to)?;
    Ok(done)
}

/// The fields that make a model what it is, to compare a model with an archive's.
fn shape(definition: &Value) -> Vec<(String, String)> {
    definition["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["name"].as_str().unwrap_or_default().into(), f["type"].as_str().unwrap_or_default().into()))
        .collect()
}

/// Creates the models of `definitions` the workspace lacks; a model it has must have the
/// same fields. With `dry_run`, only says what it would create. The plurals that are
/// not there (in a dry run) are returned: their records cannot be checked.
async fn import_models(
    remote: &Remote,
    definitions: &[Value],
    dry_run: bool,
    progress: &mut impl Write,
) -> anyhow::Result<(usize, HashSet<String>)> {
    let mut created = 0;
    let mut absent = HashSet::new();
    for definition in definitions {
        let plural = definition["plural"].as_str().context("a model of models.json has no plural")?;
        let (status, found) = remote.call(reqwest::Method::GET, &format!("/models/{plural}"), None).await?;
        match status {
            200 if shape(&found["model"]) == shape(definition) => {
                writeln!(progress, "model {plural}: already here, with the same fields")?;
            }
            200 => bail!(
                "the workspace has a model `{plural}` whose fields differ from the archive's; rename or remove one \
                 of them first"
            ),
            404 if dry_run => {
                writeln!(progress, "model {plural}: would be created")?;
                absent.insert(plural.to_string());
            }
            404 => {
                remote.ok(reqwest::Method::POST, "/models", Some(definition)).await?;
                writeln!(progress, "model {plural}: created")?;
                created += 1;
            }
            _ => bail!("GET /api/v1/models/{plural} answered {status}: {}", said(&found)),
        }
    }
    Ok((created, absent))
}

/// Sends one batch of `plural`'s rows, the first of which is line `first` of its file.
async fn import_batch(
    remote: &Remote,
    plural: &str,
    rows: &mut Vec<Value>,
    first: u64,
    dry_run: bool,
) -> anyhow::Result<(u64, u64)> {
    let body = json!({ "records": std::mem::take(rows), "dry_run": dry_run });
    let (status, answer) = remote.call(reqwest::Method::POST, &format!("/{plural}/import"), Some(&body)).await?;
    // Line numbers in the answer count from the batch's first row.
    let in_file = |line: u64| line + first - 1;
    let errors: Vec<String> = match status {
        200 => answer["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let line = e["line"].as_u64().unwrap_or_default();
                format!("line {}: {}: {}", in_file(line), e["field"].as_str().unwrap_or_default(), e["description"])
            })
            .collect(),
        _ => {
            let details = answer["error"]["details"].as_array().cloned().unwrap_or_default();
            let mut lines: Vec<String> = details
                .iter()
                .filter_map(|d| {
                    let field = d["field"].as_str()?;
                    let (line, rest) = field.strip_prefix("line ")?.split_once(": ")?;
                    let line: u64 = line.parse().ok()?;
                    Some(format!("line {}: {rest}: {}", in_file(line), d["description"].as_str()?))
                })
                .collect();
            if lines.is_empty() {
                lines.push(said(&answer));
            }
            lines
        }
    };
    if !errors.is_empty() {
        bail!("records/{plural}: {}", errors.join("\n  "));
    }
    let count = |key: &str| answer[key].as_u64().unwrap_or_default();
    Ok((count("imported"), count("skipped")))
}

/// Reads the archive `from` into the caller's workspace.
pub async fn import(remote: &Remote, from: &Path, dry_run: bool, progress: &mut impl Write) -> anyhow::Result<Done> {
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let not_an_export = || format!("{} is not a Kiln workspace export", from.display());
    let mut entries = archive.entries().with_context(not_an_export)?;
    let mut next = |expected: &str| -> anyhow::Result<Option<tar::Entry<'_, _>>> {
        let Some(entry) = entries.next() else { return Ok(None) };
        let entry = entry.with_context(not_an_export)?;
        if !expected.is_empty() && entry.path()? != Path::new(expected) {
            bail!("{}: `{expected}` expected, `{}` found", not_an_export(), entry.path()?.display());
        }
        Ok(Some(entry))
    };
    let manifest = next("manifest.json")?.with_context(not_an_export)?;
    let manifest: Manifest = read_manifest(manifest, from, "Kiln workspace export", FORMAT, FORMAT_VERSION)?;
    let definitions: Vec<Value> = serde_json::from_reader(next("models.json")?.with_context(not_an_export)?)
        .with_context(|| format!("{}: models.json cannot be read", from.display()))?;
    let totals: HashMap<&str, u64> = manifest.kinds.iter().map(|k| (k.plural.as_str(), k.records)).collect();
    let (models, absent) = import_models(remote, &definitions, dry_run, progress).await?;
    let mut done = Done { models, ..Done::default() };

    while let Some(entry) = next("")? {
        let path = entry.path()?.into_owned();
        let Some(name) = path.strip_prefix("records").ok().and_then(|p| p.to_str()).map(str::to_string) else {
            continue;
        };
        let Some(plural) = name.strip_suffix(".jsonl").and_then(|n| n.split_once('.')).map(|(_, p)| p.to_string())
        else {
            continue;
        };
        if absent.contains(&plural) {
            writeln!(progress, "records {plural}: not checked, the model is not here yet")?;
            continue;
        }
        let total = totals.get(plural.as_str()).copied().unwrap_or_default();
        let (mut batch, mut batch_bytes, mut first, mut read) = (Vec::new(), 0, 1u64, 0u64);
        let (mut imported, mut skipped) = (0u64, 0u64);
        let mut last_said = 0;
        let verb = if dry_run { "checking" } else { "importing" };
        for line in BufReader::new(entry).lines() {
            let line = line.with_context(|| format!("reading records/{name}"))?;
            read += 1;
            if line.trim().is_empty() {
                continue;
            }
            let row: Value = serde_json::from_str(&line)
                .with_context(|| format!("records/{name}: line {read} is not a JSON object"))?;
            batch_bytes += line.len();
            batch.push(row);
            if batch.len() >= BATCH_ROWS || batch_bytes >= BATCH_BYTES {
                let (i, s) = import_batch(remote, &plural, &mut batch, first, dry_run).await?;
                (imported, skipped, first, batch_bytes) = (imported + i, skipped + s, read + 1, 0);
                if read - last_said >= PROGRESS_EVERY {
                    writeln!(
                        progress,
                        "{verb} {plural}: {read}/{total} records ({imported} imported, {skipped} skipped)"
                    )?;
                    last_said = read;
                }
            }
        }
        if !batch.is_empty() {
            let (i, s) = import_batch(remote, &plural, &mut batch, first, dry_run).await?;
            (imported, skipped) = (imported + i, skipped + s);
        }
        let verb = if dry_run { "checked" } else { "imported" };
        writeln!(progress, "{verb} {plural}: {read}/{total} records ({imported} imported, {skipped} skipped)")?;
        done.records += imported;
        done.skipped += skipped;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_come_after_the_models_they_point_at_and_keep_only_their_definition() {
        let model = |plural: &str, target: Option<&str>| {
            let mut fields = vec![json!({ "name": "name", "type": "text", "number": 16 })];
            if let Some(target) = target {
                fields.push(json!({ "name": "other", "type": "relation", "number": 17,
                    "relation": { "target": target, "kind": "many_to_one" } }));
            }
            json!({ "id": format!("id-{plural}"), "name": plural, "plural": plural, "fields": fields, "version": 3 })
        };
        let ids = HashMap::from([("id-customers".to_string(), "customers".to_string())]);
        let invoices = definition(&model("invoices", Some("id-customers")), &ids);
        assert_eq!(invoices["fields"][1]["relation"]["target"], "customers", "ids become plurals");
        assert_eq!(invoices["fields"][0].get("number"), None);
        assert_eq!(invoices.get("version"), None);
        let lines = definition(&model("lines", Some("invoices")), &ids);
        let customers = definition(&model("customers", None), &ids);
        let selfish = definition(&model("nodes", Some("nodes")), &ids);
        let ordered = after_their_targets(vec![lines, invoices, selfish, customers]);
        let plurals: Vec<&str> = ordered.iter().map(|d| d["plural"].as_str().unwrap()).collect();
        assert_eq!(plurals, ["nodes", "customers", "invoices", "lines"]);
    }

    #[test]
    fn only_untouched_starter_items_stay_behind() {
        let at = "2026-01-01T00:00:00.000000Z";
        assert!(untouched_starter(&json!({ "created_by": null, "created_at": at, "updated_at": at })));
        let changed = json!({ "created_by": null, "created_at": at, "updated_at": "2026-01-02T00:00:00.000000Z" });
        assert!(!untouched_starter(&changed));
        assert!(!untouched_starter(&json!({ "created_by": "u", "created_at": at, "updated_at": at })));
    }
}
