//! A model's fields as a form: which input each field type gets, what a record's value
//! looks like in that input, and the client-side check of the field's rules before the
//! record goes to the server. The rules are the server's own (`kiln_proto::rules`), so a
//! message reads the same wherever it came from; the server checks again.

use kiln_proto::{
    v1::Field,
    wkt::{Value, value::Kind},
};

/// The largest integer a JSON number carries exactly; beyond it integers travel as strings.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The input a field is edited with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Text,
    Email,
    Url,
    /// `step` is `1` for integers, `any` for decimals.
    Number {
        step: &'static str,
    },
    Checkbox,
    Date,
    DateTime,
    Select(Vec<String>),
    /// The id of a record of the model named `target` (plural), picked by search.
    Relation {
        target: String,
    },
    TextArea,
    Json,
}

pub fn input_for(field: &Field) -> Input {
    match field.r#type.as_str() {
        "long_text" => Input::TextArea,
        "integer" => Input::Number { step: "1" },
        "decimal" => Input::Number { step: "any" },
        "boolean" => Input::Checkbox,
        "date" => Input::Date,
        "datetime" => Input::DateTime,
        "email" => Input::Email,
        "url" => Input::Url,
        "enum" => Input::Select(field.enum_values.clone()),
        "json" => Input::Json,
        "relation" => Input::Relation { target: field.relation.as_ref().map(|r| r.target.clone()).unwrap_or_default() },
        _ => Input::Text,
    }
}

/// A stored value as its input shows it (a checkbox's is `true` or `false`).
pub fn to_input(field: &Field, value: Option<&Value>) -> String {
    let Some(kind) = value.and_then(|v| v.kind.as_ref()) else {
        return if field.r#type == "boolean" { "false".into() } else { String::new() };
    };
    match (kind, field.r#type.as_str()) {
        (Kind::NullValue(_), "boolean") => "false".into(),
        (Kind::NullValue(_), _) => String::new(),
        (Kind::BoolValue(b), _) => b.to_string(),
        (Kind::NumberValue(n), _) => format_number(*n),
        // datetime-local has no zone and no seconds' fraction: the UI works in UTC.
        (Kind::StringValue(s), "datetime") => s.trim_end_matches('Z').chars().take(19).collect(),
        (Kind::StringValue(s), _) => s.clone(),
        (Kind::StructValue(_) | Kind::ListValue(_), _) => value.map(to_pretty_json).unwrap_or_default(),
    }
}

/// A value as one line of text, for lists and details.
pub fn display(field_type: &str, value: Option<&Value>) -> String {
    match value.and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => String::new(),
        Some(Kind::BoolValue(b)) => if *b { "yes" } else { "no" }.into(),
        Some(Kind::NumberValue(n)) => format_number(*n),
        Some(Kind::StringValue(s)) if field_type == "datetime" => s.replace('T', " "),
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::StructValue(_) | Kind::ListValue(_)) => value.map(to_json).unwrap_or_default(),
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { n.to_string() }
}

/// JSON as people write it: whole numbers without a fraction (a Struct holds every number
/// as a double, so `1` would come back as `1.0`).
fn plain_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value.kind.as_ref() {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 => Json::from(*n as i64),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(plain_json).collect()),
        Some(Kind::StructValue(object)) => {
            Json::Object(object.fields.iter().map(|(k, v)| (k.clone(), plain_json(v))).collect())
        }
    }
}

fn to_json(value: &Value) -> String {
    plain_json(value).to_string()
}

/// `value` as JSON laid out two spaces to a level, whole numbers without a fraction.
pub fn to_pretty_json(value: &Value) -> String {
    serde_json::to_string_pretty(&plain_json(value)).unwrap_or_default()
}

/// What is wrong with `text` as the value of a JSON field, with where (line and column);
/// `None` when it is JSON, or empty.
pub fn json_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(text).err().map(|e| format!("not JSON: {e}"))
}

/// `text` laid out two spaces to a level, keys sorted as a record stores them; `None` when
/// it is not JSON (it is left as it is).
pub fn format_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    serde_json::to_string_pretty(&value).ok()
}

