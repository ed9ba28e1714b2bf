//! A model's fields as the record engine reads them: specs parsed from `kiln.v1.Field`
//! (every rule checked, every failure reported with its field path), each type's column
//! type per dialect and the named constraints a column carries. Identifiers are validated
//! [`Ident`]s; the only literals are numbers Rust formatted and enum values restricted
//! to a safe alphabet.

use kiln_proto::v1::{Field, Relation};

use crate::{
    error::FieldViolation,
    records::names::{self, Ident},
};
/// SQL dialect of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// The field types a model can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Email,
    Url,
    Enum,
    Json,
    Uuid,
    Relation,
}

pub const FIELD_TYPES: &str =
    "text, long_text, integer, decimal, boolean, date, datetime, email, url, enum, json, uuid, relation";

impl FieldType {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "text" => FieldType::Text,
            "long_text" => FieldType::LongText,
            "integer" => FieldType::Integer,
            "decimal" => FieldType::Decimal,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "email" => FieldType::Email,
            "url" => FieldType::Url,
            "enum" => FieldType::Enum,
            "json" => FieldType::Json,
            "uuid" => FieldType::Uuid,
            "relation" => FieldType::Relation,
            _ => return None,
        })
    }

    pub fn is_textual(self) -> bool {
        matches!(self, FieldType::Text | FieldType::LongText | FieldType::Email | FieldType::Url | FieldType::Enum)
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::Decimal)
    }

    pub fn column_type(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (Dialect::Postgres, FieldType::Integer) => "bigint",
            (Dialect::Postgres, FieldType::Decimal) => "numeric",
            (Dialect::Postgres, FieldType::Boolean) => "boolean",
            (Dialect::Postgres, FieldType::Date) => "date",
            (Dialect::Postgres, FieldType::DateTime) => "timestamptz",
            (Dialect::Postgres, FieldType::Json) => "jsonb",
            (Dialect::Postgres, FieldType::Uuid | FieldType::Relation) => "uuid",
            (Dialect::Postgres, _) => "text",
            (Dialect::Sqlite, FieldType::Integer | FieldType::Boolean) => "INTEGER",
            (Dialect::Sqlite, FieldType::Decimal) => "REAL",
            (Dialect::Sqlite, _) => "TEXT",
        }
    }
}

/// What happens to records pointing at a deleted target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Restrict,
    Cascade,
    SetNull,
}

impl OnDelete {
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Restrict => "restrict",
            OnDelete::Cascade => "cascade",
            OnDelete::SetNull => "set_null",
        }
    }
}

/// A many-to-one relation: the column holds the target record's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationSpec {
    /// The target model's plural.
    pub target: Ident,
    pub on_delete: OnDelete,
}

/// A checked field.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: Ident,
    pub ty: FieldType,
    pub required: bool,
    pub unique: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub pattern: Option<regex::Regex>,
    pub enum_values: Vec<String>,
    pub relation: Option<RelationSpec>,
    /// The field as given, normalised (name, label), for storing and answering.
    pub field: Field,
}

const MAX_FIELDS: usize = 200;
const MAX_ENUM_VALUES: usize = 200;

fn enum_value_ok(v: &str) -> bool {
    !v.is_empty() && v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
}

/// Checks every field a user sent; all failures are reported, each under `fields[i].<part>`.
pub fn parse_fields(fields: &[Field]) -> Result<Vec<FieldSpec>, Vec<FieldViolation>> {
    parse_fields_named(fields, names::field_name)
}

/// The same for a system model's fields (from the seeds), whose names may be keywords.
pub fn parse_system_fields(fields: &[Field]) -> Result<Vec<FieldSpec>, Vec<FieldViolation>> {
    parse_fields_named(fields, names::system_field_name)
}

