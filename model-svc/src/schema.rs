//! The schema engine: the DDL each dialect needs for a model's fields (see
//! `kiln_common::records::fields` for the fields themselves), the plan of a change
//! from one list of fields to another, and the fields' numbers in the typed contract
//! (kept across renames, never reused).

use kiln_common::{
    error::FieldViolation,
    records::{
        fields::{Constraint, Dialect, FieldSpec, checks, derived_name},
        names::{self, Ident},
    },
};
use kiln_proto::v1::{Field, ReservedField};

/// The number the first user field of a model gets in the typed contract: 1-15 (one-byte
/// tags) belong to the record's own fields (id, times, author) and those to come.
pub const FIRST_FIELD_NUMBER: i32 = 16;

/// The smallest number above every number `fields` has and `reserved` keeps.
fn next_number(fields: &[Field], reserved: &[ReservedField]) -> i32 {
    let used = fields.iter().map(|f| f.number).chain(reserved.iter().map(|r| r.number));
    used.max().unwrap_or(0).max(FIRST_FIELD_NUMBER - 1) + 1
}

/// Gives each field without a number (a new one, or one stored before fields had
/// numbers) the next free number, in order.
pub fn number_fields(fields: &mut [Field], reserved: &[ReservedField]) {
    for i in 0..fields.len() {
        if fields[i].number <= 0 {
            fields[i].number = next_number(fields, reserved);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub dialect: Dialect,
    /// `ws_<id>` on PostgreSQL; `None` on SQLite, where the file is the namespace.
    pub schema: Option<Ident>,
}

impl Namespace {
    /// `"ws_…"."ent_…"` or `"ent_…"`.
    pub fn table(&self, table: &Ident) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", schema.quoted(), table.quoted()),
            None => table.quoted(),
        }
    }
}

/// The statements that create a model's table.
pub fn create_table(ns: &Namespace, table: &Ident, fields: &[FieldSpec]) -> Vec<String> {
    let mut statements = Vec::new();
    if let Some(schema) = &ns.schema {
        statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted()));
    }
    statements.push(table_statement(ns, &ns.table(table), table, fields));
    statements.push(index_statement(ns, table));
    statements
}

/// `CREATE TABLE <sql_name>`; constraints are named after `table`, so a table built
/// under a temporary name keeps the names it will have after renaming.
pub fn table_statement(ns: &Namespace, sql_name: &str, table: &Ident, fields: &[FieldSpec]) -> String {
    let (id, time) = match ns.dialect {
        Dialect::Postgres => ("uuid", "timestamptz"),
        Dialect::Sqlite => ("TEXT", "TEXT"),
    };
    let mut columns = vec![
        format!("\"id\" {id} PRIMARY KEY"),
        format!("\"created_at\" {time} NOT NULL"),
        format!("\"updated_at\" {time} NOT NULL"),
        format!("\"created_by\" {id}"),
    ];
    columns.extend(fields.iter().map(|f| column_definition(ns, table, f)));
    format!("CREATE TABLE {sql_name} (\n  {}\n)", columns.join(",\n  "))
}

/// The index the default sort and keyset paging read.
pub fn index_statement(ns: &Namespace, table: &Ident) -> String {
    format!(
        "CREATE INDEX {} ON {} (\"created_at\", \"id\")",
        kiln_common::db::quote_ident(&derived_name(table.as_str(), "created_idx")),
        ns.table(table)
    )
}

/// What happens to one field in a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The field stays (perhaps relabelled): `old` index to `new` index.
    Keep { old: usize, new: usize },
    /// The column is renamed, data kept.
    Rename { old: usize, new: usize },
    /// A new column.
    Add { new: usize },
    /// The column and its data go.
    Drop { old: usize },
}

