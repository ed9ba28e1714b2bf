//! Tera, as the platform uses it for code templates: one engine setup (no HTML escaping:
//! templates write source code), errors that name the line and column where a template
//! breaks, and the rendering of a template set, the same for a build and a preview.
//!
//! Each template of a set renders once (scope `once`, with `application`, `models` and
//! `build` in scope) or once per model (`per_model`, with `model` too); its output path is
//! a template as well, and must stay inside the tree: absolute paths and `..` are refused,
//! naming the template.

use std::{
    collections::HashMap,
    path::{Component, Path, PathBuf},
};

use serde::Deserialize;
use serde_json::{Value, json};
use tera::{Context, ErrorKind, Tera};

/// An engine that writes text as it is, with two filters for templates that write code:
/// `json` (any value as JSON) and `rust_str` (a string as a Rust string literal, quoted
/// and escaped), so names, labels and patterns users typed land in source safely.
pub fn engine() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_filter("json", |value: tera::Value, _: tera::Kwargs, _: &tera::State| {
        serde_json::to_string(&value).map_err(|e| tera::Error::message(format!("not JSON: {e}")))
    });
    tera.register_filter("rust_str", |value: tera::Value, _: tera::Kwargs, _: &tera::State| match value.as_str() {
        Some(text) => format!("{text:?}"),
        None => format!("{:?}", value.to_string()),
    });
    tera
}

/// Why `text` is not a tera template, with the line and column where it breaks.
pub fn syntax_error(name: &str, text: &str) -> Option<String> {
    let error = engine().add_raw_template(name, text).err()?;
    Some(format!("is not a valid tera template: {}", describe(&error)))
}

/// A tera error as a user can act on it: `line L, column C: message` where tera knows
/// the place.
pub fn describe(error: &tera::Error) -> String {
    match error.kind() {
        ErrorKind::SyntaxError(report) | ErrorKind::RenderingError(report) => {
            let span = report.span();
            format!("line {}, column {}: {}", span.start_line, span.start_col + 1, report.message())
        }
        _ => error.to_string(),
    }
}

/// Renders `body` (named `name` in errors) against `context`; the error is [`describe`]d.
pub fn render(name: &str, body: &str, context: &serde_json::Value) -> Result<String, String> {
    let context = Context::from_serialize(context).map_err(|e| describe(&e))?;
    let mut tera = engine();
    tera.add_raw_template(name, body).map_err(|e| describe(&e))?;
    tera.render(name, &context).map_err(|e| describe(&e))
}

/// One template of the set, as a build's inputs hold it.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateInput {
    pub name: String,
    pub output_path: String,
    pub body: String,
    pub scope: String,
}

/// A file of the tree: its path relative to the build's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub content: String,
}

/// Why a build's templates did not render: the template and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
}

impl RenderError {
    fn new(template: &str, reason: impl Into<String>) -> Self {
        RenderError { template: template.to_string(), reason: reason.into() }
    }
}

/// Renders every template of `templates` against `context` (`application`, `models`,
/// `build`), in memory.
pub fn render_set(templates: &[TemplateInput], context: &Value) -> Result<Vec<RenderedFile>, RenderError> {
    let models = context.get("models").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut files = Vec::new();
    let mut owners: HashMap<PathBuf, String> = HashMap::new();
    for template in templates {
        let scopes: Vec<Value> = match template.scope.as_str() {
            "once" => vec![context.clone()],
            "per_model" => models.iter().map(|model| with_model(context, model)).collect(),
            other => return Err(RenderError::new(&template.name, format!("unknown scope `{other}`"))),
        };
        for scope in scopes {
            let file = render_one(template, &scope)?;
            if let Some(first) = owners.insert(file.path.clone(), template.name.clone()) {
                return Err(RenderError::new(
                    &template.name,
                    format!("writes {}, which template `{first}` writes too", file.path.display()),
                ));
            }
            files.push(file);
        }
    }
    Ok(files)
}

fn with_model(context: &Value, model: &Value) -> Value {
    let mut scope = context.clone();
    if let Some(map) = scope.as_object_mut() {
        map.insert("model".into(), model.clone());
    }
    scope
}

/// One template against one scope: its path, checked, and its content.
pub fn render_one(template: &TemplateInput, scope: &Value) -> Result<RenderedFile, RenderError> {
    let path = render(&format!("{} (output path)", template.name), &template.output_path, scope)
        .map_err(|reason| RenderError::new(&template.name, format!("output path: {reason}")))?;
    let path = confined(&path).map_err(|reason| RenderError::new(&template.name, reason))?;
    let content =
        render(&template.name, &template.body, scope).map_err(|reason| RenderError::new(&template.name, reason))?;
    Ok(RenderedFile { path, content })
}

