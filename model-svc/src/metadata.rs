//! The rows of `models` and `model_versions` as statements: the one place either table is
//! inserted into, whether a model is created, changed, seeded or put back after a failed
//! change (see [`crate::schema_writer`]).

use chrono::{DateTime, Utc};
use kiln_common::db::{Id, RowExt};
use serde_json::Value;

use kiln_common::records::{codec::SqlValue, fields::FieldType};

use kiln_common::{ServiceError, timestamp};
use kiln_proto::v1::{Field, Model, ReservedField};

use crate::schema_writer::Statement;

/// A model's row in `models`.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub id: Id,
    pub workspace_id: Id,
    pub name: String,
    pub singular: String,
    pub plural: String,
    pub slug: String,
    pub label: String,
    pub label_plural: String,
    pub description: String,
    pub title_field: String,
    pub is_system: bool,
    pub version: i64,
    pub fields: Value,
    pub table_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Removed fields' numbers and names (`[ReservedField]` as JSON).
    pub reserved_fields: Value,
}

/// What [`ModelRow::read`] reads: `SELECT {MODEL_ROW_COLUMNS} FROM models …`.
pub const MODEL_ROW_COLUMNS: &str = "workspace_id, id, name, singular, plural, slug, label, label_plural, description, \
     title_field, is_system, version, fields, table_name, created_at, updated_at, reserved_fields";

impl ModelRow {
    pub fn insert(self) -> Statement {
        let mut insert = Statement::new(format!(
            "INSERT INTO models ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            MODEL_ROW_COLUMNS
        ));
        insert.values = vec![
            SqlValue::Uuid(self.workspace_id),
            SqlValue::Uuid(self.id),
            SqlValue::Text(self.name),
            SqlValue::Text(self.singular),
            SqlValue::Text(self.plural),
            SqlValue::Text(self.slug),
            SqlValue::Text(self.label),
            SqlValue::Text(self.label_plural),
            SqlValue::Text(self.description),
            SqlValue::Text(self.title_field),
            SqlValue::Bool(self.is_system),
            SqlValue::Int(self.version),
            SqlValue::Json(self.fields),
            SqlValue::Text(self.table_name),
            SqlValue::DateTime(self.created_at),
            SqlValue::DateTime(self.updated_at),
            SqlValue::Json(self.reserved_fields),
        ];
        insert
    }

    /// A row selected with [`MODEL_ROW_COLUMNS`].
    pub fn read(row: &impl RowExt) -> Result<Self, sqlx::Error> {
        Ok(ModelRow {
            id: Id(row.id("id")?),
            workspace_id: Id(row.id("workspace_id")?),
            name: row.text("name")?,
            singular: row.text("singular")?,
            plural: row.text("plural")?,
            slug: row.text("slug")?,
            label: row.text("label")?,
            label_plural: row.text("label_plural")?,
            description: row.text("description")?,
            title_field: row.text("title_field")?,
            is_system: row.boolean("is_system")?,
            version: row.int("version")?,
            fields: row.json("fields")?,
            table_name: row.text("table_name")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
            reserved_fields: row.json("reserved_fields")?,
        })
    }

    /// The row as the API answers it. Fields stored before fields had numbers get
    /// theirs here, the same way each time, until the model's next change stores them.
    pub fn into_message(self) -> Result<Model, ServiceError> {
        let mut fields: Vec<Field> = serde_json::from_value(self.fields)
            .map_err(|e| anyhow::anyhow!("stored fields of a model are malformed: {e}"))?;
        let reserved_fields: Vec<ReservedField> = serde_json::from_value(self.reserved_fields)
            .map_err(|e| anyhow::anyhow!("stored reserved fields of a model are malformed: {e}"))?;
        crate::schema::number_fields(&mut fields, &reserved_fields);
        Ok(Model {
            id: self.id.0.to_string(),
            name: self.name,
            singular: self.singular,
            plural: self.plural,
            slug: self.slug,
            label: self.label,
            label_plural: self.label_plural,
            description: self.description,
            title_field: self.title_field,
            is_system: self.is_system,
            version: i32::try_from(self.version).unwrap_or(i32::MAX),
            fields,
            table_name: self.table_name,
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            reserved_fields,
        })
    }
}

/// One version of a model in `model_versions`.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub model_id: Id,
    pub version: i64,
    pub fields: Value,
    /// None for a seeded version.
    pub author: Option<Id>,
    pub summary: String,
    pub created_at: DateTime<Utc>,
}

/// What [`VersionRow::read`] reads.
pub const VERSION_ROW_COLUMNS: &str = "model_id, version, fields, author, summary, created_at";

impl VersionRow {
    pub fn insert(self) -> Statement {
        let mut insert = Statement::new(format!(
            "INSERT INTO model_versions ({VERSION_ROW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ));
        insert.values = vec![
            SqlValue::Uuid(self.model_id),
            SqlValue::Int(self.version),
            SqlValue::Json(self.fields),
            self.author.map_or(SqlValue::Null(FieldType::Uuid), SqlValue::Uuid),
            SqlValue::Text(self.summary),
            SqlValue::DateTime(self.created_at),
        ];
        insert
    }

    /// A row selected with [`VERSION_ROW_COLUMNS`].
    pub fn read(row: &impl RowExt) -> Result<Self, sqlx::Error> {
        Ok(VersionRow {
            model_id: Id(row.id("model_id")?),
            version: row.int("version")?,
            fields: row.json("fields")?,
            author: row.opt_id("author")?.map(Id),
            summary: row.text("summary")?,
            created_at: row.time("created_at")?,
        })
    }
}
