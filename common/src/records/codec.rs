//! The record codec: the one place a record's values change form. A value as the wire
//! carries it (the JSON of REST, the `Struct` of gRPC and grpc-web, both read here as
//! JSON) is checked against its field's spec and turned into a typed SQL value (every
//! failure reported per field); a row is read back into the wire form by field type.
//!
//! The wire forms, the same on every protocol:
//! - integer: a number while within ±(2^53 − 1), the range a double (and so a `Struct`
//!   number or a JavaScript number) holds exactly; beyond it, a string of digits. Either
//!   form is accepted on input; a number past that range is refused, not rounded.
//! - decimal: a string, e.g. `"10.50"`, so no protocol turns it into a double. Numbers
//!   are accepted on input. PostgreSQL stores it as `numeric` and keeps its scale;
//!   SQLite as a double (`REAL`), read back in its shortest form.
//! - date `"2026-01-31"`, datetime RFC 3339 in UTC, uuid and relation as strings, json
//!   as itself, the rest as their JSON type.

use crate::{
    db::Id,
    error::FieldViolation,
    limits::{MAX_SAFE_INTEGER, is_safe_integer},
};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::records::fields::{Dialect, FieldSpec, FieldType};

/// A value ready to bind, typed so that even NULL has the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null(FieldType),
    Text(String),
    Int(i64),
    /// A decimal's text, exact (see [`SqlValue::placeholder`]).
    Decimal(String),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Json(Value),
    Uuid(Id),
}

impl SqlValue {
    /// The placeholder for this value as parameter `n`. A decimal is bound as its text
    /// and cast by the database, so PostgreSQL's `numeric` keeps every digit; SQLite's
    /// numeric affinity converts the text itself.
    pub fn placeholder(&self, n: usize, dialect: Dialect) -> String {
        match (self, dialect) {
            (SqlValue::Decimal(_) | SqlValue::Null(FieldType::Decimal), Dialect::Postgres) => {
                format!("CAST(${n} AS numeric)")
            }
            _ => format!("${n}"),
        }
    }
}

/// Binds each value to a query, in order; works on either dialect's query type.
#[macro_export]
macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            use $crate::records::{codec::SqlValue, fields::FieldType};
            query = match value {
                SqlValue::Text(v) => query.bind(v.clone()),
                SqlValue::Int(v) => query.bind(*v),
                SqlValue::Decimal(v) => query.bind(v.clone()),
                SqlValue::Bool(v) => query.bind(*v),
                SqlValue::Date(v) => query.bind(*v),
                SqlValue::DateTime(v) => query.bind(*v),
                SqlValue::Json(v) => query.bind(sqlx::types::Json(v.clone())),
                SqlValue::Uuid(v) => query.bind(*v),
                SqlValue::Null(ty) => match ty {
                    FieldType::Integer => query.bind(None::<i64>),
                    FieldType::Decimal => query.bind(None::<String>),
                    FieldType::Boolean => query.bind(None::<bool>),
                    FieldType::Date => query.bind(None::<chrono::NaiveDate>),
                    FieldType::DateTime => query.bind(None::<chrono::DateTime<chrono::Utc>>),
                    FieldType::Json => query.bind(None::<sqlx::types::Json<serde_json::Value>>),
                    FieldType::Uuid | FieldType::Relation => query.bind(None::<$crate::db::Id>),
                    _ => query.bind(None::<String>),
                },
            };
        }
        query
    }};
}

/// Whether a write replaces the record or changes some of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Create,
    Replace,
    Patch,
}

/// The columns every record has; clients may send them back, but never change them.
pub const SYSTEM_COLUMNS: &[&str] = &["id", "created_at", "updated_at", "created_by"];