fn parse_fields_named(
    fields: &[Field],
    field_name: fn(&str) -> Result<Ident, names::NameError>,
) -> Result<Vec<FieldSpec>, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut specs: Vec<FieldSpec> = Vec::new();
    if fields.len() > MAX_FIELDS {
        violations.push(FieldViolation::new("fields", format!("at most {MAX_FIELDS} fields")));
    }
    for (i, field) in fields.iter().enumerate() {
        let mut bad =
            |part: &str, why: String| violations.push(FieldViolation::new(format!("fields[{i}].{part}"), why));
        let name = match field_name(&field.name) {
            Ok(name) if specs.iter().any(|s| s.name == name) => {
                bad("name", format!("`{name}` is used by another field"));
                Some(name)
            }
            Ok(name) => Some(name),
            Err(e) => {
                bad("name", e.0);
                None
            }
        };
        let ty = FieldType::parse(field.r#type.trim());
        if ty.is_none() {
            bad("type", format!("must be one of {FIELD_TYPES}"));
        }
        check_texts(field, &mut bad);
        check_bounds(field, ty, &mut bad);
        let pattern = parse_pattern(field, ty, &mut bad);
        let enum_values = parse_enum_values(field, ty, &mut bad);
        let relation = match (ty, &field.relation) {
            (Some(FieldType::Relation), Some(relation)) => parse_relation(relation, &mut bad),
            (Some(FieldType::Relation), None) => {
                bad("relation", "a relation field needs {\"target\": <model plural>}".into());
                None
            }
            (_, Some(_)) => {
                bad("relation", "applies to relation fields only".into());
                None
            }
            _ => None,
        };
        if let (Some(name), Some(ty)) = (name, ty) {
            let spec = FieldSpec {
                field: normalised_field(field, &name, relation.as_ref()),
                name,
                ty,
                required: field.required,
                unique: field.unique,
                min: field.min,
                max: field.max,
                min_length: field.min_length,
                max_length: field.max_length,
                pattern,
                enum_values,
                relation,
            };
            // A default must be a value the field accepts, or every record left without
            // one would be refused.
            if let Some(default) = &spec.field.default_value {
                let value = serde_json::to_value(default).unwrap_or_default();
                if let Err(why) = crate::records::codec::check_value(&spec, &value) {
                    bad("default_value", why);
                }
            }
            specs.push(spec);
        }
    }
    if violations.is_empty() { Ok(specs) } else { Err(violations) }
}

/// Label and help text: bounded, and the label without control characters.
fn check_texts(field: &Field, bad: &mut impl FnMut(&str, String)) {
    if field.label.chars().count() > 100 || field.label.chars().any(char::is_control) {
        bad("label", "must be at most 100 characters, without control characters".into());
    }
    if field.help_text.chars().count() > 500 {
        bad("help_text", "must be at most 500 characters".into());
    }
}

/// `min`/`max` on numbers and `min_length`/`max_length` on text: only where they apply,
/// finite, in range, and the lower not above the upper.
fn check_bounds(field: &Field, ty: Option<FieldType>, bad: &mut impl FnMut(&str, String)) {
    let numeric = ty.is_some_and(FieldType::is_numeric);
    let textual = ty.is_some_and(FieldType::is_textual);
    for (part, value) in [("min", field.min), ("max", field.max)] {
        if value.is_some() && !numeric {
            bad(part, "applies to integer and decimal fields only".into());
        }
        if value.is_some_and(|v| !v.is_finite()) {
            bad(part, "must be a finite number".into());
        }
    }
    if let (Some(min), Some(max)) = (field.min, field.max)
        && min > max
    {
        bad("min", "must not exceed max".into());
    }
    for (part, value) in [("min_length", field.min_length), ("max_length", field.max_length)] {
        if value.is_some() && !textual {
            bad(part, "applies to text-like fields only".into());
        }
        if value.is_some_and(|v| !(0..=1_000_000).contains(&v)) {
            bad(part, "must be between 0 and 1000000".into());
        }
    }
    if let (Some(min), Some(max)) = (field.min_length, field.max_length)
        && min > max
    {
        bad("min_length", "must not exceed max_length".into());
    }
}

/// A text field's pattern, compiled with a bounded size.
fn parse_pattern(field: &Field, ty: Option<FieldType>, bad: &mut impl FnMut(&str, String)) -> Option<regex::Regex> {
    if field.pattern.is_empty() {
        return None;
    }
    if !ty.is_some_and(FieldType::is_textual) {
        bad("pattern", "applies to text-like fields only".into());
        return None;
    }
    match regex::RegexBuilder::new(&field.pattern).size_limit(1 << 20).build() {
        Ok(re) => Some(re),
        Err(_) => {
            bad("pattern", "is not a valid regular expression".into());
            None
        }
    }
}