/// `path` as a relative path that stays where it is put, or why not.
pub fn confined(path: &str) -> Result<PathBuf, String> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err("the output path rendered empty".into());
    }
    if trimmed.contains('\0') || trimmed.contains('\\') {
        return Err(format!("output path `{trimmed}` holds a character paths may not"));
    }
    let mut confined = PathBuf::new();
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(part) => confined.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("output path `{trimmed}` leaves the build's directory (`..`)")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "output path `{trimmed}` is absolute; paths are relative to the build's directory"
                ));
            }
        }
    }
    if confined.as_os_str().is_empty() {
        return Err(format!("output path `{trimmed}` names no file"));
    }
    Ok(confined)
}

/// A tar of `files` under the directory `root` (empty: at the top), every entry with
/// the same mode and time so the same files give the same bytes.
pub fn tar(files: &[RenderedFile], root: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    let mut builder = ::tar::Builder::new(Vec::new());
    for file in files {
        let mut header = ::tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, root.join(&file.path), file.content.as_bytes())
            .context("adding a file to the tar")?;
    }
    builder.into_inner().context("finishing the tar")
}

/// `bytes` gzipped.
pub fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

/// The context templates see: the build's inputs plus the build itself.
pub fn context(inputs: &Value, build_id: &str, number: i64) -> Value {
    json!({
        "application": inputs.get("application").cloned().unwrap_or(Value::Null),
        "models": inputs.get("models").cloned().unwrap_or_else(|| json!([])),
        "build": { "id": build_id, "number": number },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_error_names_its_line() {
        let error = render("t", "ok\n{{ missing.field }}", &serde_json::json!({})).unwrap_err();
        assert!(error.starts_with("line 2, column"), "{error}");
        assert_eq!(render("t", "<{{ a }}>", &serde_json::json!({ "a": "&" })).unwrap(), "<&>");
        let context = serde_json::json!({ "p": "^a\"b\\c$", "v": { "x": [1, "y"] } });
        assert_eq!(render("t", "{{ p | rust_str }}", &context).unwrap(), r#""^a\"b\\c$""#);
        assert_eq!(render("t", "{{ v | json }}", &context).unwrap(), r#"{"x":[1,"y"]}"#);
    }

    fn template(name: &str, output_path: &str, body: &str, scope: &str) -> TemplateInput {
        TemplateInput { name: name.into(), output_path: output_path.into(), body: body.into(), scope: scope.into() }
    }

    #[test]
    fn every_escape_is_refused_with_the_template_name() {
        let context = json!({ "models": [{ "singular": "../../etc" }], "application": { "slug": "/abs" } });
        let escapes = [
            template("up", "../outside.txt", "", "once"),
            template("deep", "src/../../outside.txt", "", "once"),
            template("absolute", "/etc/passwd", "", "once"),
            template("from-data", "{{ application.slug }}/x", "", "once"),
            template("per-model", "src/{{ model.singular }}.rs", "", "per_model"),
            template("empty", "{{ '' }}", "", "once"),
            template("backslash", "..\\x", "", "once"),
        ];
        for escape in escapes {
            let error = render_set(std::slice::from_ref(&escape), &context).unwrap_err();
            assert_eq!(error.template, escape.name, "{error}");
        }
    }

    #[test]
    fn per_model_templates_render_once_per_model() {
        let context = json!({ "models": [{ "singular": "invoice" }, { "singular": "customer" }], "application": {} });
        let files = render_set(
            &[template("module", "src/{{ model.singular }}.rs", "// {{ model.singular }}", "per_model")],
            &context,
        )
        .unwrap();
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(paths, ["src/invoice.rs", "src/customer.rs"]);
        assert_eq!(files[1].content, "// customer");
    }

    #[test]
    fn a_template_that_does_not_render_names_its_line() {
        let error = render_set(&[template("main", "main.rs", "fn main() {}\n{{ nothing.here }}", "once")], &json!({}))
            .unwrap_err();
        assert_eq!(error.template, "main");
        assert!(error.reason.starts_with("line 2"), "{error}");
    }

    #[test]
    fn two_templates_writing_one_path_are_refused() {
        let error = render_set(&[template("a", "x.txt", "", "once"), template("b", "./x.txt", "", "once")], &json!({}))
            .unwrap_err();
        assert_eq!(error.template, "b");
    }
}