/// A planned change from one list of fields to another.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Numbers `new` after this plan from `old`'s numbers: a kept or renamed field keeps
    /// its number, an added one gets a number never used, a dropped one's number (and
    /// name) is added to `reserved`. Numbers sent by the client are not taken.
    pub fn number(&self, old: &[FieldSpec], new: &mut [FieldSpec], reserved: &mut Vec<ReservedField>) {
        for spec in new.iter_mut() {
            spec.field.number = 0;
        }
        for step in &self.steps {
            match *step {
                Step::Keep { old: o, new: n } => new[n].field.number = old[o].field.number,
                // The old name is kept with the number: a client from before the rename
                // still names the field by it (in an update mask).
                Step::Rename { old: o, new: n } => {
                    new[n].field.number = old[o].field.number;
                    reserved.push(ReservedField { number: old[o].field.number, name: old[o].field.name.clone() });
                }
                Step::Drop { old: o } => {
                    reserved.push(ReservedField { number: old[o].field.number, name: old[o].field.name.clone() })
                }
                Step::Add { .. } => {}
            }
        }
        let mut fields: Vec<Field> = new.iter().map(|s| s.field.clone()).collect();
        number_fields(&mut fields, reserved);
        for (spec, field) in new.iter_mut().zip(fields) {
            spec.field.number = field.number;
        }
    }

    pub fn is_destructive(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Drop { .. }))
    }

    /// The steps as the API reports them.
    pub fn describe(&self, old: &[FieldSpec], new: &[FieldSpec]) -> Vec<kiln_proto::v1::SchemaChange> {
        use kiln_proto::v1::SchemaChange;
        self.steps
            .iter()
            .filter_map(|step| match *step {
                Step::Keep { .. } => None,
                Step::Rename { old: o, new: n } => Some(SchemaChange {
                    action: "rename_column".into(),
                    field: new[n].name.to_string(),
                    description: format!("rename column {} to {}; data is kept", old[o].name, new[n].name),
                    destructive: false,
                }),
                Step::Add { new: n } => Some(SchemaChange {
                    action: "add_column".into(),
                    field: new[n].name.to_string(),
                    description: format!("add column {} ({})", new[n].name, new[n].field.r#type),
                    destructive: false,
                }),
                Step::Drop { old: o } => Some(SchemaChange {
                    action: "drop_column".into(),
                    field: old[o].name.to_string(),
                    description: format!("drop column {} and every value in it", old[o].name),
                    destructive: true,
                }),
            })
            .collect()
    }
}

/// Whether two specs store and check values the same way (labels and help may differ).
fn same_rules(a: &FieldSpec, b: &FieldSpec) -> bool {
    a.ty == b.ty
        && a.required == b.required
        && a.unique == b.unique
        && a.min == b.min
        && a.max == b.max
        && a.min_length == b.min_length
        && a.max_length == b.max_length
        && a.pattern.as_ref().map(regex::Regex::as_str) == b.pattern.as_ref().map(regex::Regex::as_str)
        && a.enum_values == b.enum_values
        && a.relation == b.relation
}

/// Plans the change from `old` to `new`; `given` are the new fields as sent (for
/// `previous_name`, which marks a rename).
pub fn plan(old: &[FieldSpec], new: &[FieldSpec], given: &[Field]) -> Result<Plan, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut steps = Vec::new();
    let mut matched = vec![false; old.len()];
    for (n, spec) in new.iter().enumerate() {
        let previous = given.get(n).map(|f| f.previous_name.trim()).filter(|p| !p.is_empty());
        let from = match previous {
            Some(previous) => {
                match names::normalise(previous).ok().and_then(|p| old.iter().position(|o| o.name.as_str() == p)) {
                    Some(o) => Some(o),
                    None => {
                        violations.push(FieldViolation::new(
                            format!("fields[{n}].previous_name"),
                            "is not a field of this model",
                        ));
                        continue;
                    }
                }
            }
            None => old.iter().position(|o| o.name == spec.name),
        };
        match from {
            Some(o) if matched[o] => {
                violations
                    .push(FieldViolation::new(format!("fields[{n}]"), format!("`{}` is changed twice", old[o].name)));
            }
            Some(o) => {
                matched[o] = true;
                if !same_rules(&old[o], spec) {
                    violations.push(FieldViolation::new(
                        format!("fields[{n}]"),
                        "changing the type or rules of an existing field is not supported yet: add a new field, copy, then remove the old one",
                    ));
                } else if old[o].name == spec.name {
                    steps.push(Step::Keep { old: o, new: n });
                } else {
                    steps.push(Step::Rename { old: o, new: n });
                }
            }
            None => steps.push(Step::Add { new: n }),
        }
    }
    for (o, was_matched) in matched.iter().enumerate() {
        if !was_matched {
            steps.push(Step::Drop { old: o });
        }
    }
    if violations.is_empty() { Ok(Plan { steps }) } else { Err(violations) }
}

