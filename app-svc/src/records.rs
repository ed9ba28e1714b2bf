//! The records of the system kinds whose tables app-svc owns (applications, components,
//! templates, workflows, prompts: `owner: app-svc` in `seeds/models.yaml`), served
//! through EntityService with the shared record engine. Their fields are the seeds', the
//! same in every workspace and fixed for a release, so they are compiled once; every
//! workspace's rows share each table and every statement is limited to the caller's
//! workspace. model-svc, which answers EntityService at the edge, sends the calls for
//! these kinds here.

use std::{collections::HashMap, sync::Arc};

use kiln_common::{
    Authenticator, Db, ServiceError,
    db::Id,
    error::FieldViolation,
    records::{
        api::{self, Answer, Gate},
        engine::{CompiledModel, ModelSource, Placement, RecordPool, Records},
        fields::{Dialect, parse_system_fields},
        names,
    },
    seeds::{self, SeedOwner},
    templating,
};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tonic::{Status, metadata::MetadataMap};
use uuid::Uuid;

/// Kinds whose records have their own API, with where to find it.
const MANAGED_ELSEWHERE: &[(&str, &str)] = &[("users", "/api/v1/auth/profile")];

/// app-svc's kinds, compiled from the seeds for the database's dialect.
#[derive(Debug, Clone)]
pub struct PlatformKinds {
    db: Db,
    kinds: Arc<HashMap<String, Arc<CompiledModel>>>,
}

impl PlatformKinds {
    pub fn new(db: Db) -> anyhow::Result<Self> {
        let dialect = match db {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        };
        let mut kinds = HashMap::new();
        for seed in seeds::system_models()? {
            let elsewhere = MANAGED_ELSEWHERE.iter().any(|(kind, _)| *kind == seed.plural);
            if seed.owner != SeedOwner::AppSvc || elsewhere {
                continue;
            }
            let plural = names::plural_ref(&seed.plural).map_err(|e| anyhow::anyhow!("seeded plural: {e}"))?;
            let table = names::plural_ref(&seed.table).map_err(|e| anyhow::anyhow!("platform table: {e}"))?;
            let specs = parse_system_fields(&seed.fields)
                .map_err(|v| anyhow::anyhow!("seeded fields of {plural} do not parse: {v:?}"))?;
            let placement = Placement {
                table: table.quoted(),
                table_name: table.to_string(),
                dialect,
                shared_table: true,
                // Fixed for the release: no other process changes them.
                versions_table: None,
            };
            // No row of its own to name it (page tokens name the kind by its plural).
            let model = CompiledModel::new(Id(Uuid::nil()), 1, plural.clone(), specs, placement);
            kinds.insert(plural.to_string(), Arc::new(model));
        }
        Ok(PlatformKinds { db, kinds: Arc::new(kinds) })
    }
}

#[tonic::async_trait]
impl ModelSource for PlatformKinds {
    /// The kinds never change while the process runs: nothing to hold.
    type Hold = ();

    async fn hold(&self, _: Uuid) -> Self::Hold {}

    /// `plural` is normalised by the engine, so a kind with an API of its own is refused
    /// however the caller spelled it.
    async fn model(&self, _: Uuid, plural: &str) -> Result<Option<Arc<CompiledModel>>, ServiceError> {
        if let Some((kind, api)) = MANAGED_ELSEWHERE.iter().find(|(kind, _)| *kind == plural) {
            return Err(ServiceError::FailedPrecondition(format!("{kind} are managed through {api}")));
        }
        Ok(self.kinds.get(plural).cloned())
    }

    async fn pool(&self, _: Uuid, _: &CompiledModel) -> Result<RecordPool, ServiceError> {
        Ok(RecordPool::from(&self.db))
    }

    async fn is_current(&self, _: &CompiledModel) -> Result<bool, ServiceError> {
        Ok(true)
    }

    fn forget(&self, _: Uuid) {}

    fn rules(&self, model: &CompiledModel, record: &Map<String, Value>) -> Vec<FieldViolation> {
        match model.plural.as_str() {
            "templates" => template_rules(record),
            "applications" => application_rules(record),
            "workflows" => workflow_rules(record),
            "prompts" => crate::prompts::text::rules(record.get("content"), record.get("variables")),
            _ => Vec::new(),
        }
    }
}

