//! The consumer of the `app_builds` queue: takes a job, claims its build, renders the
//! template set into `KILN_GENERATED_DIR/<workspace>/<application>/<build>/`, keeps the
//! tree as a .tar.gz artifact, builds the image when a Docker engine answers, and records
//! every step, log line and status, announcing each on the feed.
//!
//! A build is idempotent on its id: a job whose build has finished is completed at once;
//! a redelivered job starts a new run that fences the old one out (see `store`). A
//! template that does not render fails the build for good; anything else (the engine or
//! the database failing) fails the attempt, which the queue retries with backoff until
//! `build_max_attempts`, then dead-letters, failing the build with the reason.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use chrono::Utc;
use futures::StreamExt;
use kiln_common::{
    queue::{Failed, Job, JobQueue},
    templating, timestamp,
};
use kiln_proto::v1::{BuildEvent, BuildLogLine, build_event};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    docker::{self, ImageRequest},
    feed::{BuildFeed, FeedItem, Notice},
    render,
    store::{self, BuildStore, Claim, ImageOutcome, Lost, Step},
};

/// The queue builds travel on.
pub const BUILD_QUEUE: &str = "app_builds";

/// How long an idle worker waits before asking the queue again.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Where images are built.
#[derive(Debug, Clone)]
pub enum ImageEngine {
    /// No engine configured or wanted: every build skips the image step, saying so.
    Off(String),
    Docker {
        host: Option<String>,
        network: Option<String>,
    },
}

/// One worker of the queue.
#[derive(Clone)]
pub struct Worker {
    pub name: String,
    pub store: BuildStore,
    pub queue: Arc<dyn JobQueue>,
    pub feed: Arc<dyn BuildFeed>,
    pub generated_dir: PathBuf,
    pub engine: ImageEngine,
    /// How often a running build renews its job's visibility timeout (a third of it).
    pub keep_every: Duration,
}

/// How one run ended.
enum Outcome {
    Succeeded,
    /// The build failed for good (a template did not render): no retry.
    Failed(String),
}