/// An enum's values: 1 to MAX_ENUM_VALUES, each well-formed and listed once.
fn parse_enum_values(field: &Field, ty: Option<FieldType>, bad: &mut impl FnMut(&str, String)) -> Vec<String> {
    let mut values = Vec::new();
    if ty != Some(FieldType::Enum) {
        if !field.enum_values.is_empty() {
            bad("enum_values", "applies to enum fields only".into());
        }
        return values;
    }
    if field.enum_values.is_empty() || field.enum_values.len() > MAX_ENUM_VALUES {
        bad("enum_values", format!("an enum needs 1 to {MAX_ENUM_VALUES} values"));
    }
    for value in &field.enum_values {
        if !enum_value_ok(value) {
            bad("enum_values", format!("{value:?}: values are 1 to 63 letters, digits, spaces, `_`, `-`, `.`"));
        } else if values.contains(value) {
            bad("enum_values", format!("{value:?} is listed twice"));
        } else {
            values.push(value.clone());
        }
    }
    values
}

/// The field as stored: its normalised name and type, a label by default, no rename
/// marker, and its relation in full.
fn normalised_field(field: &Field, name: &Ident, relation: Option<&RelationSpec>) -> Field {
    let mut normalised = field.clone();
    normalised.name = name.to_string();
    normalised.r#type = field.r#type.trim().to_string();
    if normalised.label.trim().is_empty() {
        normalised.label = default_label(name.as_str());
    }
    normalised.previous_name = String::new();
    if let Some(relation) = relation {
        normalised.relation = Some(Relation {
            target: relation.target.to_string(),
            kind: "many_to_one".into(),
            on_delete: relation.on_delete.as_str().into(),
        });
    }
    normalised
}

fn parse_relation(relation: &Relation, bad: &mut impl FnMut(&str, String)) -> Option<RelationSpec> {
    let target = match names::plural_ref(&relation.target) {
        Ok(target) => target,
        Err(_) => {
            bad("relation.target", "must name a model by its plural".into());
            return None;
        }
    };
    match relation.kind.as_str() {
        "" | "many_to_one" => {}
        "one_to_many" | "many_to_many" => {
            bad("relation.kind", "only many_to_one relations are supported so far".into());
            return None;
        }
        _ => {
            bad("relation.kind", "must be many_to_one, one_to_many or many_to_many".into());
            return None;
        }
    }
    let on_delete = match relation.on_delete.as_str() {
        "" | "restrict" => OnDelete::Restrict,
        "cascade" => OnDelete::Cascade,
        "set_null" => OnDelete::SetNull,
        _ => {
            bad("relation.on_delete", "must be restrict, cascade or set_null".into());
            return None;
        }
    };
    Some(RelationSpec { target, on_delete })
}

/// `due_date` → `Due date`.
pub fn default_label(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Where a workspace's tables live: a PostgreSQL schema, or (SQLite) its own file.
/// PostgreSQL's longest identifier, in bytes.
pub const MAX_IDENT_BYTES: usize = 63;

/// `<table>_<part>` for an index or constraint of `table`, within [`MAX_IDENT_BYTES`]:
/// when the whole name does not fit, its start plus 8 hex digits of a hash of the whole
/// name, so long names stay distinct instead of being cut to the same 63 bytes.
pub fn derived_name(table: &str, part: &str) -> String {
    let full = format!("{table}_{part}");
    if full.len() <= MAX_IDENT_BYTES {
        return full;
    }
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(full.as_bytes())[..4]);
    // Identifiers are ASCII (see `names`), so any byte index is a character boundary.
    format!("{}_{digest}", &full[..MAX_IDENT_BYTES - 1 - digest.len()])
}

/// The constraints a field's column may carry, each named after table and field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    Unique,
    ForeignKey,
    Check,
}

impl Constraint {
    pub const ALL: [Constraint; 3] = [Constraint::Unique, Constraint::ForeignKey, Constraint::Check];