/// One column with its constraints, each named (see [`Constraint::name`]).
pub fn column_definition(ns: &Namespace, table: &Ident, field: &FieldSpec) -> String {
    let column = field.name.quoted();
    let named = |kind: Constraint| kiln_common::db::quote_ident(&kind.name(table.as_str(), field.name.as_str()));
    let mut sql = format!("{column} {}", field.ty.column_type(ns.dialect));
    if field.required {
        sql.push_str(" NOT NULL");
    }
    if field.unique {
        sql.push_str(&format!(" CONSTRAINT {} UNIQUE", named(Constraint::Unique)));
    }
    let checks = checks(ns.dialect, field);
    if !checks.is_empty() {
        sql.push_str(&format!(" CONSTRAINT {} CHECK ({})", named(Constraint::Check), checks.join(" AND ")));
    }
    if let Some(relation) = &field.relation {
        let target = Ident::table_of(&relation.target);
        sql.push_str(&format!(
            " CONSTRAINT {} REFERENCES {} (\"id\") ON DELETE {}",
            named(Constraint::ForeignKey),
            ns.table(&target),
            relation.on_delete.sql()
        ));
    }
    sql
}
#[cfg(test)]
mod tests {
    use super::*;
    use kiln_common::records::fields::parse_fields;

    fn field(json: serde_json::Value) -> Field {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn numbers_survive_renames_and_are_never_reused() {
        let created = [
            field(serde_json::json!({ "name": "number", "type": "text", "number": 99 })),
            field(serde_json::json!({ "name": "amount", "type": "decimal" })),
            field(serde_json::json!({ "name": "note", "type": "text" })),
        ];
        let mut created = parse_fields(&created).unwrap();
        let mut reserved = Vec::new();
        let creation = plan(&[], &created, &[]).unwrap();
        creation.number(&[], &mut created, &mut reserved);
        let numbers = |specs: &[FieldSpec]| specs.iter().map(|s| s.field.number).collect::<Vec<_>>();
        assert_eq!(numbers(&created), [16, 17, 18], "in order from 16; a number sent is not taken");

        // `amount` renamed and moved first, `note` dropped, `due` added.
        let given = [
            field(serde_json::json!({ "name": "total", "type": "decimal", "previous_name": "amount" })),
            field(serde_json::json!({ "name": "number", "type": "text" })),
            field(serde_json::json!({ "name": "due", "type": "date", "number": 18 })),
        ];
        let mut changed = parse_fields(&given).unwrap();
        plan(&created, &changed, &given).unwrap().number(&created, &mut changed, &mut reserved);
        assert_eq!(numbers(&changed), [17, 16, 19]);
        let former = ReservedField { number: 17, name: "amount".into() };
        assert_eq!(
            reserved,
            [former, ReservedField { number: 18, name: "note".into() }],
            "a former name keeps its number"
        );

        // `due` dropped too, then a field named `note` again: a new number.
        let given = [
            field(serde_json::json!({ "name": "total", "type": "decimal" })),
            field(serde_json::json!({ "name": "number", "type": "text" })),
            field(serde_json::json!({ "name": "note", "type": "long_text" })),
        ];
        let mut again = parse_fields(&given).unwrap();
        plan(&changed, &again, &given).unwrap().number(&changed, &mut again, &mut reserved);
        assert_eq!(numbers(&again), [17, 16, 20]);
        assert_eq!(reserved.iter().map(|r| r.number).collect::<Vec<_>>(), [17, 18, 19]);
    }

    #[test]
    fn fields_stored_before_numbers_are_numbered_in_order_after_any_in_use() {
        let mut fields = vec![
            field(serde_json::json!({ "name": "a", "type": "text" })),
            field(serde_json::json!({ "name": "b", "type": "text", "number": 16 })),
            field(serde_json::json!({ "name": "c", "type": "text" })),
        ];
        number_fields(&mut fields, &[ReservedField { number: 20, name: "gone".into() }]);
        assert_eq!(fields.iter().map(|f| f.number).collect::<Vec<_>>(), [21, 16, 22]);
    }

    #[test]
    fn plans_keep_renames_adds_and_drops() {
        let old_fields = vec![
            field(serde_json::json!({ "name": "number", "type": "text" })),
            field(serde_json::json!({ "name": "amount", "type": "decimal" })),
            field(serde_json::json!({ "name": "note", "type": "text" })),
        ];
        let new_fields = vec![
            field(serde_json::json!({ "name": "number", "type": "text", "label": "No." })),
            field(serde_json::json!({ "name": "total", "type": "decimal", "previous_name": "amount" })),
            field(serde_json::json!({ "name": "due", "type": "date" })),
        ];
        let old = parse_fields(&old_fields).unwrap();
        let new = parse_fields(&new_fields).unwrap();
        let plan = plan(&old, &new, &new_fields).unwrap();
        assert_eq!(
            plan.steps,
            [
                Step::Keep { old: 0, new: 0 },
                Step::Rename { old: 1, new: 1 },
                Step::Add { new: 2 },
                Step::Drop { old: 2 }
            ]
        );
        assert!(plan.is_destructive());
        let changes = plan.describe(&old, &new);
        assert_eq!(
            changes.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
            ["rename_column", "add_column", "drop_column"]
        );

        let retyped = vec![field(serde_json::json!({ "name": "number", "type": "integer" }))];
        let errors = super::plan(&old, &parse_fields(&retyped).unwrap(), &retyped).unwrap_err();
        assert_eq!(errors[0].field, "fields[0]");
        let bad_rename = vec![field(serde_json::json!({ "name": "x", "type": "text", "previous_name": "ghost" }))];
        let errors = super::plan(&old, &parse_fields(&bad_rename).unwrap(), &bad_rename).unwrap_err();
        assert_eq!(errors[0].field, "fields[0].previous_name");
    }

    #[test]
    fn ddl_quotes_identifiers_and_types_columns_per_dialect() {
        let specs = parse_fields(&[
            field(serde_json::json!({ "name": "Number", "type": "text", "required": true, "unique": true, "max_length": 20 })),
            field(serde_json::json!({ "name": "amount", "type": "decimal", "min": 0 })),
            field(serde_json::json!({ "name": "paid", "type": "boolean" })),
            field(serde_json::json!({ "name": "status", "type": "enum", "enum_values": ["draft", "sent"] })),
        ])
        .unwrap();
        let table = names::model_names("Invoice", None).unwrap().table;
        let ws = uuid::Uuid::nil();
        let pg = Namespace { dialect: Dialect::Postgres, schema: Some(Ident::workspace_schema(ws)) };
        let sql = create_table(&pg, &table, &specs).join(";\n");
        let schema = format!("\"ws_{}\"", ws.simple());
        assert!(sql.contains(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")), "{sql}");
        assert!(sql.contains(&format!("CREATE TABLE {schema}.\"ent_invoices\"")), "{sql}");
        assert!(sql.contains("\"number\" text NOT NULL CONSTRAINT \"ent_invoices_number_key\" UNIQUE CONSTRAINT \"ent_invoices_number_check\" CHECK (char_length(\"number\") <= 20)"), "{sql}");
        assert!(
            sql.contains("\"amount\" numeric CONSTRAINT \"ent_invoices_amount_check\" CHECK (\"amount\" >= 0)"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "\"status\" text CONSTRAINT \"ent_invoices_status_check\" CHECK (\"status\" IN ('draft', 'sent'))"
            ),
            "{sql}"
        );
        let sqlite = Namespace { dialect: Dialect::Sqlite, schema: None };
        let sql = create_table(&sqlite, &table, &specs).join(";\n");
        assert!(sql.contains("CREATE TABLE \"ent_invoices\""), "{sql}");
        assert!(
            sql.contains("\"paid\" INTEGER CONSTRAINT \"ent_invoices_paid_check\" CHECK (\"paid\" IN (0, 1))"),
            "{sql}"
        );
        assert!(sql.contains("\"id\" TEXT PRIMARY KEY"), "{sql}");
    }
}