/// Checks what was typed for `field` against its rules, and makes the value the API takes
/// (None: leave the field empty). The error is the server's wording.
pub fn parse(field: &Field, input: &str) -> Result<Option<Value>, String> {
    let text = input.trim();
    let kind = field.r#type.as_str();
    if kind == "boolean" {
        return Ok(Some(bool_value(input == "true")));
    }
    if text.is_empty() && !matches!(kind, "text" | "long_text") {
        return if field.required { Err("is required".into()) } else { Ok(None) };
    }
    let value = match kind {
        "integer" => {
            let n: i64 = text.parse().map_err(|_| "must be a whole number".to_string())?;
            check_bounds(field, n as f64)?;
            if n.abs() <= MAX_SAFE_INTEGER { number(n as f64) } else { string(text) }
        }
        "decimal" => {
            let n: f64 = text.parse().ok().filter(|_| is_decimal(text)).ok_or("must be a decimal number")?;
            check_bounds(field, n)?;
            string(text)
        }
        "date" => {
            if !is_date(text) {
                return Err("must be a date like 2026-01-31".into());
            }
            string(text)
        }
        "datetime" => {
            let full = if text.len() == 16 { format!("{text}:00Z") } else { format!("{text}Z") };
            if !(is_date(&full[..full.len().min(10)]) && full.len() == 20 && full.as_bytes()[10] == b'T') {
                return Err("must be an RFC 3339 time like 2026-01-31T09:30:00Z".into());
            }
            string(&full)
        }
        "json" => serde_json::from_str::<Value>(text).map_err(|e| format!("must be JSON: {e}"))?,
        "uuid" | "relation" => {
            if !is_uuid(text) {
                return Err("must be a UUID".into());
            }
            string(text)
        }
        _ => {
            check_text(field, input)?;
            if input.is_empty() && !field.required {
                return Ok(None);
            }
            string(input)
        }
    };
    Ok(Some(value))
}

/// The field's text rules, as the server checks them (one definition: `kiln_proto::rules`).
fn check_text(field: &Field, text: &str) -> Result<(), String> {
    if text.is_empty() && !field.required {
        return Ok(());
    }
    let rules = kiln_proto::rules::TextRules {
        field_type: field.r#type.as_str(),
        required: field.required,
        min_length: field.min_length,
        max_length: field.max_length,
        pattern: (!field.pattern.is_empty()).then_some(field.pattern.as_str()),
        enum_values: &field.enum_values,
    };
    kiln_proto::rules::check_text(rules, text, |text| matches_pattern(&field.pattern, text))
}

fn check_bounds(field: &Field, n: f64) -> Result<(), String> {
    kiln_proto::rules::check_bounds(field.min, field.max, n)
}

/// The pattern is the server's (Rust regex) syntax; the browser's RegExp agrees on the
/// patterns people write for fields. Natively (in tests) the server has the last word.
#[cfg(target_arch = "wasm32")]
fn matches_pattern(pattern: &str, text: &str) -> bool {
    js_sys::RegExp::new(pattern, "u").test(text)
}

#[cfg(not(target_arch = "wasm32"))]
fn matches_pattern(_pattern: &str, _text: &str) -> bool {
    true
}

fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    !whole.is_empty() && whole.chars().all(|c| c.is_ascii_digit()) && fraction.chars().all(|c| c.is_ascii_digit())
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let number = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_digit());
    if parts.len() != 3 || !number(parts[0], 4) || !number(parts[1], 2) || !number(parts[2], 2) {
        return false;
    }
    let (month, day): (u32, u32) = (parts[1].parse().unwrap_or(0), parts[2].parse().unwrap_or(0));
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn string(text: &str) -> Value {
    Value { kind: Some(Kind::StringValue(text.to_string())) }
}

fn number(n: f64) -> Value {
    Value { kind: Some(Kind::NumberValue(n)) }
}

