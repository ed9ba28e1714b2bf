//! BuildService (what users ask of builds) and BuildRecordService (app-svc opening the
//! record of a build it queues), over the `builds` tables, the feed and the queue.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use kiln_common::{Authenticator, Principal, ServiceError, paging::Paging, queue::JobQueue};
use kiln_proto::v1::{
    AbandonBuildRequest, AbandonBuildResponse, Build, BuildArtifactChunk, BuildEvent, CancelBuildRequest,
    CancelBuildResponse, DeadBuild, DeleteDeploymentRequest, DeleteDeploymentResponse, GetBuildArtifactRequest,
    GetBuildQueueRequest, GetBuildQueueResponse, GetBuildRequest, GetBuildResponse, ListBuildsRequest,
    ListBuildsResponse, ListDeploymentsRequest, ListDeploymentsResponse, OpenBuildRequest, OpenBuildResponse,
    RunBuildRequest, RunBuildResponse, WatchBuildRequest, build_event, build_record_service_server::BuildRecordService,
    build_service_server::BuildService,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    feed::{BuildFeed, FeedItem, FeedStream, Notice},
    store::{self, BuildStore, build_id, is_final},
    worker::status_event,
};

/// Log lines read from the store at a time while catching a watcher up.
const CATCH_UP_BATCH: i64 = 500;
/// How often a watcher checks the store besides the feed: a notice can be lost (the
/// feed's connection broke), the store cannot.
const WATCH_RECHECK: Duration = Duration::from_secs(5);
/// Bytes per artifact chunk.
const ARTIFACT_CHUNK: usize = 64 * 1024;
/// Dead letters read to find the caller's.
const DEAD_LETTERS_READ: usize = 200;

#[derive(Clone)]
pub struct BuildApi {
    pub store: BuildStore,
    pub deployer: crate::deploy::Deployer,
    pub auth: Authenticator,
    pub feed: Arc<dyn BuildFeed>,
    pub queue: Arc<dyn JobQueue>,
}

impl BuildApi {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.auth.authenticate(request.metadata()).await?)
    }
}

type Streamed<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn application_filter(id: &str) -> Result<Option<Uuid>, ServiceError> {
    match id {
        "" => Ok(None),
        id => Uuid::parse_str(id)
            .map(Some)
            .map_err(|_| ServiceError::invalid_field("application_id", "is not an application id")),
    }
}

#[tonic::async_trait]
impl BuildService for BuildApi {
    async fn get_build(&self, request: Request<GetBuildRequest>) -> Result<Response<GetBuildResponse>, Status> {
        let caller = self.caller(&request).await?;
        let build = self.store.get(caller.workspace_id, build_id(&request.get_ref().id)?).await?;
        Ok(Response::new(GetBuildResponse { build: Some(build) }))
    }