/// Checks `record` against `specs`: returns the (field, value) pairs to write.
pub fn check_record(
    specs: &[FieldSpec],
    record: &Map<String, Value>,
    write: Write,
) -> Result<Vec<(usize, SqlValue)>, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    for key in record.keys() {
        if !SYSTEM_COLUMNS.contains(&key.as_str()) && !specs.iter().any(|s| s.name.as_str() == key) {
            violations.push(FieldViolation::new(key, "is not a field of this model"));
        }
    }
    let mut values = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let given = record.get(spec.name.as_str());
        let value = match (given, write) {
            (None, Write::Patch) => continue,
            (None, _) => match &spec.field.default_value {
                Some(default) => serde_json::to_value(default).unwrap_or(Value::Null),
                None => Value::Null,
            },
            (Some(v), _) => v.clone(),
        };
        match check_value(spec, &value) {
            Ok(v) => values.push((i, v)),
            Err(why) => violations.push(FieldViolation::new(spec.name.as_str(), why)),
        }
    }
    if violations.is_empty() { Ok(values) } else { Err(violations) }
}

/// Checks one value; the error is the reason shown to the client.
pub fn check_value(spec: &FieldSpec, value: &Value) -> Result<SqlValue, String> {
    if value.is_null() {
        return if spec.required { Err("is required".into()) } else { Ok(SqlValue::Null(spec.ty)) };
    }
    let ty = spec.ty;
    let checked = match ty {
        FieldType::Text | FieldType::LongText | FieldType::Email | FieldType::Url | FieldType::Enum => {
            let Value::String(text) = value else { return Err("must be a string".into()) };
            check_text(spec, text)?;
            SqlValue::Text(text.clone())
        }
        FieldType::Integer => {
            let n = integer(value).ok_or_else(|| {
                format!("must be a whole number; beyond ±{MAX_SAFE_INTEGER} send it as a string of digits")
            })?;
            check_bounds(spec, n as f64)?;
            SqlValue::Int(n)
        }
        FieldType::Decimal => {
            let text = decimal(value).ok_or("must be a decimal number, like 10.50 or \"10.50\"")?;
            check_bounds(spec, text.parse::<f64>().map_err(|_| "must be a decimal number")?)?;
            SqlValue::Decimal(text)
        }
        FieldType::Boolean => SqlValue::Bool(value.as_bool().ok_or("must be true or false")?),
        FieldType::Date => {
            let text = value.as_str().ok_or("must be a date like 2026-01-31")?;
            SqlValue::Date(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| "must be a date like 2026-01-31")?)
        }
        FieldType::DateTime => {
            let text = value.as_str().ok_or("must be an RFC 3339 time like 2026-01-31T09:30:00Z")?;
            let time =
                DateTime::parse_from_rfc3339(text).map_err(|_| "must be an RFC 3339 time like 2026-01-31T09:30:00Z")?;
            SqlValue::DateTime(crate::db::truncate_time(time.with_timezone(&Utc)))
        }
        FieldType::Json => {
            if crate::limits::json_depth(value) > crate::limits::MAX_JSON_DEPTH {
                return Err(crate::limits::too_deep());
            }
            SqlValue::Json(value.clone())
        }
        FieldType::Uuid | FieldType::Relation => {
            let text = value.as_str().ok_or("must be a UUID")?;
            SqlValue::Uuid(Id(uuid::Uuid::parse_str(text).map_err(|_| "must be a UUID")?))
        }
    };
    Ok(checked)
}

/// An integer from a number held exactly, or from a string of digits.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().filter(|&n| is_safe_integer(n)).or_else(|| {
            n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64).map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Most digits a decimal may have.
const MAX_DECIMAL_DIGITS: usize = 38;

/// A decimal's text: from a finite number (its shortest form), or a string of an
/// optional sign, digits and an optional fraction, kept as written.
fn decimal(value: &Value) -> Option<String> {
    let text = match value {
        Value::Number(n) if n.is_f64() => n.as_f64().filter(|f| f.is_finite()).map(|f| f.to_string())?,
        Value::Number(n) => n.to_string(),
        Value::String(text) => text.trim().to_string(),
        _ => return None,
    };
    let unsigned = text.strip_prefix('-').unwrap_or(&text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(fraction) && whole.len() + fraction.len() <= MAX_DECIMAL_DIGITS).then_some(text)
}

fn check_text(spec: &FieldSpec, text: &str) -> Result<(), String> {
    let rules = kiln_proto::rules::TextRules {
        field_type: spec.field.r#type.as_str(),
        required: spec.required,
        min_length: spec.min_length,
        max_length: spec.max_length,
        pattern: spec.pattern.as_ref().map(regex::Regex::as_str),
        enum_values: &spec.enum_values,
    };
    kiln_proto::rules::check_text(rules, text, |text| spec.pattern.as_ref().is_none_or(|p| p.is_match(text)))
}