fn bool_value(b: bool) -> Value {
    Value { kind: Some(Kind::BoolValue(b)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_proto::v1::Relation;

    fn field(kind: &str) -> Field {
        Field { name: "f".into(), r#type: kind.into(), ..Field::default() }
    }

    #[test]
    fn each_field_type_gets_its_input() {
        let mut status = field("enum");
        status.enum_values = vec!["draft".into(), "sent".into()];
        let mut customer = field("relation");
        customer.relation = Some(Relation { target: "customers".into(), ..Relation::default() });
        let inputs: Vec<Input> = ["integer", "decimal", "date", "datetime", "boolean", "long_text", "json", "text"]
            .into_iter()
            .map(|kind| input_for(&field(kind)))
            .collect();
        assert_eq!(
            inputs,
            [
                Input::Number { step: "1" },
                Input::Number { step: "any" },
                Input::Date,
                Input::DateTime,
                Input::Checkbox,
                Input::TextArea,
                Input::Json,
                Input::Text
            ]
        );
        assert_eq!(input_for(&status), Input::Select(vec!["draft".into(), "sent".into()]));
        assert_eq!(input_for(&customer), Input::Relation { target: "customers".into() });
    }

    #[test]
    fn the_rules_are_checked_in_the_servers_words() {
        let mut number = field("text");
        number.required = true;
        number.max_length = Some(5);
        assert_eq!(parse(&number, " ").unwrap_err(), "is required");
        assert_eq!(parse(&number, "INV-123").unwrap_err(), "must be at most 5 characters");
        assert_eq!(parse(&number, "INV-1").unwrap(), Some(string("INV-1")));

        let mut amount = field("decimal");
        amount.min = Some(0.0);
        assert_eq!(parse(&amount, "-1").unwrap_err(), "must be at least 0");
        assert_eq!(parse(&amount, "12.5x").unwrap_err(), "must be a decimal number");
        assert_eq!(parse(&amount, "12.50").unwrap(), Some(string("12.50")), "decimals keep their digits");
        assert_eq!(parse(&amount, "").unwrap(), None, "an optional field may stay empty");

        let mut status = field("enum");
        status.enum_values = vec!["draft".into(), "sent".into()];
        assert_eq!(parse(&status, "paid").unwrap_err(), "must be one of draft, sent");
        assert_eq!(parse(&field("email"), "ada").unwrap_err(), "must be an email address");
        assert_eq!(parse(&field("url"), "ftp://x").unwrap_err(), "must be an http or https URL");
        assert_eq!(parse(&field("date"), "2026-13-01").unwrap_err(), "must be a date like 2026-01-31");
        assert_eq!(parse(&field("uuid"), "nope").unwrap_err(), "must be a UUID");
        assert!(parse(&field("json"), "{").unwrap_err().starts_with("must be JSON"));
    }

    #[test]
    fn values_travel_as_the_api_takes_them() {
        assert_eq!(parse(&field("integer"), "42").unwrap(), Some(number(42.0)));
        assert_eq!(
            parse(&field("integer"), "9007199254740993").unwrap(),
            Some(string("9007199254740993")),
            "beyond 2^53 an integer travels as digits"
        );
        assert_eq!(parse(&field("boolean"), "true").unwrap(), Some(bool_value(true)));
        assert_eq!(parse(&field("datetime"), "2026-01-31T09:30").unwrap(), Some(string("2026-01-31T09:30:00Z")));
        let json = parse(&field("json"), r#"{"a":[1,true,2.5]}"#).unwrap().unwrap();
        assert_eq!(to_input(&field("json"), Some(&json)), "{\n  \"a\": [\n    1,\n    true,\n    2.5\n  ]\n}");
        assert_eq!(display("json", Some(&json)), r#"{"a":[1,true,2.5]}"#, "whole numbers stay whole");
    }

    #[test]
    fn the_json_editor_says_where_the_text_breaks_and_lays_it_out() {
        assert_eq!(json_problem(""), None, "an empty field is not an error here (required says so)");
        assert_eq!(json_problem(r#"{"a": 1}"#), None);
        let problem = json_problem("{\n  \"a\": 1,\n}").unwrap();
        assert!(problem.contains("line 3 column 1"), "{problem}");
        assert_eq!(
            format_json(r#"{"b":[1,{"c":null}]}"#).unwrap(),
            "{\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}"
        );
        assert_eq!(format_json("{"), None);
    }

    #[test]
    fn stored_values_fill_their_inputs() {
        assert_eq!(to_input(&field("integer"), Some(&number(7.0))), "7");
        assert_eq!(to_input(&field("boolean"), None), "false");
        assert_eq!(to_input(&field("datetime"), Some(&string("2026-01-31T09:30:00.123456Z"))), "2026-01-31T09:30:00");
        assert_eq!(display("boolean", Some(&bool_value(true))), "yes");
        assert_eq!(display("datetime", Some(&string("2026-01-31T09:30:00Z"))), "2026-01-31 09:30:00Z");
    }
}
