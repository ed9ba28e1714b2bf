//! What starts workflows by themselves: the events of the bus ([`follow_events`], the
//! consumer group `workflows`, so of several app-svc processes one handles each event)
//! and schedules ([`keep_schedules`]). Only enabled workflows start. An event starts a
//! workflow whose trigger listens for its kind and subject and whose condition holds for
//! its record, once however often the event is delivered (the run row names the event).
//! A schedule's tick is taken by inserting `(workflow, tick)` into `workflow_ticks`: the
//! one process whose insert lands runs it, so two processes never both do.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use kiln_common::{
    Db,
    db::{Id, RowExt},
    events::{Event, SharedBus},
    with_db, with_db_read,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{Started, Workflows, sandbox, spec};

/// The bus's consumer group of the workflow engine.
pub const EVENT_GROUP: &str = "workflows";

/// How often schedules are looked at: every second, for crons that name seconds.
const SCHEDULE_POLL: Duration = Duration::from_secs(1);

/// Taken ticks are kept this long, then pruned.
const TICKS_KEPT: chrono::Duration = chrono::Duration::days(1);

/// An enabled workflow with a trigger of one kind.
struct Triggered {
    id: Uuid,
    workspace: Uuid,
    trigger: Value,
}

/// The enabled workflows whose trigger is of `kind`, of one workspace or of all.
async fn enabled_with(db: &Db, kind: &str, workspace: Option<Uuid>) -> anyhow::Result<Vec<Triggered>> {
    let kind_of = match db {
        Db::Postgres(_) => "\"trigger\"->>'kind'",
        Db::Sqlite(_) => "json_extract(\"trigger\", '$.kind')",
    };
    let sql = format!(
        "SELECT id, workspace_id, \"trigger\" FROM workflows WHERE {kind_of} = $1 AND COALESCE(enabled, TRUE) \
         AND ($2 IS NULL OR workspace_id = $2) ORDER BY created_at, id"
    );
    let rows = with_db_read!(db, pool => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind).bind(workspace.map(Id)).fetch_all(pool).await?;
        rows.iter()
            .map(|row| Ok(Triggered { id: row.id("id")?, workspace: row.id("workspace_id")?, trigger: row.json("trigger")? }))
            .collect::<Result<Vec<_>, sqlx::Error>>()
    })?;
    Ok(rows)
}

impl Workflows {
    /// Starts every enabled workflow of the event's workspace that `event` triggers, and
    /// returns the runs started (their actions go on in the background). A condition
    /// that cannot be evaluated (a field the record lacks) counts as not holding, and is
    /// logged.
    pub async fn on_event(&self, event: &Event) -> anyhow::Result<Vec<Uuid>> {
        let candidates = enabled_with(&self.db, "on_event", Some(event.workspace)).await?;
        let event_json = event.to_public_json();
        let input = json!({
            "event": event_json,
            "record": event.after.as_ref().or(event.before.as_ref()),
            "before": event.before,
        });
        let mut started = Vec::new();
        for candidate in candidates {
            let Some(trigger) = spec::stored_on_event(&candidate.trigger) else { continue };
            if !trigger.listens_for(&event.kind, &event.subject) {
                continue;
            }
            if let spec::Trigger::OnEvent { condition: Some(condition), .. } = &trigger {
                let (condition, context) = (condition.clone(), input.clone());
                let holds = sandbox::run_bounded(
                    move || sandbox::condition_holds(&condition, &context),
                    sandbox::CONDITION_LIMITS.time,
                )
                .await;
                match holds {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(why) => {
                        tracing::info!(workflow = %candidate.id, event = %event.id, error = %why, "a workflow's condition could not be evaluated; not started");
                        continue;
                    }
                }
            }
            let run = self
                .start(
                    event.workspace,
                    event.actor,
                    candidate.id,
                    Started::OnEvent,
                    input.clone(),
                    Some(event.id),
                    None,
                    true,
                )
                .await;
            match run {
                Ok(Some(run)) => {
                    started.push(run.id);
                    let engine = self.clone();
                    tokio::spawn(async move { engine.finish(run).await }.in_current_span());
                }
                // Started before, for an earlier delivery of this event.
                Ok(None) => {}
                // Deleted or disabled in between.
                Err(kiln_common::ServiceError::FailedPrecondition(_)) => {}
                Err(e) => return Err(anyhow::Error::from(e)),
            }
        }
        Ok(started)
    }