fn check_bounds(spec: &FieldSpec, n: f64) -> Result<(), String> {
    kiln_proto::rules::check_bounds(spec.min, spec.max, n)
}

/// A row of either dialect, read column by column into JSON.
pub trait RecordRow {
    /// A column of type `ty` as JSON.
    fn value(&self, column: &str, ty: FieldType) -> Result<Value, sqlx::Error>;
}

macro_rules! impl_record_row {
    ($row:ty, $decimals:expr) => {
        impl RecordRow for $row {
            fn value(&self, column: &str, ty: FieldType) -> Result<Value, sqlx::Error> {
                read_value(self, column, ty, $decimals)
            }
        }
    };
}

/// How a dialect's rows hold decimals.
#[derive(Clone, Copy)]
enum Decimals {
    /// `numeric`, selected as its exact text (see `CompiledModel::select_list`).
    Text,
    /// `REAL`, a double, written in its shortest form.
    Double,
}

impl_record_row!(sqlx::postgres::PgRow, Decimals::Text);
impl_record_row!(sqlx::sqlite::SqliteRow, Decimals::Double);

fn read_value<R>(row: &R, column: &str, ty: FieldType, decimals: Decimals) -> Result<Value, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    NaiveDate: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    sqlx::types::Json<Value>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Id: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let value = match ty {
        FieldType::Integer => row.try_get::<Option<i64>, _>(column)?.map(|n| match is_safe_integer(n) {
            true => Value::Number(n.into()),
            false => Value::String(n.to_string()),
        }),
        FieldType::Decimal => match decimals {
            Decimals::Text => row.try_get::<Option<String>, _>(column)?.map(Value::String),
            Decimals::Double => row.try_get::<Option<f64>, _>(column)?.map(|f| Value::String(f.to_string())),
        },
        FieldType::Boolean => row.try_get::<Option<bool>, _>(column)?.map(Value::Bool),
        FieldType::Date => row.try_get::<Option<NaiveDate>, _>(column)?.map(|d| Value::String(d.to_string())),
        FieldType::DateTime => row.try_get::<Option<DateTime<Utc>>, _>(column)?.map(|t| Value::String(rfc3339(t))),
        FieldType::Json => row.try_get::<Option<sqlx::types::Json<Value>>, _>(column)?.map(|j| j.0),
        FieldType::Uuid | FieldType::Relation => {
            row.try_get::<Option<Id>, _>(column)?.map(|id| Value::String(id.0.to_string()))
        }
        _ => row.try_get::<Option<String>, _>(column)?.map(Value::String),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A value given as text (a list filter, a CSV cell) in its wire form for `ty`: booleans
/// `true`/`false`, json parsed; everything else, numbers included, the codec reads from
/// its text.
pub fn from_text(ty: FieldType, raw: &str) -> Result<Value, String> {
    match ty {
        FieldType::Boolean => raw.trim().parse::<bool>().map(Value::Bool).map_err(|_| "must be true or false".into()),
        FieldType::Json => serde_json::from_str(raw).map_err(|e| format!("must be JSON: {e}")),
        _ => Ok(Value::String(raw.to_string())),
    }
}

/// One CSV line as a record: its line number, the record of its readable cells, and what
/// is wrong with the others.
pub type CsvRow = (i32, Map<String, Value>, Vec<FieldViolation>);

/// The records of a CSV text whose header names fields of `specs` (and any of the
/// system columns), each cell read by its field's type ([`from_text`]). An empty cell
/// leaves its field out. The error says why the text as a whole cannot be read.
pub fn csv_rows(specs: &[FieldSpec], text: &str) -> Result<Vec<CsvRow>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("the header cannot be read: {e}"))?.clone();
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.trim();
        let ty = match specs.iter().find(|s| s.name.as_str() == name) {
            Some(spec) => spec.ty,
            None if SYSTEM_COLUMNS.contains(&name) => FieldType::Text,
            None => return Err(format!("the header's column `{name}` is not a field of this model")),
        };
        if columns.iter().any(|(seen, _)| seen == name) {
            return Err(format!("the header names `{name}` twice"));
        }
        columns.push((name.to_string(), ty));
    }
    let mut rows = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| match e.position() {
            Some(at) => format!("line {}: {e}", at.line()),
            None => e.to_string(),
        })?;
        let line = row.position().map_or(0, |at| i32::try_from(at.line()).unwrap_or(i32::MAX));
        let (mut record, mut broken) = (Map::new(), Vec::new());
        for ((name, ty), cell) in columns.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            match from_text(*ty, cell) {
                Ok(value) => {
                    record.insert(name.clone(), value);
                }
                Err(why) => broken.push(FieldViolation::new(name.as_str(), why)),
            }
        }
        rows.push((line, record, broken));
    }
    Ok(rows)
}