impl Worker {
    /// Takes and runs jobs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(worker = %self.name, "build worker is taking jobs");
        loop {
            let taken = tokio::select! {
                () = stop.cancelled() => return,
                taken = self.queue.take(&self.name) => taken,
            };
            match taken {
                Ok(Some(job)) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.handle(job) => {}
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "the build queue did not answer; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(IDLE_POLL * 10) => {}
                    }
                }
            }
        }
    }

    /// Runs one job to its end and settles it with the queue, in the trace of whoever
    /// queued it.
    pub async fn handle(&self, job: Job) {
        let span = tracing::info_span!(
            "build",
            otel.name = format!("process {BUILD_QUEUE}"),
            otel.kind = "consumer",
            messaging.operation.type = "process",
            messaging.destination.name = BUILD_QUEUE,
            messaging.message.id = job.id.as_str(),
            kiln.build.attempt = job.attempt,
        );
        let trace = job.payload.get(kiln_common::telemetry::TRACEPARENT).and_then(Value::as_str);
        kiln_common::telemetry::follow(&span, trace);
        self.handle_job(job).instrument(span).await
    }

    async fn handle_job(&self, job: Job) {
        let Some(build_id) =
            job.payload.get("build_id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok())
        else {
            tracing::warn!(job = %job.id, payload = %job.payload, "a build job without a build id; dropped");
            report(&job, self.queue.fail(&job, "the job names no build").await);
            return;
        };
        // Jobs come from workspaces' workflows: one may only build its own workspace's builds.
        let named = job.payload.get("workspace_id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok());
        match self.store.find(build_id).await {
            Ok(Some(row)) if Some(row.workspace_id) == named => {}
            Ok(_) => {
                tracing::warn!(job = %job.id, %build_id, "a build job not of the build's workspace; dropped");
                report(&job, self.queue.fail(&job, "the job names another workspace's build, or none").await);
                return;
            }
            Err(error) => {
                report::<()>(&job, Err(anyhow::Error::from(error)));
                return;
            }
        }
        match self.attempt(build_id, &job).await {
            Ok(()) => report(&job, self.queue.complete(&job).await),
            Err(error) if error.downcast_ref::<Lost>().is_some() => {
                tracing::info!(%build_id, "the build was cancelled or taken over; this run stopped");
                // Cancelled: the job is done. Taken over: it is the other worker's now,
                // and completing it here would take it from under that worker.
                match self.queue.keep(&job).await {
                    Ok(true) => report(&job, self.queue.complete(&job).await),
                    Ok(false) => {}
                    Err(error) => report::<()>(&job, Err(error)),
                }
            }
            Err(error) => {
                let reason = format!("{error:#}");
                tracing::warn!(%build_id, attempt = job.attempt, reason, "a build attempt failed");
                match self.queue.fail(&job, &reason).await {
                    Ok(Failed::Retrying(wait)) => {
                        let note =
                            format!("attempt {} failed: {reason}; retrying in {} s", job.attempt, wait.as_secs());
                        let _ = self.store.requeue(build_id, &note).await;
                        self.announce_status(build_id).await;
                    }
                    Ok(Failed::Dead) => {
                        let note = format!("gave up after {} attempts: {reason}", job.attempt);
                        let _ = self.store.finish_unless_final(build_id, store::FAILED, &note).await;
                        self.announce_status(build_id).await;
                    }
                    Ok(Failed::NoLongerHeld) => {}
                    Err(error) => tracing::warn!(%build_id, error = format!("{error:#}"), "could not report a failure"),
                }
            }
        }
    }

    /// One run of the build: claims it, then renders and builds until done, cancelled
    /// (the feed's notice or a lost fence) or failed.
    async fn attempt(&self, build_id: Uuid, job: &Job) -> anyhow::Result<()> {
        let Some(claim) = self.store.claim(build_id).await? else {
            // Finished already (a redelivery) or cancelled while queued: nothing to do.
            return Ok(());
        };
        tracing::info!(worker = %self.name, %build_id, attempt = claim.attempt, "running a build");
        let mut cancels = self.feed.subscribe(build_id).await?;
        let mut run = Run { worker: self, sequence: claim.last_sequence, claim, steps: Vec::new() };
        let cancelled = async {
            while let Some(item) = cancels.next().await {
                if item == FeedItem::Notice(Notice::Cancel) {
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        // The job stays this worker's while the build runs; if another took it, this run
        // stops (the other one starts over).
        let kept = async {
            let mut every = tokio::time::interval(self.keep_every);
            every.tick().await;
            loop {
                every.tick().await;
                match self.queue.keep(job).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(%build_id, error = format!("{error:#}"), "could not renew a build job")
                    }
                }
            }
        };
        let result = tokio::select! {
            result = run.execute(job) => result,
            () = cancelled => Err(Lost.into()),
            () = kept => Err(Lost.into()),
        };
        // The end, whatever it was, is announced with the build as it now is.
        if let Some(build) = self.announce_status(build_id).await
            && store::is_final(&build.status)
        {
            tracing::info!(worker = %self.name, %build_id, status = build.status, "a build ended");
            metrics::counter!("kiln_builds_total", "status" => build.status.clone()).increment(1);
            let started = build.started_at.map(|t| t.seconds).unwrap_or_default();
            let finished = build.finished_at.map(|t| t.seconds).unwrap_or(started);
            metrics::histogram!("kiln_build_duration_seconds").record((finished - started).max(0) as f64);
        }
        result
    }

    /// Announces the build as it is now, and returns it.
    async fn announce_status(&self, build_id: Uuid) -> Option<kiln_proto::v1::Build> {
        let build = self.store.find(build_id).await.ok()??.build;
        self.feed.publish(build_id, &Notice::Event(Box::new(status_event(build.clone())))).await;
        Some(build)
    }
}

/// Logs a job the queue could not be told about; the queue's visibility timeout brings
/// it back.
fn report<T>(job: &Job, settled: anyhow::Result<T>) {
    if let Err(error) = settled {
        tracing::warn!(job = %job.id, error = format!("{error:#}"), "could not settle a build job");
    }
}

/// How often the queue's counts are read into the `kiln_build_queue_jobs` gauges.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Keeps `kiln_build_queue_jobs{state}` (waiting, in_flight, retrying, dead) current
/// until `stop`.
pub async fn queue_gauges(queue: Arc<dyn JobQueue>, stop: CancellationToken) {
    let mut every = tokio::time::interval(GAUGES_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Ok(stats) = queue.stats().await {
            for (state, count) in [
                ("waiting", stats.waiting),
                ("in_flight", stats.in_flight),
                ("retrying", stats.retrying),
                ("dead", stats.dead),
            ] {
                metrics::gauge!("kiln_build_queue_jobs", "state" => state).set(count as f64);
            }
        }
    }
}

pub fn status_event(build: kiln_proto::v1::Build) -> BuildEvent {
    BuildEvent { event: Some(build_event::Event::Build(build)) }
}

/// One run of one build.
struct Run<'a> {
    worker: &'a Worker,
    claim: Claim,
    steps: Vec<Step>,
    sequence: i64,
}

impl Run<'_> {
    async fn log(&mut self, level: &str, message: impl Into<String>) -> anyhow::Result<()> {
        self.sequence += 1;
        // As the database keeps it, so a line reads the same live and stored.
        let at = kiln_common::db::truncate_time(Utc::now());
        let line = BuildLogLine {
            sequence: self.sequence,
            time: Some(timestamp(at)),
            level: level.into(),
            message: message.into(),
        };
        self.worker.store.append_log(&self.claim, &line, at).await?;
        let event = BuildEvent { event: Some(build_event::Event::Log(line)) };
        self.worker.feed.publish(self.claim.build_id, &Notice::Event(Box::new(event))).await;
        Ok(())
    }

    async fn status(&mut self, status: &str) -> anyhow::Result<()> {
        self.worker.store.progress(&self.claim, status, &self.steps).await?;
        self.worker.announce_status(self.claim.build_id).await;
        Ok(())
    }

    fn begin_step(&mut self, name: &str) {
        self.steps.push(Step {
            name: name.into(),
            status: "running".into(),
            started_at: Utc::now(),
            finished_at: None,
        });
    }

    fn end_step(&mut self, status: &str) {
        if let Some(step) = self.steps.last_mut() {
            step.status = status.into();
            step.finished_at = Some(Utc::now());
        }
    }

    async fn execute(&mut self, job: &Job) -> anyhow::Result<()> {
        let worker = self.worker;
        let row = worker.store.find(self.claim.build_id).await?.ok_or(Lost)?;
        let build = row.build;
        self.log("info", format!("attempt {} on worker {}", self.claim.attempt, worker.name)).await?;
        if job.attempt > 1 {
            self.log("warn", "an earlier attempt did not finish; this one starts over").await?;
        }
        let inputs = worker.store.inputs(self.claim.build_id).await?;
        self.begin_step("render");
        self.status(store::RENDERING).await?;
        let files = match self.render(&inputs, &build, row.workspace_id).await? {
            Ok(files) => files,
            Err(reason) => return self.fail(&reason).await,
        };
        self.end_step("succeeded");
        self.begin_step("image");
        self.status(store::BUILDING).await?;
        let image = self.image(&inputs, &build, row.workspace_id, &row.application_slug, &files).await?;
        let outcome = match image {
            Ok(image) => {
                self.end_step(if image.skipped.is_some() { "skipped" } else { "succeeded" });
                let status = match &image.skipped {
                    Some(reason) => format!("image step skipped: {reason}"),
                    None => format!("built {} ({})", image.tags.join(", "), image.image_id.as_deref().unwrap_or("")),
                };
                self.log(if image.skipped.is_some() { "warn" } else { "info" }, status).await?;
                worker.store.finish(&self.claim, store::SUCCEEDED, &self.steps, &image, None).await?;
                Outcome::Succeeded
            }
            Err(reason) => Outcome::Failed(reason),
        };
        match outcome {
            Outcome::Succeeded => Ok(()),
            Outcome::Failed(reason) => self.fail(&reason).await,
        }
    }

    /// Ends the build as failed for good.
    async fn fail(&mut self, reason: &str) -> anyhow::Result<()> {
        self.end_step("failed");
        self.log("error", reason).await?;
        self.worker.store.finish(&self.claim, store::FAILED, &self.steps, &ImageOutcome::default(), Some(reason)).await
    }

    /// Renders the set and writes the tree and the artifact; the inner error is a
    /// template's, which fails the build.
    async fn render(
        &mut self,
        inputs: &Value,
        build: &kiln_proto::v1::Build,
        workspace: Uuid,
    ) -> anyhow::Result<Result<Vec<render::RenderedFile>, String>> {
        let templates: Vec<templating::TemplateInput> =
            serde_json::from_value(inputs.get("templates").cloned().unwrap_or_default())
                .context("the build's templates")?;
        if templates.is_empty() {
            return Ok(Err("the application's template set has no templates".into()));
        }
        self.log("info", format!("rendering {} templates", templates.len())).await?;
        let context = templating::context(inputs, &build.id, build.number);
        // Rendering is CPU work of any length a template asks for: off the runtime's threads.
        let rendered = tokio::task::spawn_blocking(move || templating::render_set(&templates, &context)).await?;
        let files = match rendered {
            Ok(files) => files,
            Err(error) => return Ok(Err(format!("template `{}` did not render: {}", error.template, error.reason))),
        };
        let tree = PathBuf::from(workspace.to_string()).join(&build.application_id).join(&build.id);
        let base = self.worker.generated_dir.clone();
        let written = {
            let files = files.clone();
            let tree = tree.clone();
            tokio::task::spawn_blocking(move || render::write_tree(&base, &tree, &files)).await?
        };
        let root = match written {
            Ok(root) => root,
            Err(error) => return Ok(Err(format!("the source tree could not be written: {error:#}"))),
        };
        let artifact = templating::gzip(&templating::tar(&files, Path::new(""))?)?;
        let sha256 = hex::encode(Sha256::digest(&artifact));
        self.worker.store.store_artifact(&self.claim, &artifact, &sha256).await?;
        self.worker.store.rendered(&self.claim, &root.display().to_string(), files.len()).await?;
        self.log("info", format!("rendered {} files into {}", files.len(), root.display())).await?;
        Ok(Ok(files))
    }

    /// The image step; the inner error fails the build (the Dockerfile did not build).
    async fn image(
        &mut self,
        inputs: &Value,
        build: &kiln_proto::v1::Build,
        workspace: Uuid,
        slug: &str,
        files: &[render::RenderedFile],
    ) -> anyhow::Result<Result<ImageOutcome, String>> {
        let skipped = |reason: String| Ok(Ok(ImageOutcome { skipped: Some(reason), ..ImageOutcome::default() }));
        let (host, network) = match &self.worker.engine {
            ImageEngine::Off(reason) => return skipped(reason.clone()),
            ImageEngine::Docker { host, network } => (host.clone(), network.clone()),
        };
        if !files.iter().any(|file| file.path == std::path::Path::new("Dockerfile")) {
            return skipped("the template set writes no Dockerfile".into());
        }
        let docker = match docker::connect(host.as_deref()) {
            Ok(docker) => docker,
            Err(error) => return skipped(format!("{error:#}")),
        };
        let docker = match docker::reachable(&docker).await {
            Ok(docker) => docker,
            Err(reason) => return skipped(reason),
        };
        let build_args: HashMap<String, String> = inputs
            .pointer("/application/config/build_args")
            .and_then(Value::as_object)
            .map(|args| args.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        let labels = HashMap::from([
            (docker::LABEL_WORKSPACE.to_string(), workspace.to_string()),
            (docker::LABEL_APPLICATION.to_string(), build.application_id.clone()),
            (docker::LABEL_BUILD.to_string(), build.id.clone()),
        ]);
        let request = ImageRequest {
            repository: format!("kiln/{workspace}/{slug}"),
            tag: build.number.to_string(),
            build_args,
            labels,
            context: templating::tar(files, Path::new(""))?,
            network: network.as_deref(),
        };
        self.log("info", format!("building image {}:{}", request.repository, request.tag)).await?;
        let (repository, tag) = (request.repository.clone(), request.tag.clone());
        let mut output = std::pin::pin!(docker::build_image(&docker, request));
        while let Some(lines) = output.next().await {
            let lines = match lines {
                Ok(lines) => lines,
                Err(error) => match error.downcast::<docker::Refused>() {
                    Ok(refused) => return Ok(Err(format!("the image did not build: {}", refused.0.trim()))),
                    Err(error) => return Err(error),
                },
            };
            for line in lines {
                match line {
                    docker::BuildOutput::Line(line) => self.log("info", line).await?,
                    docker::BuildOutput::Failed(reason) => {
                        return Ok(Err(format!("the image did not build: {reason}")));
                    }
                }
            }
        }
        let image = docker::finish_image(&docker, &repository, &tag).await?;
        Ok(Ok(ImageOutcome { image_id: Some(image.id), tags: image.tags, size: image.size, skipped: None }))
    }
}
