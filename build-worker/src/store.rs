//! The `builds`, `build_logs` and `build_artifacts` tables: a build's record from
//! queued to finished, its log, and its source tree.
//!
//! A run of a build is fenced by its `run_token`: [`BuildStore::claim`] gives each attempt
//! a new one, and every write of a run names it. A worker whose job was taken again (it
//! outlived its visibility timeout) or whose build was cancelled finds its writes refused
//! ([`Lost`]) and stops, so a redelivered job never interleaves two runs' logs or
//! results.

use anyhow::Context;
use chrono::{DateTime, Utc};
use kiln_common::{
    Db, ServiceError,
    db::{Id, RowExt},
    events::{Event, outbox::Outbox},
    paging::Paging,
    timestamp, with_db, with_db_read,
};
use kiln_proto::v1::{Build, BuildLogLine, BuildStep};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

/// The statuses of a build; the last three are final.
pub const QUEUED: &str = "queued";
pub const RENDERING: &str = "rendering";
pub const BUILDING: &str = "building";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";
pub const STATUSES: &[&str] = &[QUEUED, RENDERING, BUILDING, SUCCEEDED, FAILED, CANCELLED];

pub fn is_final(status: &str) -> bool {
    matches!(status, SUCCEEDED | FAILED | CANCELLED)
}

const COLUMNS: &str = "id, workspace_id, application_id, application_slug, number, status, attempts, output_dir, \
    file_count, image_id, image_tags, image_size, image_skipped, image_skipped_reason, error, steps, created_at, \
    started_at, finished_at";

/// The run no longer holds its build: another attempt claimed it, or it was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("the build was taken over or cancelled; this run stops")]
pub struct Lost;

/// A build's row, as the worker reads it.
#[derive(Debug, Clone)]
pub struct BuildRow {
    pub build: Build,
    pub workspace_id: Uuid,
    pub application_slug: String,
}

/// One step's timing, as kept in `steps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Step {
    fn message(&self) -> BuildStep {
        let duration_ms =
            self.finished_at.map(|end| (end - self.started_at).num_milliseconds().max(0)).unwrap_or_default();
        BuildStep {
            name: self.name.clone(),
            status: self.status.clone(),
            started_at: Some(timestamp(self.started_at)),
            finished_at: self.finished_at.map(timestamp),
            duration_ms,
        }
    }
}

/// What a finished image step gave.
#[derive(Debug, Clone, Default)]
pub struct ImageOutcome {
    pub image_id: Option<String>,
    pub tags: Vec<String>,
    pub size: Option<i64>,
    /// Why the image was not built, when it was skipped.
    pub skipped: Option<String>,
}

/// A run's hold on its build (see the module's fencing).
#[derive(Debug, Clone)]
pub struct Claim {
    pub build_id: Uuid,
    pub token: Uuid,
    /// The log's last sequence when the run began; the run's lines follow it.
    pub last_sequence: i64,
    pub attempt: i32,
}

#[derive(Debug, Clone)]
pub struct BuildStore {
    db: Db,
    /// Where a build's end is told as an event (`build.succeeded|failed|cancelled`).
    events: Option<Outbox>,
}

fn row_to_build<R: RowExt>(row: &R) -> Result<BuildRow, sqlx::Error> {
    let mut steps: Vec<Step> = serde_json::from_value(row.json("steps")?).unwrap_or_default();
    let (status, finished_at) = (row.text("status")?, row.opt_time("finished_at")?);
    // A build ended by someone other than its run (cancelled, given up on) leaves open
    // the step its run was in: that step ended with the build.
    if is_final(&status) {
        for step in steps.iter_mut().filter(|step| step.finished_at.is_none()) {
            step.status.clone_from(&status);
            step.finished_at = finished_at.or(Some(step.started_at));
        }
    }
    let tags: Vec<String> = serde_json::from_value(row.json("image_tags")?).unwrap_or_default();
    let opt_text = |column: &str| row.text(column).ok();
    let build = Build {
        id: row.id("id")?.to_string(),
        application_id: row.id("application_id")?.to_string(),
        number: row.int("number")?,
        status,
        output_dir: row.text("output_dir")?,
        image_id: opt_text("image_id").unwrap_or_default(),
        image_tags: tags,
        image_skipped: row.boolean("image_skipped")?,
        error: opt_text("error").unwrap_or_default(),
        attempts: i32::try_from(row.int("attempts")?).unwrap_or(i32::MAX),
        created_at: Some(timestamp(row.time("created_at")?)),
        started_at: row.opt_time("started_at")?.map(timestamp),
        finished_at: finished_at.map(timestamp),
        image_size: row.int("image_size").unwrap_or_default(),
        image_skipped_reason: opt_text("image_skipped_reason").unwrap_or_default(),
        steps: steps.iter().map(Step::message).collect(),
        file_count: i32::try_from(row.int("file_count")?).unwrap_or(i32::MAX),
    };
    Ok(BuildRow { build, workspace_id: row.id("workspace_id")?, application_slug: row.text("application_slug")? })
}

