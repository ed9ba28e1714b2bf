//! A workflow's trigger and actions as stored (the `trigger` and `actions` JSON of a
//! `workflows` record), read into types, and every rule they must meet. The rules run
//! when a workflow is saved, on every way in (WorkflowService, EntityService, the
//! `/workflows` routes), so a workflow that saved is one that can run: its cron parses,
//! its condition and scripts compile, its templates are tera, its settings are in range.

use std::time::Duration;

use croner::{
    Cron,
    parser::{CronParser, Seconds},
};
use kiln_common::{error::FieldViolation, records::names, templating};
use serde_json::{Map, Value};

use super::sandbox::{self, Limits};

/// At most this many actions a workflow.
pub const MAX_ACTIONS: usize = 50;
/// At most this many retries an action.
pub const MAX_RETRIES: u32 = 10;
/// The longest first wait before a retry.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// The longest an HTTP request (or webhook) may take.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 30_000;
/// The longest a script may run.
pub const MAX_SCRIPT_TIMEOUT_MS: u64 = 10_000;
/// The most memory a script may use.
pub const MAX_SCRIPT_MEMORY_MB: u64 = 64;

/// The action kinds, in the order the designer offers them.
pub const ACTION_KINDS: &[&str] =
    &["http_request", "send_webhook", "create_record", "update_record", "script", "publish_event"];

/// A whole number of a setting. Settings that came through a protobuf Struct hold every
/// number as a double, so 200.0 is 200.
pub fn whole(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 9_007_199_254_740_991.0).map(|f| f as u64)
    })
}

/// What starts a workflow.
#[derive(Debug, Clone)]
pub enum Trigger {
    Manual,
    OnEvent { events: Vec<String>, model: Option<String>, condition: Option<String> },
    Schedule { cron: Box<Cron>, expression: String },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::OnEvent { .. } => "on_event",
            Trigger::Schedule { .. } => "schedule",
        }
    }

    /// Whether an event of `kind` about `subject` is one this trigger listens for (its
    /// condition aside).
    pub fn listens_for(&self, kind: &str, subject: &str) -> bool {
        let Trigger::OnEvent { events, model, .. } = self else { return false };
        matches_any(events, kind) && model.as_deref().is_none_or(|model| model == subject)
    }
}

/// Whether an event of `kind` is one `patterns` name (`entity.created`, or `entity.*` for
/// every event of a subject).
pub fn matches_any(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|pattern| match pattern.strip_suffix(".*") {
        Some(prefix) => kind.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
        None => pattern == kind,
    })
}

/// One action, with its settings still as JSON (templates are rendered at run time).
#[derive(Debug, Clone)]
pub struct ActionSpec {
    pub name: String,
    pub kind: String,
    pub config: Map<String, Value>,
    pub retries: u32,
    pub backoff: Duration,
}

impl ActionSpec {
    /// A whole-number setting, or its default.
    pub fn number(&self, key: &str, default: u64) -> u64 {
        self.config.get(key).and_then(whole).unwrap_or(default)
    }

    /// A script's limits, from its settings.
    pub fn script_limits(&self) -> Limits {
        Limits {
            time: Duration::from_millis(self.number("timeout_ms", 1_000)),
            memory_bytes: (self.number("memory_mb", 16) as usize) << 20,
        }
    }

    /// An HTTP request's timeout, from its settings.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_millis(self.number("timeout_ms", 10_000))
    }
}

/// A workflow's trigger and actions, read and checked.
#[derive(Debug, Clone)]
pub struct WorkflowSpec {
    pub trigger: Trigger,
    pub actions: Vec<ActionSpec>,
}

/// A stored `on_event` trigger as it was saved, read without checking it again (its
/// rules held when it was saved): for the event path, which must not compile the
/// condition once per event. `None` for another kind of trigger.
pub fn stored_on_event(trigger: &Value) -> Option<Trigger> {
    if trigger.get("kind").and_then(Value::as_str) != Some("on_event") {
        return None;
    }
    let text = |key: &str| trigger.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let events = match trigger.get("events") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Some(Trigger::OnEvent {
        events,
        model: text("model").map(str::to_string),
        condition: text("condition").map(str::to_string),
    })
}

/// Parses a cron expression the way schedules read it: five fields, or six with seconds
/// first; in UTC.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|e| format!("is not a cron expression: {e}"))
}