/// A workflow's trigger and actions must be ones that can run (`crate::workflows::spec`).
/// Absent ones are the required-field rule's to name.
fn workflow_rules(record: &Map<String, Value>) -> Vec<FieldViolation> {
    match (record.get("trigger"), record.get("actions")) {
        (Some(trigger), Some(actions)) if !trigger.is_null() && !actions.is_null() => {
            crate::workflows::spec::parse(trigger, actions).err().unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// An application's slug names its image: it must be one. Its configuration's build
/// arguments and environment become a Dockerfile's and a container's: their names must
/// be variable names, their values strings.
fn application_rules(record: &Map<String, Value>) -> Vec<FieldViolation> {
    let slug = record.get("slug").and_then(Value::as_str);
    let mut broken: Vec<FieldViolation> = slug
        .and_then(crate::applications::slug_error)
        .map(|why| FieldViolation::new("slug", why))
        .into_iter()
        .collect();
    let config = record.get("config").and_then(Value::as_object);
    for part in ["build_args", "env"] {
        let Some(entries) = config.and_then(|config| config.get(part)).and_then(Value::as_object) else { continue };
        for (name, value) in entries {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || !value.is_string() {
                let why = format!("`{name}` must be a variable name (letters, digits, `_`) with a string value");
                broken.push(FieldViolation::new(format!("config.{part}"), why));
            }
        }
    }
    broken
}

/// A template's body and output path are tera templates: each given must parse, or
/// the build that renders it would fail later, far from the edit.
fn template_rules(record: &Map<String, Value>) -> Vec<FieldViolation> {
    ["body", "output_path"]
        .into_iter()
        .filter_map(|field| {
            let text = record.get(field)?.as_str()?;
            templating::syntax_error(field, text).map(|why| FieldViolation::new(field, why))
        })
        .collect()
}

pub type PlatformRecords = api::EntityApi<PlatformKinds, AppGate>;

pub fn platform_records(
    records: Records<PlatformKinds>,
    auth: Authenticator,
    stopping: CancellationToken,
) -> PlatformRecords {
    api::EntityApi::new(records, AppGate { auth }, stopping)
}

/// Every call is answered here, once its caller is checked.
#[derive(Debug, Clone)]
pub struct AppGate {
    auth: Authenticator,
}

#[tonic::async_trait]
impl Gate for AppGate {
    async fn answer(&self, metadata: &MetadataMap, _: &str) -> Result<Answer, Status> {
        Ok(Answer::Here(self.auth.authenticate(metadata).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_starter_template_is_valid_tera() {
        for template in seeds::starter_templates().unwrap() {
            let record = serde_json::json!({ "body": template.body, "output_path": template.output_path });
            let broken = template_rules(record.as_object().unwrap());
            assert!(broken.is_empty(), "{}: {broken:?}", template.key);
        }
    }

    #[test]
    fn an_application_names_variables_its_image_can_take() {
        let record = serde_json::json!({ "slug": "shop", "config": { "env": { "GOOD_1": "x", "BAD NAME": "y", "N": 1 }, "build_args": { "RUN\nX": "z" } } });
        let broken = application_rules(record.as_object().unwrap());
        let fields: Vec<&str> = broken.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["config.build_args", "config.env", "config.env"], "{broken:?}");
        let fine = serde_json::json!({ "slug": "shop", "config": { "env": { "GREETING": "hello" }, "port": 8080 } });
        assert!(application_rules(fine.as_object().unwrap()).is_empty());
    }

    #[test]
    fn a_template_that_does_not_parse_is_refused_with_its_line() {
        let record =
            serde_json::json!({ "body": "fn main() {}\n{{ model.singular \n}", "output_path": "src/{% if %}.rs" });
        let broken = template_rules(record.as_object().unwrap());
        let fields: Vec<&str> = broken.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["body", "output_path"]);
        assert!(broken[0].description.contains("line 3, column 1"), "{broken:?}");
        assert!(broken[1].description.contains("line 1"), "{broken:?}");
        let fine = serde_json::json!({ "body": "{% for m in models %}{{ m.name }}{% endfor %}", "output_path": "src/{{ model.singular }}.rs" });
        assert!(template_rules(fine.as_object().unwrap()).is_empty());
    }
}
