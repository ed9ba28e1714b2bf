//! The one way a model change reaches the databases. A change is its metadata statements
//! (`models`, `model_versions`, on the platform database) and its table statements (the
//! workspace's tables), both plain data; [`apply`] runs them with one failure policy:
//!
//! - PostgreSQL: one transaction, metadata and tables together (its DDL is transactional).
//! - SQLite (two files): the table's transaction is opened and its statements run first;
//!   then the metadata commits in a short platform transaction; then the table's commits.
//!   Any failure before the metadata commits leaves both files as they were. If the
//!   table's commit fails after it, the model's metadata is put back as it was read
//!   before the change (its `models` row and versions), so the two files never disagree.

use kiln_common::{
    bind_values,
    db::Id,
    records::{codec::SqlValue, engine::RecordPool},
};
use sqlx::{Connection as _, PgConnection, SqliteConnection};

use crate::metadata::{MODEL_ROW_COLUMNS, ModelRow, VERSION_ROW_COLUMNS, VersionRow};

/// What a statement must find or do for the change to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Anything,
    /// It changes at least one row; none means the model moved on meanwhile
    /// ([`sqlx::Error::RowNotFound`]).
    ChangesARow,
    /// It returns no row (a check, such as `PRAGMA foreign_key_check`).
    NoRows,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub values: Vec<SqlValue>,
    pub expect: Expect,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Statement { sql: sql.into(), values: Vec::new(), expect: Expect::Anything }
    }

    pub fn bind(mut self, value: SqlValue) -> Self {
        self.values.push(value);
        self
    }

    pub fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// One change to a model: its metadata and its table, applied together.
#[derive(Debug)]
pub struct SchemaWrite {
    /// The model whose metadata changes: what is put back if the table fails to commit.
    pub model_id: Id,
    pub metadata: Vec<Statement>,
    pub tables: Vec<Statement>,
    /// SQLite only: the table is rebuilt, so foreign-key enforcement is paused around the
    /// transaction (it cannot be switched inside one) and a `foreign_key_check` among the
    /// statements stands in.
    pub pause_foreign_keys: bool,
}

/// Applies `change` to the workspace behind `workspace` (and, on SQLite, the platform
/// file's `platform` writer).
pub async fn apply(
    workspace: &RecordPool,
    platform: Option<&kiln_common::db::SqliteConns>,
    change: &SchemaWrite,
) -> Result<(), sqlx::Error> {
    match (workspace, platform) {
        (RecordPool::Postgres(pool), _) => {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            run_postgres(&mut tx, &change.metadata).await?;
            run_postgres(&mut tx, &change.tables).await?;
            tx.commit().await
        }
        (RecordPool::Sqlite(ws), Some(platform)) => {
            let mut conn = ws.writer.acquire().await?;
            if change.pause_foreign_keys {
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
            }
            let applied = apply_sqlite(&mut conn, platform, change).await;
            if change.pause_foreign_keys {
                // A connection whose foreign keys might still be off never goes back to the pool.
                let restored = sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await;
                if restored.is_err() {
                    conn.close_on_drop();
                }
                return applied.and(restored.map(|_| ()));
            }
            applied
        }
        (RecordPool::Sqlite(_), None) => {
            Err(sqlx::Error::Configuration("SQLite workspace without its platform file".into()))
        }
    }
}

async fn apply_sqlite(
    conn: &mut SqliteConnection,
    platform: &kiln_common::db::SqliteConns,
    change: &SchemaWrite,
) -> Result<(), sqlx::Error> {
    let mut tables = conn.begin().await?;
    run_sqlite(&mut tables, &change.tables).await?;
    let mut meta_conn = platform.acquire().await?;
    let before = {
        let mut meta = meta_conn.begin().await?;
        let before = snapshot(&mut meta, change.model_id).await?;
        run_sqlite(&mut meta, &change.metadata).await?;
        meta.commit().await?;
        before
    };
    if let Err(e) = tables.commit().await {
        tracing::error!(error = %e, model_id = %change.model_id.0, "a model's table change failed to commit; its metadata is put back");
        let mut meta = meta_conn.begin().await?;
        run_sqlite(&mut meta, &before).await?;
        meta.commit().await?;
        return Err(e);
    }
    Ok(())
}