    async fn list_builds(&self, request: Request<ListBuildsRequest>) -> Result<Response<ListBuildsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let application = application_filter(&request.application_id)?;
        let status = match request.status.as_str() {
            "" => None,
            status if store::STATUSES.contains(&status) => Some(status),
            _ => {
                let allowed = store::STATUSES.join(", ");
                return Err(ServiceError::invalid_field("status", format!("must be one of {allowed}")).into());
            }
        };
        let scope = format!("builds:{}:{}:{}", caller.workspace_id, request.application_id, request.status);
        let paging: Paging<(DateTime<Utc>, Uuid)> = Paging::read(scope, request.page_size, &request.page_token)?;
        let (builds, next_page_token) = self.store.list(caller.workspace_id, application, status, &paging).await?;
        Ok(Response::new(ListBuildsResponse { builds, next_page_token }))
    }

    async fn cancel_build(
        &self,
        request: Request<CancelBuildRequest>,
    ) -> Result<Response<CancelBuildResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = build_id(&request.get_ref().id)?;
        let build = self.store.cancel(caller.workspace_id, id).await?;
        // The run (if one runs) stops at once; watchers see the end.
        self.feed.publish(id, &Notice::Cancel).await;
        self.feed.publish(id, &Notice::Event(Box::new(status_event(build.clone())))).await;
        Ok(Response::new(CancelBuildResponse { build: Some(build) }))
    }

    async fn watch_build(&self, request: Request<WatchBuildRequest>) -> Result<Response<Streamed<BuildEvent>>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let id = build_id(&request.id)?;
        self.store.get(caller.workspace_id, id).await?;
        if request.after_sequence < 0 {
            return Err(ServiceError::invalid_field("after_sequence", "must be 0 or more").into());
        }
        // Subscribed before the store is read, so nothing falls between the two.
        let feed = self
            .feed
            .subscribe(id)
            .await
            .map_err(|e| Status::unavailable(format!("the build's live feed is unavailable: {e:#}")))?;
        let (sender, receiver) = mpsc::channel(256);
        let watch =
            Watch { store: self.store.clone(), id, last_sequence: request.after_sequence, last_build: None, sender };
        tokio::spawn(watch.run(feed));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn get_build_queue(
        &self,
        request: Request<GetBuildQueueRequest>,
    ) -> Result<Response<GetBuildQueueResponse>, Status> {
        let caller = self.caller(&request).await?;
        let unavailable = |e: anyhow::Error| Status::unavailable(format!("the build queue did not answer: {e:#}"));
        let stats = self.queue.stats().await.map_err(unavailable)?;
        let mut dead_letters = Vec::new();
        for letter in self.queue.dead_letters(DEAD_LETTERS_READ).await.map_err(unavailable)? {
            let Some(id) =
                letter.payload.get("build_id").and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
            else {
                continue;
            };
            // Only the caller's: the payload's workspace is checked against the build's.
            if let Ok(build) = self.store.get(caller.workspace_id, id).await {
                dead_letters.push(DeadBuild {
                    build_id: build.id,
                    application_id: build.application_id,
                    attempts: i32::try_from(letter.attempts).unwrap_or(i32::MAX),
                    reason: letter.reason,
                });
            }
        }
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(Response::new(GetBuildQueueResponse {
            waiting: count(stats.waiting),
            in_flight: count(stats.in_flight),
            retrying: count(stats.retrying),
            dead: count(stats.dead),
            dead_letters,
        }))
    }

    async fn get_build_artifact(
        &self,
        request: Request<GetBuildArtifactRequest>,
    ) -> Result<Response<Streamed<BuildArtifactChunk>>, Status> {
        let caller = self.caller(&request).await?;
        let build = self.store.get(caller.workspace_id, build_id(&request.get_ref().id)?).await?;
        let id = Uuid::parse_str(&build.id).unwrap_or_default();
        let Some((bytes, sha256)) = self.store.artifact(id).await? else {
            return Err(Status::not_found(format!("build {} has no artifact yet: it has not rendered", build.id)));
        };
        let file_name = format!("build-{}.tar.gz", build.number);
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let chunks: Vec<Result<BuildArtifactChunk, Status>> = bytes
            .chunks(ARTIFACT_CHUNK)
            .enumerate()
            .map(|(i, data)| {
                let first = i == 0;
                Ok(BuildArtifactChunk {
                    data: data.to_vec(),
                    file_name: if first { file_name.clone() } else { String::new() },
                    size: if first { size } else { 0 },
                    sha256: if first { sha256.clone() } else { String::new() },
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn run_build(&self, request: Request<RunBuildRequest>) -> Result<Response<RunBuildResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = build_id(&request.get_ref().id)?;
        let deployment = self.deployer.run(caller.workspace_id, caller.user_id, id).await?;
        Ok(Response::new(RunBuildResponse { deployment: Some(deployment) }))
    }

    async fn list_deployments(
        &self,
        request: Request<ListDeploymentsRequest>,
    ) -> Result<Response<ListDeploymentsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let application = application_id(&request.get_ref().application_id)?;
        let deployments = self.deployer.list(caller.workspace_id, application).await?;
        Ok(Response::new(ListDeploymentsResponse { deployments }))
    }

    async fn delete_deployment(
        &self,
        request: Request<DeleteDeploymentRequest>,
    ) -> Result<Response<DeleteDeploymentResponse>, Status> {
        let caller = self.caller(&request).await?;
        let application = application_id(&request.get_ref().application_id)?;
        let id = Uuid::parse_str(&request.get_ref().id)
            .map_err(|_| ServiceError::NotFound(format!("no deployment {}", request.get_ref().id)))?;
        self.deployer.delete(caller.workspace_id, application, id).await?;
        Ok(Response::new(DeleteDeploymentResponse {}))
    }
}

/// An application id, or INVALID_ARGUMENT on `application_id`.
fn application_id(id: &str) -> Result<Uuid, ServiceError> {
    Uuid::parse_str(id).map_err(|_| ServiceError::NotFound(format!("no application {id}")))
}

/// One watcher of one build.
struct Watch {
    store: BuildStore,
    id: Uuid,
    last_sequence: i64,
    last_build: Option<Build>,
    sender: mpsc::Sender<Result<BuildEvent, Status>>,
}

/// The watcher went away, or the store failed (the watcher was told).
struct Stop;

impl Watch {
    async fn run(mut self, mut feed: FeedStream) {
        if self.catch_up().await.is_err() {
            return;
        }
        let mut recheck = tokio::time::interval(WATCH_RECHECK);
        recheck.tick().await;
        loop {
            if self.last_build.as_ref().is_some_and(|build| is_final(&build.status)) {
                return;
            }
            let step = tokio::select! {
                () = self.sender.closed() => return,
                item = feed.next() => match item {
                    Some(FeedItem::Notice(Notice::Event(event))) => match event.event {
                        // The next line: on at once. Anything else (a gap, a status) is
                        // read from the store, in order.
                        Some(build_event::Event::Log(line)) if line.sequence == self.last_sequence + 1 => {
                            self.last_sequence = line.sequence;
                            self.send(BuildEvent { event: Some(build_event::Event::Log(line)) }).await
                        }
                        _ => self.catch_up().await,
                    },
                    Some(FeedItem::Notice(Notice::Cancel)) => Ok(()),
                    Some(FeedItem::Missed) => self.catch_up().await,
                    None => {
                        // The feed's connection is gone: the store alone, checked often.
                        feed = Box::pin(futures::stream::pending());
                        self.catch_up().await
                    }
                },
                _ = recheck.tick() => self.catch_up().await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Sends the stored lines after the last one sent, then the build if it changed.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let lines = match self.store.logs_after(self.id, self.last_sequence, CATCH_UP_BATCH).await {
                Ok(lines) => lines,
                Err(error) => return self.fail(error).await,
            };
            let complete = (lines.len() as i64) < CATCH_UP_BATCH;
            for line in lines {
                self.last_sequence = line.sequence;
                self.send(BuildEvent { event: Some(build_event::Event::Log(line)) }).await?;
            }
            if complete {
                break;
            }
        }
        let build = match self.store.find(self.id).await {
            Ok(Some(row)) => row.build,
            Ok(None) => return self.fail(ServiceError::NotFound(format!("build {} was deleted", self.id))).await,
            Err(error) => return self.fail(error).await,
        };
        if self.last_build.as_ref() != Some(&build) {
            self.last_build = Some(build.clone());
            // Lines written before a final status are in the store: read them first.
            if is_final(&build.status) {
                let lines = self.store.logs_after(self.id, self.last_sequence, i64::MAX).await.unwrap_or_default();
                for line in lines {
                    self.last_sequence = line.sequence;
                    self.send(BuildEvent { event: Some(build_event::Event::Log(line)) }).await?;
                }
            }
            self.send(status_event(build)).await?;
        }
        Ok(())
    }

    async fn send(&self, event: BuildEvent) -> Result<(), Stop> {
        self.sender.send(Ok(event)).await.map_err(|_| Stop)
    }

    async fn fail(&self, error: ServiceError) -> Result<(), Stop> {
        let _ = self.sender.send(Err(error.into())).await;
        Err(Stop)
    }
}

#[tonic::async_trait]
impl BuildRecordService for BuildApi {
    async fn open_build(&self, request: Request<OpenBuildRequest>) -> Result<Response<OpenBuildResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let application = Uuid::parse_str(&request.application_id)
            .map_err(|_| ServiceError::invalid_field("application_id", "is not an application id"))?;
        let inputs: serde_json::Value = match serde_json::from_str(&request.inputs_json) {
            Ok(inputs @ serde_json::Value::Object(_)) => inputs,
            _ => return Err(ServiceError::invalid_field("inputs_json", "must be a JSON object").into()),
        };
        let build = self
            .store
            .open(caller.workspace_id, caller.user_id, application, &request.application_slug, &inputs)
            .await?;
        Ok(Response::new(OpenBuildResponse { build: Some(build) }))
    }

    async fn abandon_build(
        &self,
        request: Request<AbandonBuildRequest>,
    ) -> Result<Response<AbandonBuildResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let id = build_id(&request.id)?;
        self.store.get(caller.workspace_id, id).await?;
        self.store.finish_unless_final(id, store::FAILED, &request.reason).await?;
        let build = self.store.get(caller.workspace_id, id).await?;
        self.feed.publish(id, &Notice::Event(Box::new(status_event(build.clone())))).await;
        Ok(Response::new(AbandonBuildResponse { build: Some(build) }))
    }
}
