//! What every workspace starts with, from `seeds/`, compiled in and parsed once: the
//! system models, the starter workflows and the starter template set, and the seeds'
//! version. Each kind is seeded by the service that owns it (model-svc's `seeding` the
//! system models, app-svc's the workflows and templates): idempotently (what exists is
//! left alone, user edits included) and versioned (workspaces behind the current seed
//! version get what they lack).

use std::sync::LazyLock;

use kiln_proto::v1::Field;
use serde::Deserialize;

const MODELS_YAML: &str = include_str!("../../seeds/models.yaml");
const WORKFLOWS_YAML: &str = include_str!("../../seeds/workflows.yaml");
const TEMPLATE_SETS: &[(&str, &str)] = &[
    ("rust-axum", include_str!("../../seeds/templates/rust-axum.yaml")),
    ("sdk-python", include_str!("../../seeds/templates/sdk-python.yaml")),
    ("sdk-typescript", include_str!("../../seeds/templates/sdk-typescript.yaml")),
];

/// Files of the repository a starter template carries as they are (`body_file:`): the
/// platform clients' core and the generated messages it needs, so a workspace SDK and the
/// clients in proto/clients share one core, said once.
const EMBEDDED_FILES: &[(&str, &str)] = &[
    ("proto/clients/python/kiln_client/_core.py", include_str!("../../proto/clients/python/kiln_client/_core.py")),
    ("proto/clients/python/kiln/v1/auth_pb2.py", include_str!("../../proto/clients/python/kiln/v1/auth_pb2.py")),
    ("proto/clients/typescript/src/core.ts", include_str!("../../proto/clients/typescript/src/core.ts")),
    (
        "proto/clients/typescript/src/gen/kiln/v1/auth_pb.ts",
        include_str!("../../proto/clients/typescript/src/gen/kiln/v1/auth_pb.ts"),
    ),
    (
        "proto/clients/typescript/src/gen/google/rpc/error_details_pb.ts",
        include_str!("../../proto/clients/typescript/src/gen/google/rpc/error_details_pb.ts"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    workflows: Vec<SeedWorkflow>,
}

/// A starter workflow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWorkflow {
    pub key: String,
    pub name: String,
    pub description: String,
    pub trigger: serde_json::Value,
    pub actions: serde_json::Value,
    pub enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    set: String,
    templates: Vec<SeedTemplate>,
}

/// A starter template of a set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedTemplate {
    pub key: String,
    #[serde(skip)]
    pub set: String,
    pub name: String,
    pub output_path: String,
    pub scope: String,
    pub language: String,
    #[serde(default)]
    pub body: String,
    /// A file of [`EMBEDDED_FILES`] that is the body, as it is (a tera `raw` block).
    #[serde(default)]
    pub body_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    version: i32,
    models: Vec<SeedModel>,
}

/// A system model as the seed file describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedModel {
    pub name: String,
    pub plural: String,
    /// The platform table holding its records.
    pub table: String,
    /// The service owning that table, which serves the records.
    pub owner: SeedOwner,
    pub label: String,
    pub label_plural: String,
    pub title_field: String,
    pub description: String,
    pub fields: Vec<Field>,
}

/// A service that owns platform tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedOwner {
    ModelSvc,
    AppSvc,
}

struct Seeds {
    version: i32,
    models: Vec<SeedModel>,
    workflows: Vec<SeedWorkflow>,
    templates: Vec<SeedTemplate>,
}

static SEEDS: LazyLock<Result<Seeds, String>> = LazyLock::new(|| {
    let file: SeedFile = yaml_serde::from_str(MODELS_YAML).map_err(|e| format!("seeds/models.yaml: {e}"))?;
    let workflows: WorkflowFile =
        yaml_serde::from_str(WORKFLOWS_YAML).map_err(|e| format!("seeds/workflows.yaml: {e}"))?;
    let mut templates = Vec::new();
    for (name, text) in TEMPLATE_SETS {
        let set: TemplateFile = yaml_serde::from_str(text).map_err(|e| format!("seeds/templates/{name}.yaml: {e}"))?;
        for mut template in set.templates {
            if let Some(path) = &template.body_file {
                let (_, text) = EMBEDDED_FILES
                    .iter()
                    .find(|(embedded, _)| embedded == path)
                    .ok_or_else(|| format!("seeds/templates/{name}.yaml: {path} is not an embedded file"))?;
                template.body = format!("{{% raw %}}{text}{{% endraw %}}");
            }
            templates.push(SeedTemplate { set: set.set.clone(), ..template });
        }
    }
    Ok(Seeds { version: file.version, models: file.models, workflows: workflows.workflows, templates })
});

fn seeds() -> anyhow::Result<&'static Seeds> {
    SEEDS.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The version of the compiled-in seeds.
pub fn current_version() -> anyhow::Result<i32> {
    Ok(seeds()?.version)
}

/// The system models of the compiled-in seeds.
pub fn system_models() -> anyhow::Result<&'static [SeedModel]> {
    Ok(&seeds()?.models)
}

/// The starter workflows.
pub fn starter_workflows() -> anyhow::Result<&'static [SeedWorkflow]> {
    Ok(&seeds()?.workflows)
}

/// The starter templates of every set.
pub fn starter_templates() -> anyhow::Result<&'static [SeedTemplate]> {
    Ok(&seeds()?.templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_describes_every_system_model_with_valid_fields() {
        let models = system_models().unwrap();
        let plurals: Vec<&str> = models.iter().map(|m| m.plural.as_str()).collect();
        assert_eq!(plurals, ["models", "applications", "users", "components", "templates", "workflows", "prompts"]);
        let owned_by_model_svc: Vec<&str> =
            models.iter().filter(|m| m.owner == SeedOwner::ModelSvc).map(|m| m.table.as_str()).collect();
        assert_eq!(owned_by_model_svc, ["models"], "model-svc owns the models table, app-svc the rest");
        for model in models {
            assert!(model.fields.iter().any(|f| f.name == model.title_field), "{}: title field", model.name);
            for field in &model.fields {
                assert!(!field.label.is_empty(), "{}.{} has no label", model.name, field.name);
                assert!(!field.r#type.is_empty(), "{}.{} has no type", model.name, field.name);
            }
        }
        assert!(current_version().unwrap() >= 1);
    }

    #[test]
    fn the_starter_content_is_complete() {
        let build = starter_workflows().unwrap().iter().find(|w| w.key == "build-application").unwrap();
        assert_eq!(build.name, "Export/Build Application");
        assert_eq!(build.actions[0]["kind"], "publish_event");
        assert_eq!(build.actions[0]["config"]["queue"], "app_builds");
        let templates = starter_templates().unwrap();
        assert!(templates.iter().all(|t| ["once", "per_model"].contains(&t.scope.as_str())));
        let sets: std::collections::BTreeSet<&str> = templates.iter().map(|t| t.set.as_str()).collect();
        assert_eq!(sets.into_iter().collect::<Vec<_>>(), ["rust-axum", "sdk-python", "sdk-typescript"]);
        for template in templates {
            assert!(crate::templating::syntax_error(&template.key, &template.body).is_none(), "{}", template.key);
        }
        let paths: Vec<&str> =
            templates.iter().filter(|t| t.set == "rust-axum").map(|t| t.output_path.as_str()).collect();
        assert!(paths.contains(&"Cargo.toml") && paths.contains(&"Dockerfile") && paths.contains(&"src/main.rs"));
        let mut keys: Vec<(&str, &str)> = templates.iter().map(|t| (t.set.as_str(), t.key.as_str())).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), templates.len(), "template keys are unique in their set");
    }
}