/// `id` as a build id, or NOT_FOUND (an id that is not a UUID names no build).
pub fn build_id(id: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(id).map_err(|_| ServiceError::NotFound(format!("no build {id}")))
}

impl BuildStore {
    pub fn new(db: Db) -> Self {
        BuildStore { db, events: None }
    }

    /// Appends the event of each build's end to `outbox`.
    pub fn with_events(mut self, outbox: Outbox) -> Self {
        self.events = Some(outbox);
        self
    }

    /// Tells the outbox a build ended: `build.<status>`, with the build as the API shows it.
    async fn announce_end(&self, id: Uuid) {
        let Some(outbox) = &self.events else { return };
        let found = match self.find(id).await {
            Ok(Some(found)) if is_final(&found.build.status) => found,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(build_id = %id, error = %e, "an ended build could not be read for its event");
                return;
            }
        };
        let kind = format!("build.{}", found.build.status);
        let event = Event::new(found.workspace_id, &kind, "builds", &found.build.id, None)
            .with_after(serde_json::to_value(&found.build).ok());
        outbox.keep(&[event], None).await;
    }

    /// Records a queued build of an application, numbered after its previous builds:
    /// the number is taken and raised in the same transaction as the insert, so builds
    /// opened at once are numbered one after another, without a gap.
    pub async fn open(
        &self,
        workspace: Uuid,
        user: Uuid,
        application: Uuid,
        slug: &str,
        inputs: &Value,
    ) -> Result<Build, ServiceError> {
        let id = Id::new();
        let now = kiln_common::db::now();
        with_db!(&self.db, pool => async {
            let mut conn = pool.acquire().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let number: i64 = sqlx::query_scalar(
                "INSERT INTO build_numbers (application_id, last) VALUES ($1, 1) \
                 ON CONFLICT (application_id) DO UPDATE SET last = build_numbers.last + 1 RETURNING last",
            )
            .bind(Id(application))
            .fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO builds (id, workspace_id, application_id, application_slug, number, status, inputs, \
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8)",
            )
            .bind(id).bind(Id(workspace)).bind(Id(application)).bind(slug).bind(number).bind(Json(inputs))
            .bind(Id(user)).bind(now)
            .execute(&mut *tx).await?;
            tx.commit().await
        }.await)
        .context("recording a build")?;
        self.get(workspace, id.0).await
    }

    /// The build, if it is in `workspace`.
    pub async fn get(&self, workspace: Uuid, id: Uuid) -> Result<Build, ServiceError> {
        let row = self.find(id).await?;
        match row {
            Some(row) if row.workspace_id == workspace => Ok(row.build),
            _ => Err(ServiceError::NotFound(format!("no build {id}"))),
        }
    }

    /// The build whatever its workspace (the worker's view).
    pub async fn find(&self, id: Uuid) -> Result<Option<BuildRow>, ServiceError> {
        let sql = format!("SELECT {COLUMNS} FROM builds WHERE id = $1");
        let row = with_db_read!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(id)).fetch_optional(pool).await {
                Ok(Some(row)) => row_to_build(&row).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .context("reading a build")?;
        Ok(row)
    }

    /// The build's inputs (what it renders).
    pub async fn inputs(&self, id: Uuid) -> Result<Value, ServiceError> {
        let inputs = with_db_read!(&self.db, pool => {
            match sqlx::query("SELECT inputs FROM builds WHERE id = $1").bind(Id(id)).fetch_one(pool).await {
                Ok(row) => row.json("inputs"),
                Err(e) => Err(e),
            }
        })
        .context("reading a build's inputs")?;
        Ok(inputs)
    }

    /// A page of the workspace's builds, newest first, of one application and in one
    /// status when given.
    pub async fn list(
        &self,
        workspace: Uuid,
        application: Option<Uuid>,
        status: Option<&str>,
        paging: &Paging<(DateTime<Utc>, Uuid)>,
    ) -> Result<(Vec<Build>, String), ServiceError> {
        let mut sql = format!("SELECT {COLUMNS} FROM builds WHERE workspace_id = $1");
        // Placeholders are numbered as the conditions are added; every value is bound.
        let mut next = 2;
        let mut placeholder = || {
            next += 1;
            format!("${}", next - 1)
        };
        if application.is_some() {
            sql.push_str(&format!(" AND application_id = {}", placeholder()));
        }
        if status.is_some() {
            sql.push_str(&format!(" AND status = {}", placeholder()));
        }
        if paging.after.is_some() {
            let (at, id) = (placeholder(), placeholder());
            sql.push_str(&format!(" AND (created_at < {at} OR (created_at = {at} AND id < {id}))"));
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", placeholder()));
        let rows = with_db_read!(&self.db, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(Id(workspace));
            if let Some(application) = application {
                query = query.bind(Id(application));
            }
            if let Some(status) = status {
                query = query.bind(status.to_string());
            }
            if let Some((at, id)) = paging.after {
                query = query.bind(at).bind(Id(id));
            }
            match query.bind(paging.fetch()).fetch_all(pool).await {
                Ok(rows) => rows.iter().map(row_to_build).collect::<Result<Vec<_>, _>>(),
                Err(e) => Err(e),
            }
        })
        .context("listing builds")?;
        let mut builds: Vec<Build> = rows.into_iter().map(|row| row.build).collect();
        let token = paging.finish(&mut builds, |build| {
            let at = build
                .created_at
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos as u32))
                .unwrap_or_default();
            (at, Uuid::parse_str(&build.id).unwrap_or_default())
        });
        Ok((builds, token))
    }

    /// Cancels a build that has not finished: a queued one is never run, a running one's
    /// run loses its hold. FAILED_PRECONDITION for a finished build.
    pub async fn cancel(&self, workspace: Uuid, id: Uuid) -> Result<Build, ServiceError> {
        let build = self.get(workspace, id).await?;
        if is_final(&build.status) {
            return Err(ServiceError::FailedPrecondition(format!("the build has already {}", build.status)));
        }
        self.finish_unless_final(id, CANCELLED, "cancelled by a user").await?;
        let build = self.get(workspace, id).await?;
        if build.status != CANCELLED {
            return Err(ServiceError::FailedPrecondition(format!("the build has already {}", build.status)));
        }
        Ok(build)
    }

    /// Ends an unfinished build as `status` for `reason`, whoever runs it.
    pub async fn finish_unless_final(&self, id: Uuid, status: &str, reason: &str) -> Result<bool, ServiceError> {
        let now = kiln_common::db::now();
        let changed = with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE builds SET status = $2, error = $3, finished_at = $4, run_token = NULL \
                 WHERE id = $1 AND status IN ('queued', 'rendering', 'building')",
            )
            .bind(Id(id)).bind(status).bind(reason).bind(now)
            .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("ending a build")?;
        if changed == 1 {
            self.announce_end(id).await;
        }
        Ok(changed == 1)
    }

    /// Puts a running build back to `queued` after a failed attempt, with why; its run
    /// loses the build.
    pub async fn requeue(&self, id: Uuid, note: &str) -> Result<(), ServiceError> {
        with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE builds SET status = 'queued', error = $2, run_token = NULL \
                 WHERE id = $1 AND status IN ('rendering', 'building')",
            )
            .bind(Id(id)).bind(note)
            .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("putting a build back in the queue")?;
        Ok(())
    }

    /// Starts a run of the build: a new fence, the status `rendering`, one more attempt.
    /// None when the build has finished (a job redelivered after its build ended, or
    /// one cancelled while queued).
    pub async fn claim(&self, id: Uuid) -> Result<Option<Claim>, ServiceError> {
        let token = Uuid::new_v4();
        let now = kiln_common::db::now();
        let claimed = with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE builds SET run_token = $2, status = 'rendering', attempts = attempts + 1, \
                 started_at = COALESCE(started_at, $3), steps = '[]', error = NULL \
                 WHERE id = $1 AND status IN ('queued', 'rendering', 'building') RETURNING attempts",
            )
            .bind(Id(id)).bind(Id(token)).bind(now)
            .fetch_optional(pool).await
            .and_then(|row| row.map(|row| row.int("attempts")).transpose())
        })
        .context("claiming a build")?;
        let Some(attempt) = claimed else { return Ok(None) };
        let last_sequence = with_db!(&self.db, pool => {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(sequence) FROM build_logs WHERE build_id = $1")
                .bind(Id(id)).fetch_one(pool).await
        })
        .context("reading a build's log")?
        .unwrap_or(0);
        Ok(Some(Claim { build_id: id, token, last_sequence, attempt: i32::try_from(attempt).unwrap_or(i32::MAX) }))
    }

    /// Appends the run's next log line; [`Lost`] when the run no longer holds the build.
    pub async fn append_log(&self, claim: &Claim, line: &BuildLogLine, at: DateTime<Utc>) -> anyhow::Result<()> {
        let written = with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO build_logs (build_id, sequence, at, level, message) \
                 SELECT id, $3, $4, $5, $6 FROM builds WHERE id = $1 AND run_token = $2",
            )
            .bind(Id(claim.build_id)).bind(Id(claim.token)).bind(line.sequence).bind(at).bind(&line.level)
            .bind(&line.message)
            .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("writing a build's log")?;
        if written == 0 {
            return Err(Lost.into());
        }
        Ok(())
    }

    /// The build's log lines after `after`, oldest first.
    pub async fn logs_after(&self, id: Uuid, after: i64, limit: i64) -> Result<Vec<BuildLogLine>, ServiceError> {
        let lines = with_db_read!(&self.db, pool => {
            match sqlx::query(
                "SELECT sequence, at, level, message FROM build_logs WHERE build_id = $1 AND sequence > $2 \
                 ORDER BY sequence LIMIT $3",
            )
            .bind(Id(id)).bind(after).bind(limit)
            .fetch_all(pool).await
            {
                Ok(rows) => rows
                    .iter()
                    .map(|row| {
                        Ok(BuildLogLine {
                            sequence: row.int("sequence")?,
                            time: Some(timestamp(row.time("at")?)),
                            level: row.text("level")?,
                            message: row.text("message")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>(),
                Err(e) => Err(e),
            }
        })
        .context("reading a build's log")?;
        Ok(lines)
    }

    /// Sets the run's status and steps; [`Lost`] when the run no longer holds the build.
    pub async fn progress(&self, claim: &Claim, status: &str, steps: &[Step]) -> anyhow::Result<()> {
        let steps = serde_json::to_value(steps)?;
        let changed = with_db!(&self.db, pool => {
            sqlx::query("UPDATE builds SET status = $3, steps = $4 WHERE id = $1 AND run_token = $2")
                .bind(Id(claim.build_id)).bind(Id(claim.token)).bind(status).bind(Json(&steps))
                .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("recording a build's progress")?;
        if changed == 0 {
            return Err(Lost.into());
        }
        Ok(())
    }

    /// Records what the render step wrote.
    pub async fn rendered(&self, claim: &Claim, output_dir: &str, files: usize) -> anyhow::Result<()> {
        let files = i64::try_from(files).unwrap_or(i64::MAX);
        let changed = with_db!(&self.db, pool => {
            sqlx::query("UPDATE builds SET output_dir = $3, file_count = $4 WHERE id = $1 AND run_token = $2")
                .bind(Id(claim.build_id)).bind(Id(claim.token)).bind(output_dir).bind(files)
                .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("recording a build's source tree")?;
        if changed == 0 {
            return Err(Lost.into());
        }
        Ok(())
    }

    /// Keeps the build's source tree.
    pub async fn store_artifact(&self, claim: &Claim, bytes: &[u8], sha256: &str) -> anyhow::Result<()> {
        let written = with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO build_artifacts (build_id, bytes, sha256) \
                 SELECT id, $3, $4 FROM builds WHERE id = $1 AND run_token = $2 \
                 ON CONFLICT (build_id) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256",
            )
            .bind(Id(claim.build_id)).bind(Id(claim.token)).bind(bytes).bind(sha256)
            .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("storing a build's artifact")?;
        if written == 0 {
            return Err(Lost.into());
        }
        Ok(())
    }

    /// The build's source tree as a .tar.gz, if it was rendered.
    pub async fn artifact(&self, id: Uuid) -> Result<Option<(Vec<u8>, String)>, ServiceError> {
        let artifact = with_db_read!(&self.db, pool => {
            sqlx::query_as::<_, (Vec<u8>, String)>("SELECT bytes, sha256 FROM build_artifacts WHERE build_id = $1")
                .bind(Id(id)).fetch_optional(pool).await
        })
        .context("reading a build's artifact")?;
        Ok(artifact)
    }

    /// Ends the run: `status` with the image step's outcome or the error. [`Lost`] when
    /// the run no longer holds the build.
    pub async fn finish(
        &self,
        claim: &Claim,
        status: &str,
        steps: &[Step],
        image: &ImageOutcome,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let steps = serde_json::to_value(steps)?;
        let now = kiln_common::db::now();
        let changed = with_db!(&self.db, pool => {
            sqlx::query(
                "UPDATE builds SET status = $3, steps = $4, image_id = $5, image_tags = $6, image_size = $7, \
                 image_skipped = $8, image_skipped_reason = $9, error = $10, finished_at = $11, run_token = NULL \
                 WHERE id = $1 AND run_token = $2",
            )
            .bind(Id(claim.build_id)).bind(Id(claim.token)).bind(status).bind(Json(&steps))
            .bind(image.image_id.as_deref()).bind(Json(&image.tags)).bind(image.size)
            .bind(image.skipped.is_some()).bind(image.skipped.as_deref()).bind(error).bind(now)
            .execute(pool).await.map(|done| done.rows_affected())
        })
        .context("finishing a build")?;
        if changed == 0 {
            return Err(Lost.into());
        }
        self.announce_end(claim.build_id).await;
        Ok(())
    }
}
