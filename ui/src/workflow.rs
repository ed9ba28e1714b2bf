//! A workflow's trigger and actions as the designer edits them: the settings each action
//! kind takes (the server's names, from app-svc's `workflows::spec`), how a stored
//! setting reads in its input, and how what was typed becomes the `config` the server
//! takes. Checked here only as far as the input's own type goes (a number is a number,
//! JSON parses); the server checks every rule and names the setting it refuses as
//! `actions[i].config.<key>`, the key used here.

use kiln_proto::wkt::{Struct, Value, value::Kind};

/// Trigger kinds, in the order the designer offers them.
pub const TRIGGER_KINDS: [(&str, &str); 3] =
    [("manual", "Manual (Run now)"), ("on_event", "On an event"), ("schedule", "On a schedule")];

/// Action kinds, in the order the designer offers them.
pub const ACTION_KINDS: [(&str, &str); 6] = [
    ("http_request", "HTTP request"),
    ("send_webhook", "Send webhook"),
    ("create_record", "Create record"),
    ("update_record", "Update record"),
    ("script", "Script"),
    ("publish_event", "Publish event"),
];

/// How a setting is typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingInput {
    /// One line of text (a template).
    Text,
    /// A whole number.
    Number,
    /// Any JSON value, in a monospaced textarea.
    Json,
    /// JavaScript, in a monospaced textarea.
    Code,
    /// One of a few words.
    Choice(&'static [&'static str]),
}

/// One setting of an action kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub label: &'static str,
    pub input: SettingInput,
    pub required: bool,
    pub hint: &'static str,
}

const fn setting(
    key: &'static str,
    label: &'static str,
    input: SettingInput,
    required: bool,
    hint: &'static str,
) -> Setting {
    Setting { key, label, input, required, hint }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

const HTTP_REQUEST: &[Setting] = &[
    setting("method", "Method", SettingInput::Choice(METHODS), false, ""),
    setting(
        "url",
        "URL",
        SettingInput::Text,
        true,
        "http(s)://…; a template, e.g. https://example.com/{{ record.id }}",
    ),
    setting("headers", "Headers", SettingInput::Json, false, "a JSON object of header names and text values"),
    setting("body", "Body", SettingInput::Json, false, "JSON; its strings are templates"),
    setting("timeout_ms", "Timeout (ms)", SettingInput::Number, false, "1 to 30000; default 10000"),
];
const SEND_WEBHOOK: &[Setting] = &[
    setting("url", "URL", SettingInput::Text, true, "where the signed POST goes"),
    setting(
        "secret",
        "Signing secret",
        SettingInput::Text,
        false,
        "whsec_…; the webhook-signature header is made with it",
    ),
    setting("body", "Body", SettingInput::Json, false, "JSON; default: the run's context"),
    setting("timeout_ms", "Timeout (ms)", SettingInput::Number, false, "1 to 30000; default 10000"),
];
const CREATE_RECORD: &[Setting] = &[
    setting("model", "Model", SettingInput::Text, true, "the plural name, e.g. invoices"),
    setting(
        "record",
        "Record",
        SettingInput::Json,
        true,
        "a JSON object of the fields written; its strings are templates",
    ),
];
const UPDATE_RECORD: &[Setting] = &[
    setting("model", "Model", SettingInput::Text, true, "the plural name, e.g. invoices"),
    setting("id", "Record id", SettingInput::Text, true, "a template, e.g. {{ record.id }}"),
    setting("record", "Changes", SettingInput::Json, true, "a JSON object of the fields changed"),
];
const SCRIPT: &[Setting] = &[
    setting(
        "source",
        "Code",
        SettingInput::Code,
        true,
        "the body of a function of input, record, before, event; what it returns is the output",
    ),
    setting("timeout_ms", "Timeout (ms)", SettingInput::Number, false, "1 to 10000; default 1000"),
    setting("memory_mb", "Memory (MB)", SettingInput::Number, false, "1 to 64; default 16"),
];
const PUBLISH_EVENT: &[Setting] = &[
    setting("queue", "Queue", SettingInput::Text, true, "the queue the payload goes on"),
    setting("payload", "Payload", SettingInput::Json, false, "JSON; its strings are templates"),
];

/// The settings of action kind `kind` (none for a kind the UI does not know).
pub fn settings(kind: &str) -> &'static [Setting] {
    match kind {
        "http_request" => HTTP_REQUEST,
        "send_webhook" => SEND_WEBHOOK,
        "create_record" => CREATE_RECORD,
        "update_record" => UPDATE_RECORD,
        "script" => SCRIPT,
        "publish_event" => PUBLISH_EVENT,
        _ => &[],
    }
}

/// The setting `key` as action kind `kind` takes it, else as another kind does (a value
/// kept from before the kind changed reads the same way).
pub fn find_setting(kind: &str, key: &str) -> Option<&'static Setting> {
    settings(kind)
        .iter()
        .find(|s| s.key == key)
        .or_else(|| ACTION_KINDS.iter().flat_map(|(kind, _)| settings(kind)).find(|s| s.key == key))
}

/// Every setting key of every kind, once: an action keeps what was typed for each, so
/// switching its kind back and forth loses nothing.
pub fn all_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for (kind, _) in ACTION_KINDS {
        for s in settings(kind) {
            if !keys.contains(&s.key) {
                keys.push(s.key);
            }
        }
    }
    keys
}

/// A stored setting as its input shows it.
pub fn to_input(setting: &Setting, value: Option<&Value>) -> String {
    let Some(value) = value.filter(|v| !matches!(v.kind, None | Some(Kind::NullValue(_)))) else {
        return String::new();
    };
    match (setting.input, value.kind.as_ref()) {
        (SettingInput::Json, _) => crate::fields::to_pretty_json(value),
        (_, Some(Kind::StringValue(s))) => s.clone(),
        (_, Some(Kind::NumberValue(n))) if n.fract() == 0.0 => format!("{}", *n as i64),
        _ => crate::fields::to_pretty_json(value),
    }
}