/// `trigger` and `actions` as a workflow record holds them, or every rule they break.
pub fn parse(trigger: &Value, actions: &Value) -> Result<WorkflowSpec, Vec<FieldViolation>> {
    let mut broken = Vec::new();
    let trigger = parse_trigger(trigger, &mut broken);
    let actions = parse_actions(actions, &mut broken);
    match trigger {
        Some(trigger) if broken.is_empty() => Ok(WorkflowSpec { trigger, actions }),
        _ => Err(broken),
    }
}

fn parse_trigger(trigger: &Value, broken: &mut Vec<FieldViolation>) -> Option<Trigger> {
    let Some(trigger) = trigger.as_object() else {
        broken.push(FieldViolation::new("trigger", "must be an object with a kind"));
        return None;
    };
    let text = |key: &str| trigger.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let known: &[&str] = match text("kind") {
        Some("manual") => &["kind"],
        Some("on_event") => &["kind", "events", "model", "condition"],
        Some("schedule") => &["kind", "cron"],
        Some(other) => {
            broken.push(FieldViolation::new(
                "trigger.kind",
                format!("`{other}` is not a trigger; use manual, on_event or schedule"),
            ));
            return None;
        }
        None => {
            broken.push(FieldViolation::new("trigger.kind", "is required: manual, on_event or schedule"));
            return None;
        }
    };
    for key in trigger.keys().filter(|key| !known.contains(&key.as_str())) {
        // Empty leftovers of another kind (the designer sends every field) are fine.
        if !matches!(&trigger[key], Value::Null | Value::String(_) | Value::Array(_))
            || trigger[key].as_str().is_some_and(|s| !s.is_empty())
            || trigger[key].as_array().is_some_and(|a| !a.is_empty())
        {
            broken.push(FieldViolation::new(format!("trigger.{key}"), "is not a setting of this trigger"));
        }
    }
    match text("kind") {
        Some("manual") => Some(Trigger::Manual),
        Some("schedule") => {
            let Some(expression) = text("cron") else {
                broken.push(FieldViolation::new("trigger.cron", "is required for a schedule, e.g. 0 9 * * 1-5"));
                return None;
            };
            match parse_cron(expression) {
                Ok(cron) => Some(Trigger::Schedule { cron: Box::new(cron), expression: expression.to_string() }),
                Err(why) => {
                    broken.push(FieldViolation::new("trigger.cron", why));
                    None
                }
            }
        }
        _ => {
            let read = stored_on_event(&Value::Object(trigger.clone()))?;
            let Trigger::OnEvent { events, model, condition } = &read else { return None };
            if events.is_empty() {
                broken.push(FieldViolation::new("trigger.events", "name at least one event, e.g. entity.created"));
            }
            for event in events {
                if let Some(why) = event_pattern_error(event) {
                    broken.push(FieldViolation::new("trigger.events", format!("`{event}` {why}")));
                }
            }
            if let Some(model) = model
                && let Err(e) = names::plural_ref(model)
            {
                broken.push(FieldViolation::new("trigger.model", format!("is not a model's plural name: {e}")));
            }
            if let Some(why) = condition.as_deref().and_then(sandbox::condition_error) {
                broken.push(FieldViolation::new("trigger.condition", why));
            }
            Some(read)
        }
    }
}

/// Why `pattern` names no event: events are `<subject>.<what>` of lowercase words, and
/// `<subject>.*` names all of a subject's.
pub fn event_pattern_error(pattern: &str) -> Option<&'static str> {
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    match pattern.split_once('.') {
        Some((subject, what)) if word(subject) && (what == "*" || word(what)) => None,
        _ => Some("is not an event kind like entity.created or entity.*"),
    }
}

fn parse_actions(actions: &Value, broken: &mut Vec<FieldViolation>) -> Vec<ActionSpec> {
    let Some(items) = actions.as_array() else {
        broken.push(FieldViolation::new("actions", "must be a list of actions"));
        return Vec::new();
    };
    if items.len() > MAX_ACTIONS {
        broken.push(FieldViolation::new("actions", format!("at most {MAX_ACTIONS} actions")));
    }
    let mut names_seen = std::collections::HashSet::new();
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let at = format!("actions[{index}]");
            let action = parse_action(item, &at, broken)?;
            if !names_seen.insert(action.name.clone()) {
                broken.push(FieldViolation::new(
                    format!("{at}.name"),
                    format!("`{}` names another action too; later actions read outputs by name", action.name),
                ));
            }
            Some(action)
        })
        .collect()
}

