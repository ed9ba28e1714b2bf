//! The database: SQLite by default, PostgreSQL when `DATABASE_URL` says so (one code
//! path, sqlx's `Any` driver). The schema is made from the models' field declarations at
//! start-up, related tables first, each change of it recorded in `_schema_versions`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sqlx::{AnyPool, Row, any::AnyPoolOptions};

use crate::fields::{FieldSpec, Stored, Table};

pub type Pool = AnyPool;

/// The pool for `url`, made ready: its schema in place.
pub async fn connect(url: &str, tables: &[&'static Table]) -> Result<Pool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(8).connect(url).await?;
    migrate(&pool, tables, url.starts_with("postgres")).await?;
    Ok(pool)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `tables` in an order where each comes after the tables it refers to (a cycle keeps
/// the declared order).
pub fn ordered(tables: &[&'static Table]) -> Vec<&'static Table> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name).collect();
    let mut done: Vec<&'static Table> = Vec::new();
    let mut left: Vec<&'static Table> = tables.to_vec();
    while !left.is_empty() {
        let ready = left.iter().position(|table| {
            table.fields.iter().filter_map(|f| f.target).all(|target| {
                target == table.name || !names.contains(target) || done.iter().any(|d| d.name == target)
            })
        });
        done.push(left.remove(ready.unwrap_or(0)));
    }
    done
}

/// The statement that makes `table`.
pub fn create_table(table: &Table, tables: &[&'static Table]) -> String {
    let mut columns = vec![
        "\"id\" TEXT PRIMARY KEY".to_string(),
        "\"created_at\" TEXT NOT NULL".to_string(),
        "\"updated_at\" TEXT NOT NULL".to_string(),
    ];
    for field in table.fields {
        let mut column = format!("{} {}", quote(field.name), field.column_type());
        if field.required {
            column.push_str(" NOT NULL");
        }
        if field.unique {
            column.push_str(" UNIQUE");
        }
        if let Some(target) = field.target.filter(|target| tables.iter().any(|t| t.name == *target)) {
            let on_delete = match field.on_delete {
                "cascade" => "CASCADE",
                "set_null" => "SET NULL",
                _ => "RESTRICT",
            };
            column.push_str(&format!(" REFERENCES {}(\"id\") ON DELETE {on_delete}", quote(target)));
        }
        columns.push(column);
    }
    format!("CREATE TABLE IF NOT EXISTS {} ({})", quote(table.name), columns.join(", "))
}

/// Makes every table that is missing, and records the schema it made. On PostgreSQL
/// one process at a time (replicas starting together would race to create the tables).
pub async fn migrate(pool: &Pool, tables: &[&'static Table], postgres: bool) -> Result<(), sqlx::Error> {
    let statements: Vec<String> = ordered(tables).iter().map(|table| create_table(table, tables)).collect();
    let version = format!("{:x}", fingerprint(&statements.join(";")));
    let mut tx = pool.begin().await?;
    if postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7262851)").execute(&mut *tx).await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS \"_schema_versions\" (\"version\" TEXT PRIMARY KEY, \"applied_at\" TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let applied: Option<String> = sqlx::query_scalar("SELECT \"version\" FROM \"_schema_versions\" WHERE \"version\" = $1")
        .bind(&version)
        .fetch_optional(&mut *tx)
        .await?;
    if applied.is_none() {
        for statement in &statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO \"_schema_versions\" (\"version\", \"applied_at\") VALUES ($1, $2)")
            .bind(&version)
            .bind(now())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A stable digest of the schema (FNV-1a), to know whether it was applied.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3))
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn select_columns(table: &Table) -> String {
    let mut columns = vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into()];
    columns.extend(table.fields.iter().map(|f| quote(f.name)));
    columns.join(", ")
}

fn read(table: &Table, row: &sqlx::any::AnyRow) -> Result<Map<String, Value>, sqlx::Error> {
    let mut record = Map::new();
    for column in ["id", "created_at", "updated_at"] {
        record.insert(column.into(), Value::String(row.try_get::<String, _>(column)?));
    }
    for field in table.fields {
        let stored = if field.kind.is_integer_column() {
            Stored::Integer(row.try_get::<Option<i64>, _>(field.name)?)
        } else {
            Stored::Text(row.try_get::<Option<String>, _>(field.name)?)
        };
        record.insert(field.name.into(), field.show(stored));
    }
    Ok(record)
}

fn bind<'q>(query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, stored: &Stored) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match stored {
        Stored::Text(text) => query.bind(text.clone()),
        Stored::Integer(n) => query.bind(*n),
    }
}

pub async fn get(pool: &Pool, table: &Table, id: &str) -> Result<Option<Map<String, Value>>, sqlx::Error> {
    let sql = format!("SELECT {} FROM {} WHERE \"id\" = $1", select_columns(table), quote(table.name));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(pool).await?;
    row.map(|row| read(table, &row)).transpose()
}

/// A page, oldest first: at most `limit` records after the first `offset`.
pub async fn list(pool: &Pool, table: &Table, limit: i64, offset: i64) -> Result<Vec<Map<String, Value>>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY \"created_at\", \"id\" LIMIT $1 OFFSET $2",
        select_columns(table),
        quote(table.name)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all(pool).await?;
    rows.iter().map(|row| read(table, row)).collect()
}

pub async fn insert(pool: &Pool, table: &Table, values: &[(&'static FieldSpec, Stored)]) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now();
    let mut columns = vec!["\"id\"".to_string(), "\"created_at\"".into(), "\"updated_at\"".into()];
    columns.extend(values.iter().map(|(field, _)| quote(field.name)));
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", quote(table.name), columns.join(", "), placeholders.join(", "));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.clone()).bind(now.clone()).bind(now);
    for (_, stored) in values {
        query = bind(query, stored);
    }
    query.execute(pool).await?;
    Ok(id)
}

/// Changes the given columns; false when there is no such record.
pub async fn update(pool: &Pool, table: &Table, id: &str, values: &[(&'static FieldSpec, Stored)]) -> Result<bool, sqlx::Error> {
    let mut sets = vec!["\"updated_at\" = $1".to_string()];
    sets.extend(values.iter().enumerate().map(|(n, (field, _))| format!("{} = ${}", quote(field.name), n + 2)));
    let sql = format!("UPDATE {} SET {} WHERE \"id\" = ${}", quote(table.name), sets.join(", "), values.len() + 2);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now());
    for (_, stored) in values {
        query = bind(query, stored);
    }
    Ok(query.bind(id.to_string()).execute(pool).await?.rows_affected() == 1)
}

pub async fn delete(pool: &Pool, table: &Table, id: &str) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE \"id\" = $1", quote(table.name));
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).execute(pool).await?.rows_affected() == 1)
}

/// Whether another record than `except` holds `stored` in `field`.
pub async fn taken(pool: &Pool, table: &Table, field: &FieldSpec, stored: &Stored, except: Option<&str>) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} = $1 AND \"id\" <> $2",
        quote(table.name),
        quote(field.name)
    );
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), stored).bind(except.unwrap_or("").to_string());
    let row = query.fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}

/// Whether `table` holds a record `id`.
pub async fn exists(pool: &Pool, table: &str, id: &str) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM {} WHERE \"id\" = $1", quote(table));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>(0)? > 0)
}
