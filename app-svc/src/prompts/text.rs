//! What a prompt's text means, with no storage in sight: its declared variables (as the
//! `variables` field holds them: names, or objects with a description, whether required
//! and a default), rendering a version with values for them (each missing or unknown
//! one a field error), and the line diff between two versions.

use std::collections::{BTreeMap, BTreeSet};

use kiln_common::{error::FieldViolation, templating};
use kiln_proto::v1::{DiffLine, PromptVariable};
use serde_json::{Map, Value, json};

/// Longest variable name.
const MAX_NAME: usize = 64;

/// The declared variables of `value` (the `variables` field; null or absent: none), or
/// every reason they are not, with field paths under `field`.
pub fn variables(field: &str, value: Option<&Value>) -> Result<Vec<PromptVariable>, Vec<FieldViolation>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(vec![FieldViolation::new(field, "must be a list of variable names or objects")]),
    };
    let mut broken = Vec::new();
    let mut seen = BTreeSet::new();
    let mut declared = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let variable = match item {
            Value::String(name) => PromptVariable { name: name.clone(), required: true, ..Default::default() },
            Value::Object(object) => {
                let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
                let default_value = match object.get("default").or_else(|| object.get("default_value")) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                };
                let required = object.get("required").and_then(Value::as_bool).unwrap_or(default_value.is_empty());
                PromptVariable { name: text("name"), description: text("description"), required, default_value }
            }
            _ => {
                broken.push(FieldViolation::new(at, "must be a variable name or an object with `name`"));
                continue;
            }
        };
        if let Some(why) = name_error(&variable.name) {
            broken.push(FieldViolation::new(format!("{at}.name"), why));
        } else if !seen.insert(variable.name.clone()) {
            broken.push(FieldViolation::new(format!("{at}.name"), format!("`{}` is declared twice", variable.name)));
        }
        declared.push(variable);
    }
    if broken.is_empty() { Ok(declared) } else { Err(broken) }
}

fn name_error(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some(format!("`{name}` must start with a letter or `_` and hold only letters, digits and `_`"));
    }
    (name.len() > MAX_NAME).then(|| format!("must be at most {MAX_NAME} characters"))
}

/// Declared variables as the `variables` field stores them.
pub fn variables_json(declared: &[PromptVariable]) -> Value {
    Value::Array(
        declared
            .iter()
            .map(|v| {
                let mut object = Map::new();
                object.insert("name".into(), json!(v.name));
                if !v.description.is_empty() {
                    object.insert("description".into(), json!(v.description));
                }
                object.insert("required".into(), json!(v.required));
                if !v.default_value.is_empty() {
                    object.insert("default".into(), json!(v.default_value));
                }
                Value::Object(object)
            })
            .collect(),
    )
}

/// Why `content` cannot be a prompt's: it must be a tera template.
pub fn content_error(content: &str) -> Option<String> {
    templating::syntax_error("content", content)
}

/// The rules a prompt's fields follow wherever it is written (the `prompts` kind's
/// rules, and PromptService's versions).
pub fn rules(content: Option<&Value>, variables_value: Option<&Value>) -> Vec<FieldViolation> {
    let mut broken = variables("variables", variables_value).err().unwrap_or_default();
    if let Some(why) = content.and_then(Value::as_str).and_then(content_error) {
        broken.push(FieldViolation::new("content", why));
    }
    broken
}

/// `content` rendered with `given` values for its `declared` variables: a required one
/// not given, or a given one not declared, is a field error `variables.<name>`; so is
/// a variable the content uses but does not declare (under `content`).
pub fn render(
    content: &str,
    declared: &[PromptVariable],
    given: &BTreeMap<String, String>,
) -> Result<String, Vec<FieldViolation>> {
    let mut broken = Vec::new();
    let names: Vec<&str> = declared.iter().map(|v| v.name.as_str()).collect();
    for name in given.keys().filter(|name| !names.contains(&name.as_str())) {
        let why = match names.is_empty() {
            true => "is not a variable of this prompt, which declares none".to_string(),
            false => format!("is not a variable of this prompt (it declares {})", names.join(", ")),
        };
        broken.push(FieldViolation::new(format!("variables.{name}"), why));
    }
    let mut context = Map::new();
    for variable in declared {
        match given.get(&variable.name) {
            Some(value) => drop(context.insert(variable.name.clone(), json!(value))),
            None if variable.required && variable.default_value.is_empty() => {
                broken.push(FieldViolation::new(format!("variables.{}", variable.name), "is required"));
            }
            None => drop(context.insert(variable.name.clone(), json!(variable.default_value))),
        }
    }
    if !broken.is_empty() {
        return Err(broken);
    }
    templating::render("content", content, &Value::Object(context))
        .map_err(|why| vec![FieldViolation::new("content", format!("does not render: {why}"))])
}