macro_rules! run_statements {
    ($conn:expr, $statements:expr) => {{
        for statement in $statements {
            let query = bind_values!(sqlx::query(sqlx::AssertSqlSafe(statement.sql.clone())), &statement.values);
            match statement.expect {
                Expect::Anything => {
                    query.execute(&mut *$conn).await?;
                }
                Expect::ChangesARow => {
                    if query.execute(&mut *$conn).await?.rows_affected() == 0 {
                        return Err(sqlx::Error::RowNotFound);
                    }
                }
                Expect::NoRows => {
                    if query.fetch_optional(&mut *$conn).await?.is_some() {
                        return Err(sqlx::Error::Protocol(format!("the check `{}` found rows", statement.sql)));
                    }
                }
            }
        }
        Ok(())
    }};
}

async fn run_postgres(conn: &mut PgConnection, statements: &[Statement]) -> Result<(), sqlx::Error> {
    run_statements!(conn, statements)
}

async fn run_sqlite(conn: &mut SqliteConnection, statements: &[Statement]) -> Result<(), sqlx::Error> {
    run_statements!(conn, statements)
}

/// The statements that put a model's metadata back as it is now: its `models` row and
/// its versions (or their absence, for a model being created).
async fn snapshot(conn: &mut SqliteConnection, model_id: Id) -> Result<Vec<Statement>, sqlx::Error> {
    let mut restore = vec![Statement::new("DELETE FROM models WHERE id = $1").bind(SqlValue::Uuid(model_id))];
    let sql = format!("SELECT {MODEL_ROW_COLUMNS} FROM models WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(model_id).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(restore) };
    restore.push(ModelRow::read(&row)?.insert());
    let sql = format!("SELECT {VERSION_ROW_COLUMNS} FROM model_versions WHERE model_id = $1");
    for version in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(model_id).fetch_all(&mut *conn).await? {
        restore.push(VersionRow::read(&version)?.insert());
    }
    Ok(restore)
}

#[cfg(test)]
mod tests {
    use kiln_common::Db;

    use super::*;
    use crate::workspace::Workspaces;

    /// A platform file with one model at version 1, and its workspace's file with a child table whose foreign key is checked at commit.
    async fn setup() -> (tempfile::TempDir, Db, RecordPool, Id) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("kiln.db").display()), Default::default())
            .await
            .unwrap();
        db.migrate(&crate::MIGRATIONS).await.unwrap();
        let Db::Sqlite(platform) = &db else { unreachable!() };
        let (workspace, model) = (Id::new(), Id::new());
        let now = kiln_common::db::now();
        let create = ModelRow {
            id: model,
            workspace_id: workspace,
            name: "Note".into(),
            singular: "note".into(),
            plural: "notes".into(),
            slug: "note".into(),
            label: "Note".into(),
            label_plural: "Notes".into(),
            description: String::new(),
            title_field: "id".into(),
            is_system: false,
            version: 1,
            fields: serde_json::json!([]),
            table_name: "ent_notes".into(),
            created_at: now,
            updated_at: now,
            reserved_fields: serde_json::json!([]),
        }
        .insert();
        let version = VersionRow {
            model_id: model,
            version: 1,
            fields: serde_json::json!([]),
            author: None,
            summary: "created".into(),
            created_at: now,
        }
        .insert();
        let mut conn = platform.writer.acquire().await.unwrap();
        run_sqlite(&mut conn, &[create, version]).await.unwrap();
        drop(conn);
        let pool = Workspaces::new(db.clone()).pool(workspace.0).await.unwrap();
        let RecordPool::Sqlite(ws) = &pool else { unreachable!() };
        sqlx::query("CREATE TABLE parents (id integer PRIMARY KEY)").execute(&ws.writer).await.unwrap();
        sqlx::query("CREATE TABLE children (parent integer REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)")
            .execute(&ws.writer)
            .await
            .unwrap();
        (dir, db, pool, model)
    }

    async fn model_state(db: &Db, model: Id) -> (Option<i64>, i64) {
        let Db::Sqlite(platform) = db else { unreachable!() };
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM models WHERE id = $1")
            .bind(model)
            .fetch_optional(&platform.writer)
            .await
            .unwrap();
        let versions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_versions WHERE model_id = $1")
            .bind(model)
            .fetch_one(&platform.writer)
            .await
            .unwrap();
        (version, versions)
    }

    fn new_version(model: Id) -> Vec<Statement> {
        vec![
            Statement::new("UPDATE models SET version = 2 WHERE id = $1 AND version = 1")
                .bind(SqlValue::Uuid(model))
                .expect(Expect::ChangesARow),
            Statement::new(
                "INSERT INTO model_versions (model_id, version, fields, summary, created_at) \
                 VALUES ($1, 2, '[]', 'changed', '2026-01-01T00:00:00Z')",
            )
            .bind(SqlValue::Uuid(model)),
        ]
    }

    #[tokio::test]
    async fn a_table_change_that_cannot_commit_puts_the_metadata_back() {
        let (_dir, db, pool, model) = setup().await;
        let Db::Sqlite(platform) = &db else { unreachable!() };
        // Runs, then fails at COMMIT: the deferred foreign key has no parent.
        let write = SchemaWrite {
            model_id: model,
            metadata: new_version(model),
            tables: vec![Statement::new("INSERT INTO children (parent) VALUES (7)")],
            pause_foreign_keys: false,
        };
        let failed = apply(&pool, Some(&platform.writer), &write).await.unwrap_err();
        assert!(failed.to_string().contains("FOREIGN KEY"), "{failed}");
        assert_eq!(model_state(&db, model).await, (Some(1), 1), "the model is at version 1 with one version");
        // The same change with the table in order goes through, both files together.
        let write = SchemaWrite {
            tables: vec![
                Statement::new("INSERT INTO parents (id) VALUES (7)"),
                Statement::new("INSERT INTO children (parent) VALUES (7)"),
            ],
            ..write
        };
        apply(&pool, Some(&platform.writer), &write).await.unwrap();
        assert_eq!(model_state(&db, model).await, (Some(2), 2));
    }

    #[tokio::test]
    async fn a_failure_before_the_metadata_commits_changes_neither_file() {
        let (_dir, db, pool, model) = setup().await;
        let Db::Sqlite(platform) = &db else { unreachable!() };
        let RecordPool::Sqlite(ws) = &pool else { unreachable!() };
        // The metadata finds the model moved on: the table's statements are undone too.
        let mut moved_on = new_version(model);
        moved_on[0] = Statement::new("UPDATE models SET version = 2 WHERE id = $1 AND version = 5")
            .bind(SqlValue::Uuid(model))
            .expect(Expect::ChangesARow);
        let write = SchemaWrite {
            model_id: model,
            metadata: moved_on,
            tables: vec![Statement::new("INSERT INTO parents (id) VALUES (1)")],
            pause_foreign_keys: true,
        };
        assert!(matches!(apply(&pool, Some(&platform.writer), &write).await, Err(sqlx::Error::RowNotFound)));
        let parents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parents").fetch_one(&ws.writer).await.unwrap();
        assert_eq!(parents, 0);
        assert_eq!(model_state(&db, model).await, (Some(1), 1));
        // Foreign keys are back on for the next user of the connection.
        let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&ws.writer).await.unwrap();
        assert_eq!(on, 1);
        // A check that finds rows stops the change the same way.
        let write = SchemaWrite {
            metadata: new_version(model),
            tables: vec![
                Statement::new("INSERT INTO parents (id) VALUES (1)"),
                Statement::new("SELECT id FROM parents").expect(Expect::NoRows),
            ],
            ..write
        };
        assert!(apply(&pool, Some(&platform.writer), &write).await.is_err());
        assert_eq!(model_state(&db, model).await, (Some(1), 1));
    }
}