    /// The constraint's name for `field` of `table`.
    pub fn name(self, table: &str, field: &str) -> String {
        let suffix = match self {
            Constraint::Unique => "key",
            Constraint::ForeignKey => "fkey",
            Constraint::Check => "check",
        };
        derived_name(table, &format!("{field}_{suffix}"))
    }

    /// Whether `field`'s column has this constraint in `dialect`.
    pub fn applies(self, dialect: Dialect, field: &FieldSpec) -> bool {
        match self {
            Constraint::Unique => field.unique,
            Constraint::ForeignKey => field.relation.is_some(),
            Constraint::Check => !checks(dialect, field).is_empty(),
        }
    }
}

/// The CHECK conditions of a field's column.
pub fn checks(dialect: Dialect, field: &FieldSpec) -> Vec<String> {
    let column = field.name.quoted();
    let mut checks = Vec::new();
    if let Some(min) = field.min {
        checks.push(format!("{column} >= {min}"));
    }
    if let Some(max) = field.max {
        checks.push(format!("{column} <= {max}"));
    }
    let length = match dialect {
        Dialect::Postgres => "char_length",
        Dialect::Sqlite => "length",
    };
    if let Some(min) = field.min_length {
        checks.push(format!("{length}({column}) >= {min}"));
    }
    if let Some(max) = field.max_length {
        checks.push(format!("{length}({column}) <= {max}"));
    }
    if field.ty == FieldType::Enum && !field.enum_values.is_empty() {
        // Values are restricted to a quote-free alphabet; doubling quotes is belt and braces.
        let values: Vec<String> = field.enum_values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
        checks.push(format!("{column} IN ({})", values.join(", ")));
    }
    if field.ty == FieldType::Boolean && dialect == Dialect::Sqlite {
        checks.push(format!("{column} IN (0, 1)"));
    }
    checks
}
#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: serde_json::Value) -> Field {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_failing_field_is_reported_with_its_path() {
        let fields = vec![
            field(serde_json::json!({ "name": "id", "type": "text" })),
            field(serde_json::json!({ "name": "amount", "type": "money" })),
            field(serde_json::json!({ "name": "status", "type": "enum", "enum_values": ["open", "o'pen"] })),
            field(serde_json::json!({ "name": "title", "type": "text", "min": 3 })),
            field(serde_json::json!({ "name": "code", "type": "text", "pattern": "(" })),
            field(serde_json::json!({ "name": "customer", "type": "relation" })),
            field(serde_json::json!({ "name": "Title", "type": "text" })),
        ];
        let violations = parse_fields(&fields).unwrap_err();
        let paths: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            paths,
            [
                "fields[0].name",
                "fields[1].type",
                "fields[2].enum_values",
                "fields[3].min",
                "fields[4].pattern",
                "fields[5].relation",
                "fields[6].name"
            ]
        );
    }

    #[test]
    fn derived_names_fit_postgres_and_stay_distinct() {
        let table = format!("ent_{}", "k".repeat(59));
        let index = derived_name(&table, "created_idx");
        let unique = Constraint::Unique.name(&table, &format!("code_{}", "y".repeat(58)));
        let check = Constraint::Check.name(&table, &format!("code_{}", "y".repeat(58)));
        for name in [&index, &unique, &check] {
            assert_eq!(name.len(), 63, "{name}");
        }
        assert!(index != unique && unique != check && index != check);
        assert_eq!(derived_name("ent_invoices", "created_idx"), "ent_invoices_created_idx");
        assert_eq!(derived_name(&table, "created_idx"), index, "the same input always names the same thing");
    }

    #[test]
    fn a_default_must_be_a_value_the_field_accepts() {
        let fields = vec![
            field(serde_json::json!({ "name": "count", "type": "integer", "default_value": "many" })),
            field(serde_json::json!({ "name": "status", "type": "enum", "enum_values": ["a"], "default_value": "b" })),
            field(serde_json::json!({ "name": "size", "type": "integer", "min": 1, "default_value": 0 })),
            field(serde_json::json!({ "name": "ok", "type": "integer", "min": 1, "default_value": 2 })),
        ];
        let violations = parse_fields(&fields).unwrap_err();
        let paths: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(paths, ["fields[0].default_value", "fields[1].default_value", "fields[2].default_value"]);
    }
}