/// What was typed for `setting` as the value the server takes (None: left out).
pub fn parse_setting(setting: &Setting, text: &str) -> Result<Option<Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return if setting.required { Err("is required".into()) } else { Ok(None) };
    }
    match setting.input {
        SettingInput::Number => {
            let n: f64 = trimmed.parse().map_err(|_| "must be a whole number".to_string())?;
            if n.fract() != 0.0 {
                return Err("must be a whole number".into());
            }
            Ok(Some(Value { kind: Some(Kind::NumberValue(n)) }))
        }
        SettingInput::Json => {
            serde_json::from_str::<Value>(trimmed).map(Some).map_err(|e| format!("must be JSON: {e}"))
        }
        // Code keeps its layout; a template its spaces.
        SettingInput::Code => Ok(Some(crate::fields::string(text))),
        SettingInput::Text | SettingInput::Choice(_) => Ok(Some(crate::fields::string(trimmed))),
    }
}

/// The config of an action of `kind` from what was typed (`value(key)`), or each setting
/// that is wrong, by key.
pub fn config(kind: &str, value: impl Fn(&str) -> String) -> Result<Struct, Vec<(String, String)>> {
    let mut config = Struct::default();
    let mut broken = Vec::new();
    for setting in settings(kind) {
        match parse_setting(setting, &value(setting.key)) {
            Ok(Some(v)) => {
                config.fields.insert(setting.key.to_string(), v);
            }
            Ok(None) => {}
            Err(why) => broken.push((setting.key.to_string(), why)),
        }
    }
    if broken.is_empty() { Ok(config) } else { Err(broken) }
}

/// Event kinds typed as a list separated by commas or spaces.
pub fn event_list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect()
}

/// A whole number typed for an action's retries or first wait; `default` when empty.
pub fn parse_count(text: &str, default: i32) -> Result<i32, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| "must be a whole number".to_string())
}

/// Whether the server's field error `field` is about what `prefix` names: the field
/// itself, or a part of it (`actions[1].config.record` covers `…record.amount`).
pub fn covers(prefix: &str, field: &str) -> bool {
    field == prefix || field.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> String {
        move |key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()).unwrap_or_default()
    }

    #[test]
    fn each_kind_offers_the_servers_setting_names() {
        let keys = |kind| settings(kind).iter().map(|s| s.key).collect::<Vec<_>>();
        assert_eq!(keys("http_request"), ["method", "url", "headers", "body", "timeout_ms"]);
        assert_eq!(keys("script"), ["source", "timeout_ms", "memory_mb"]);
        assert_eq!(keys("update_record"), ["model", "id", "record"]);
        assert!(keys("teleport").is_empty());
        let all = all_keys();
        assert!(all.contains(&"payload") && all.contains(&"secret"));
        assert_eq!(all.iter().filter(|k| **k == "url").count(), 1, "each key once");
    }

    #[test]
    fn typed_settings_become_the_config_and_empty_ones_are_left_out() {
        let config = config(
            "http_request",
            typed(&[
                ("method", "POST"),
                ("url", " https://example.com "),
                ("headers", r#"{"x-a": "1"}"#),
                ("timeout_ms", "2500"),
            ]),
        )
        .unwrap();
        let json = crate::fields::to_pretty_json(&Value { kind: Some(Kind::StructValue(config)) });
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back,
            serde_json::json!({ "method": "POST", "url": "https://example.com", "headers": { "x-a": "1" }, "timeout_ms": 2500 })
        );
    }

    #[test]
    fn a_setting_that_is_not_its_type_is_named_before_anything_is_sent() {
        let broken = config("script", typed(&[("timeout_ms", "1.5"), ("memory_mb", "lots")])).unwrap_err();
        let keys: Vec<&str> = broken.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["source", "timeout_ms", "memory_mb"]);
        assert_eq!(broken[0].1, "is required");
        let broken = config("create_record", typed(&[("model", "invoices"), ("record", "{,}")])).unwrap_err();
        assert!(broken[0].1.starts_with("must be JSON"), "{broken:?}");
    }

    #[test]
    fn stored_settings_fill_their_inputs() {
        let url = &HTTP_REQUEST[1];
        let timeout = &HTTP_REQUEST[4];
        let body = &HTTP_REQUEST[3];
        assert_eq!(to_input(url, Some(&crate::fields::string("https://x"))), "https://x");
        assert_eq!(to_input(timeout, Some(&Value { kind: Some(Kind::NumberValue(2500.0)) })), "2500");
        assert_eq!(to_input(body, Some(&crate::fields::string("hi"))), "\"hi\"", "JSON settings show JSON");
        assert_eq!(to_input(url, None), "");
    }

    #[test]
    fn field_errors_find_their_input() {
        assert!(covers("actions[1].config.record", "actions[1].config.record.amount"));
        assert!(covers("actions[1].config.record", "actions[1].config.record"));
        assert!(covers("trigger.events", "trigger.events"));
        assert!(!covers("actions[1].config.record", "actions[1].config.records"));
        assert!(!covers("actions[1]", "actions[10].name"));
        assert_eq!(
            event_list("entity.created, entity.updated\nbuild.*"),
            ["entity.created", "entity.updated", "build.*"]
        );
        assert_eq!(parse_count("", 1000), Ok(1000));
        assert_eq!(parse_count("3", 0), Ok(3));
        assert!(parse_count("-1", 0).is_err());
    }
}