fn parse_action(item: &Value, at: &str, broken: &mut Vec<FieldViolation>) -> Option<ActionSpec> {
    let Some(action) = item.as_object() else {
        broken.push(FieldViolation::new(at, "must be an object with a name, kind and config"));
        return None;
    };
    let before = broken.len();
    let name = action.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() || name.len() > 100 {
        broken.push(FieldViolation::new(format!("{at}.name"), "is required, at most 100 characters"));
    }
    let kind = action.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !ACTION_KINDS.contains(&kind) {
        broken.push(FieldViolation::new(
            format!("{at}.kind"),
            format!("`{kind}` is not an action; use one of {}", ACTION_KINDS.join(", ")),
        ));
    }
    let config = match action.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(config)) => config.clone(),
        Some(_) => {
            broken.push(FieldViolation::new(format!("{at}.config"), "must be an object"));
            Map::new()
        }
    };
    let number = |key: &str, max: u64, default: u64, broken: &mut Vec<FieldViolation>| match action.get(key) {
        None | Some(Value::Null) => default,
        Some(value) => match whole(value) {
            Some(n) if n <= max => n,
            _ => {
                broken.push(FieldViolation::new(format!("{at}.{key}"), format!("is a whole number from 0 to {max}")));
                default
            }
        },
    };
    let retries = number("retries", u64::from(MAX_RETRIES), 0, broken) as u32;
    let backoff = Duration::from_millis(number("backoff_ms", MAX_BACKOFF_MS, 1_000, broken));
    check_config(kind, &config, &format!("{at}.config"), broken);
    (broken.len() == before).then(|| ActionSpec {
        name: name.to_string(),
        kind: kind.to_string(),
        config,
        retries,
        backoff,
    })
}

/// The rules of each kind's settings; every string in them must be a tera template.
fn check_config(kind: &str, config: &Map<String, Value>, at: &str, broken: &mut Vec<FieldViolation>) {
    let mut violation = |key: &str, why: String| broken.push(FieldViolation::new(format!("{at}.{key}"), why));
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let known: &[&str] = match kind {
        "publish_event" => &["queue", "payload"],
        "http_request" => &["method", "url", "headers", "body", "timeout_ms"],
        "send_webhook" => &["url", "secret", "body", "timeout_ms"],
        "create_record" => &["model", "record"],
        "update_record" => &["model", "id", "record"],
        "script" => &["source", "timeout_ms", "memory_mb"],
        _ => return,
    };
    for key in config.keys().filter(|key| !known.contains(&key.as_str())) {
        violation(key, format!("is not a setting of {kind}; it has {}", known.join(", ")));
    }
    let required: &[(&str, &str)] = match kind {
        "publish_event" => &[("queue", "the queue the payload goes on")],
        "http_request" | "send_webhook" => &[("url", "an http:// URL (a template)")],
        "create_record" => &[("model", "the plural name of the model written")],
        "update_record" => &[
            ("model", "the plural name of the model written"),
            ("id", "the id of the record changed (a template, e.g. {{ record.id }})"),
        ],
        _ => &[],
    };
    for (key, what) in required {
        if text(key).is_none() {
            violation(key, format!("is required: {what}"));
        }
    }
    match kind {
        "http_request" | "send_webhook" => {
            if let Some(url) = text("url").filter(|url| !url.contains("{{"))
                && let Err(why) = super::outgoing::url_error(url)
            {
                violation("url", why);
            }
        }
        "create_record" | "update_record" => {
            if let Some(model) = text("model")
                && !model.contains("{{")
                && let Err(e) = names::plural_ref(model)
            {
                violation("model", format!("is not a model's plural name: {e}"));
            }
            if !config.get("record").is_some_and(Value::is_object) {
                violation("record", "is required: the fields written, an object whose strings are templates".into());
            }
        }
        "script" => match text("source") {
            None => violation("source", "is required: the body of a function that returns the output".into()),
            Some(source) => {
                if let Some(why) = sandbox::script_error(source) {
                    violation("source", why);
                }
            }
        },
        _ => {}
    }
    if let Some(method) = config.get("method")
        && !method.as_str().is_some_and(|m| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m))
    {
        violation("method", "is one of GET, POST, PUT, PATCH, DELETE".into());
    }
    if let Some(headers) = config.get("headers")
        && !headers.as_object().is_some_and(|h| h.values().all(Value::is_string))
    {
        violation("headers", "is an object of header names and text values".into());
    }
    let limits: &[(&str, u64, u64)] = match kind {
        "script" => &[("timeout_ms", 1, MAX_SCRIPT_TIMEOUT_MS), ("memory_mb", 1, MAX_SCRIPT_MEMORY_MB)],
        "http_request" | "send_webhook" => &[("timeout_ms", 1, MAX_HTTP_TIMEOUT_MS)],
        _ => &[],
    };
    for (key, min, max) in limits {
        if let Some(value) = config.get(*key)
            && !whole(value).is_some_and(|n| (*min..=*max).contains(&n))
        {
            violation(key, format!("is a whole number from {min} to {max}"));
        }
    }
    // Scripts are JavaScript, not templates.
    if kind != "script" {
        for (key, value) in config {
            template_errors(value, &format!("{at}.{key}"), broken);
        }
    }
}