    /// Takes the schedule ticks that are due by `now`, each once across every process,
    /// and starts their runs. `next` is when each schedule ticks next, as this process
    /// has seen it (by workflow and cron expression, so a changed cron starts afresh).
    pub async fn tick(
        &self,
        now: DateTime<Utc>,
        next: &mut HashMap<(Uuid, String), DateTime<Utc>>,
    ) -> anyhow::Result<Vec<Uuid>> {
        let schedules = enabled_with(&self.db, "schedule", None).await?;
        let mut seen = HashMap::new();
        let mut started = Vec::new();
        for schedule in schedules {
            let Some(expression) = schedule.trigger.get("cron").and_then(Value::as_str).map(str::trim) else {
                continue;
            };
            let Ok(cron) = spec::parse_cron(expression) else { continue };
            let key = (schedule.id, expression.to_string());
            // First seen: it ticks next after now (a tick missed while no process ran is
            // not made up for).
            let due = match next.get(&key) {
                Some(due) => *due,
                None => match cron.find_next_occurrence(&now, false) {
                    Ok(due) => due,
                    Err(_) => continue,
                },
            };
            if due > now {
                seen.insert(key, due);
                continue;
            }
            if self.take_tick(schedule.id, due).await? {
                let input = json!({ "schedule": { "cron": expression, "tick": due } });
                match self
                    .start(schedule.workspace, None, schedule.id, Started::Schedule, input, None, None, true)
                    .await
                {
                    Ok(Some(run)) => {
                        started.push(run.id);
                        let engine = self.clone();
                        tokio::spawn(async move { engine.finish(run).await }.in_current_span());
                    }
                    Ok(None) | Err(kiln_common::ServiceError::FailedPrecondition(_)) => {}
                    Err(e) => {
                        // Given back, so this process or another takes it on its next look.
                        self.give_back_tick(schedule.id, due).await;
                        return Err(anyhow::Error::from(e));
                    }
                }
            }
            if let Ok(after) = cron.find_next_occurrence(&now, false) {
                seen.insert(key, after);
            }
        }
        // Workflows gone, disabled or rescheduled are forgotten.
        *next = seen;
        Ok(started)
    }

    /// Whether this process took workflow `id`'s tick at `due` (no other did before).
    async fn take_tick(&self, id: Uuid, due: DateTime<Utc>) -> anyhow::Result<bool> {
        let taken = with_db!(&self.db, pool => {
            sqlx::query("INSERT INTO workflow_ticks (workflow_id, tick_at, taken_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(Id(id)).bind(due).bind(kiln_common::db::now())
                .execute(pool).await.map(|done| done.rows_affected() == 1)
        })?;
        Ok(taken)
    }

    async fn give_back_tick(&self, id: Uuid, due: DateTime<Utc>) {
        let given = with_db!(&self.db, pool => {
            sqlx::query("DELETE FROM workflow_ticks WHERE workflow_id = $1 AND tick_at = $2")
                .bind(Id(id)).bind(due).execute(pool).await.map(|_| ())
        });
        if let Err(e) = given {
            tracing::warn!(workflow = %id, error = %e, "could not give back a schedule tick; it is skipped");
        }
    }

    async fn prune_ticks(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        with_db!(&self.db, pool => {
            sqlx::query("DELETE FROM workflow_ticks WHERE taken_at < $1").bind(now - TICKS_KEPT).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }
}

/// Starts the workflows each event of the bus triggers, until `stop`.
pub async fn follow_events(workflows: Workflows, bus: SharedBus, stop: CancellationToken) {
    consume(bus, EVENT_GROUP, stop, move |event| {
        let workflows = workflows.clone();
        async move { workflows.on_event(&event).await.map(|_| ()) }
    })
    .await
}

/// Hands each event of the consumer group `group` to `handle`, until `stop`. An event is
/// acknowledged once handled; one that could not be (the database was away) is handled
/// again after a pause, so handlers must be idempotent (the bus delivers at least once
/// anyway).
pub async fn consume<F, Fut>(bus: SharedBus, group: &str, stop: CancellationToken, handle: F)
where
    F: Fn(Event) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut pause = Duration::from_millis(200);
    let mut subscription = loop {
        match bus.subscribe(group).await {
            Ok(subscription) => break subscription,
            Err(e) => {
                tracing::warn!(group, error = %format!("{e:#}"), "cannot follow the event bus yet; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_secs(5)),
                }
            }
        }
    };
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => return,
            delivery = subscription.next() => match delivery {
                Some(delivery) => delivery,
                None => return,
            },
        };
        let mut pause = Duration::from_millis(200);
        let span = delivery.begin(group);
        while let Err(e) = handle(delivery.event.clone()).instrument(span.clone()).await {
            tracing::warn!(group, event = %delivery.event.id, error = %format!("{e:#}"), "could not handle an event; trying again");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_secs(5)),
            }
        }
        if let Err(e) = delivery.ack().await {
            tracing::warn!(group, error = %format!("{e:#}"), "could not acknowledge an event (it comes again, and is handled once)");
        }
    }
}

/// Runs schedules every [`SCHEDULE_POLL`] until `stop`.
pub async fn keep_schedules(workflows: Workflows, stop: CancellationToken) {
    let mut next = HashMap::new();
    let mut interval = tokio::time::interval(SCHEDULE_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pruned = Utc::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = Utc::now();
        if let Err(e) = workflows.tick(now, &mut next).await {
            tracing::warn!(error = %format!("{e:#}"), "could not run the workflows' schedules this time");
        }
        if now - pruned > chrono::Duration::hours(1) {
            pruned = now;
            if let Err(e) = workflows.prune_ticks(now).await {
                tracing::warn!(error = %format!("{e:#}"), "could not prune old schedule ticks");
            }
        }
    }
}