/// The line diff from `old` to `new`, and the same as a unified diff.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> (Vec<DiffLine>, String) {
    let diff = similar::TextDiff::from_lines(old, new);
    let lines = diff
        .iter_all_changes()
        .map(|change| DiffLine {
            op: match change.tag() {
                similar::ChangeTag::Equal => "equal",
                similar::ChangeTag::Delete => "delete",
                similar::ChangeTag::Insert => "insert",
            }
            .into(),
            text: change.value().trim_end_matches('\n').to_string(),
        })
        .collect();
    let unified = diff.unified_diff().context_radius(3).header(old_name, new_name).to_string();
    (lines, unified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn variables_are_names_or_objects_and_each_bad_one_is_named() {
        let declared = variables(
            "variables",
            Some(&json!(["model", { "name": "tone", "default": "plain" }, { "name": "n", "required": false }])),
        )
        .unwrap();
        let summary: Vec<(&str, bool, &str)> =
            declared.iter().map(|v| (v.name.as_str(), v.required, v.default_value.as_str())).collect();
        assert_eq!(summary, [("model", true, ""), ("tone", false, "plain"), ("n", false, "")]);
        let broken = variables("variables", Some(&json!(["ok", "no spaces", 3, "ok"]))).unwrap_err();
        let fields: Vec<&str> = broken.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["variables[1].name", "variables[2]", "variables[3].name"]);
        assert_eq!(variables("variables", Some(&json!({ "a": 1 }))).unwrap_err()[0].field, "variables");
        // The stored form reads back as it was.
        assert_eq!(variables("v", Some(&variables_json(&declared))).unwrap(), declared);
    }

    #[test]
    fn rendering_names_every_missing_and_unknown_variable() {
        let declared = variables("variables", Some(&json!(["model", { "name": "tone", "default": "plain" }]))).unwrap();
        let content = "Describe {{ model }} in a {{ tone }} tone.";
        assert_eq!(
            render(content, &declared, &given(&[("model", "Invoice")])).unwrap(),
            "Describe Invoice in a plain tone."
        );
        let broken = render(content, &declared, &given(&[("colour", "red")])).unwrap_err();
        let fields: Vec<&str> = broken.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["variables.colour", "variables.model"], "{broken:?}");
        assert!(broken[0].description.contains("model, tone"), "{broken:?}");
        // A variable the content uses without declaring it.
        let broken = render("Hi {{ who }}", &[], &BTreeMap::new()).unwrap_err();
        assert_eq!(broken[0].field, "content", "{broken:?}");
    }

    #[test]
    fn a_diff_lists_every_line_and_reads_as_a_unified_diff() {
        let (lines, unified) = diff("a\nb\nc\n", "a\nB\nc\nd\n", "version 1", "version 2");
        let ops: Vec<(&str, &str)> = lines.iter().map(|l| (l.op.as_str(), l.text.as_str())).collect();
        assert_eq!(ops, [("equal", "a"), ("delete", "b"), ("insert", "B"), ("equal", "c"), ("insert", "d")]);
        assert!(unified.starts_with("--- version 1\n+++ version 2\n"), "{unified}");
        assert!(unified.contains("-b\n+B\n"), "{unified}");
    }

    #[test]
    fn content_must_be_a_template() {
        assert!(rules(Some(&json!("{{ open")), None)[0].field == "content");
        assert!(rules(Some(&json!("fine {{ x }}")), Some(&json!(["x"]))).is_empty());
    }
}