/// A violation for every string in `value` that is not a tera template.
fn template_errors(value: &Value, at: &str, broken: &mut Vec<FieldViolation>) {
    match value {
        Value::String(text) => {
            if let Some(why) = templating::syntax_error(at, text) {
                broken.push(FieldViolation::new(at, why));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                template_errors(item, &format!("{at}[{index}]"), broken);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                template_errors(item, &format!("{at}.{key}"), broken);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(trigger: Value, actions: Value) -> Vec<String> {
        match parse(&trigger, &actions) {
            Ok(_) => Vec::new(),
            Err(broken) => broken.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn a_sound_workflow_parses() {
        let spec = parse(
            &json!({ "kind": "on_event", "events": ["entity.created"], "model": "invoices", "condition": "amount > 1000" }),
            &json!([
                { "name": "notify", "kind": "http_request", "config": { "url": "https://example.com/{{ record.id }}", "body": { "amount": "{{ record.amount }}" } }, "retries": 2 },
                { "name": "transform", "kind": "script", "config": { "source": "return { total: record.amount * 2 };" } },
            ]),
        )
        .unwrap();
        assert_eq!(spec.trigger.kind(), "on_event");
        assert!(spec.trigger.listens_for("entity.created", "invoices"));
        assert!(!spec.trigger.listens_for("entity.created", "customers"));
        assert!(!spec.trigger.listens_for("entity.updated", "invoices"));
        assert_eq!((spec.actions[0].retries, spec.actions[0].backoff), (2, Duration::from_secs(1)));
    }

    #[test]
    fn wildcards_match_one_subjects_events() {
        let Ok(WorkflowSpec { trigger, .. }) = parse(&json!({ "kind": "on_event", "events": ["build.*"] }), &json!([]))
        else {
            panic!("parses")
        };
        assert!(trigger.listens_for("build.failed", "builds"));
        assert!(!trigger.listens_for("buildx.failed", "builds"));
    }

    #[test]
    fn every_broken_setting_is_named() {
        assert_eq!(fields(json!({ "kind": "sometimes" }), json!([])), ["trigger.kind"]);
        assert_eq!(fields(json!({ "kind": "schedule", "cron": "every day" }), json!([])), ["trigger.cron"]);
        assert_eq!(
            fields(json!({ "kind": "on_event", "events": ["created"], "condition": "amount >" }), json!([])),
            ["trigger.events", "trigger.condition"]
        );
        let actions = json!([
            { "name": "a", "kind": "teleport" },
            { "name": "b", "kind": "http_request", "config": { "url": "ftp://x", "timeout_ms": 99999 } },
            { "name": "c", "kind": "script", "config": { "source": "return (" }, "retries": 11 },
            { "name": "d", "kind": "update_record", "config": { "model": "invoices", "record": { "x": "{{ oops" } } },
            { "name": "d", "kind": "publish_event", "config": { "queue": "q", "colour": "red" } },
        ]);
        assert_eq!(
            fields(json!({ "kind": "manual" }), actions),
            [
                "actions[0].kind",
                "actions[1].config.url",
                "actions[1].config.timeout_ms",
                "actions[2].retries",
                "actions[2].config.source",
                "actions[3].config.id",
                "actions[3].config.record.x",
                "actions[4].config.colour",
            ]
        );
    }

    #[test]
    fn schedules_take_five_or_six_fields() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("*/2 * * * * *").is_ok());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