/// Times as the API writes them: RFC 3339, UTC, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::fields::parse_fields;

    fn specs() -> Vec<FieldSpec> {
        let fields: Vec<kiln_proto::v1::Field> = serde_json::from_value(serde_json::json!([
            { "name": "number", "type": "text", "required": true, "max_length": 5, "pattern": "^INV" },
            { "name": "amount", "type": "decimal", "min": 0 },
            { "name": "count", "type": "integer", "default_value": 1 },
            { "name": "status", "type": "enum", "enum_values": ["draft", "sent"] },
            { "name": "due", "type": "date" },
            { "name": "site", "type": "url" },
        ]))
        .unwrap();
        parse_fields(&fields).unwrap()
    }

    #[test]
    fn every_bad_value_is_reported_by_field() {
        let record = serde_json::json!({
            "number": "INVOICE-1", "amount": -1, "count": 1.5, "status": "paid", "due": "31/01/2026",
            "site": "javascript:alert(1)", "colour": "red"
        });
        let violations = check_record(&specs(), record.as_object().unwrap(), Write::Create).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["colour", "number", "amount", "count", "status", "due", "site"]);
    }

    #[test]
    fn csv_cells_are_read_by_their_field_type_and_rows_know_their_line() {
        let specs = specs();
        let text = "number,count,due,id\nINV1,7,2026-01-31,\n\"INV\n2\",,,x\n";
        let rows = csv_rows(&specs, text).unwrap();
        let lines: Vec<i32> = rows.iter().map(|(line, _, _)| *line).collect();
        assert_eq!(lines, [2, 3]);
        assert_eq!(
            Value::Object(rows[0].1.clone()),
            serde_json::json!({ "number": "INV1", "count": "7", "due": "2026-01-31" })
        );
        assert_eq!(Value::Object(rows[1].1.clone()), serde_json::json!({ "number": "INV\n2", "id": "x" }));
        assert!(csv_rows(&specs, "number,colour\nINV1,red\n").unwrap_err().contains("`colour`"));
        assert!(csv_rows(&specs, "number,count\nINV1\n").unwrap_err().starts_with("line 2"));
        assert_eq!(from_text(FieldType::Boolean, "maybe").unwrap_err(), "must be true or false");
        assert_eq!(from_text(FieldType::Json, "{\"a\": [1]}").unwrap(), serde_json::json!({ "a": [1] }));
        assert!(from_text(FieldType::Json, "{bad").is_err());
    }

    #[test]
    fn defaults_fill_creates_and_patches_touch_only_what_is_given() {
        let record = serde_json::json!({ "number": "INV1" });
        let values = check_record(&specs(), record.as_object().unwrap(), Write::Create).unwrap();
        assert_eq!(values.len(), 6);
        assert_eq!(values[2].1, SqlValue::Int(1));
        assert_eq!(values[1].1, SqlValue::Null(FieldType::Decimal));
        let patch = serde_json::json!({ "amount": 2.5 });
        let values = check_record(&specs(), patch.as_object().unwrap(), Write::Patch).unwrap();
        assert_eq!(values, [(1, SqlValue::Decimal("2.5".into()))]);
        let missing = check_record(&specs(), &Map::new(), Write::Replace).unwrap_err();
        assert_eq!(missing[0].field, "number");
    }
}
