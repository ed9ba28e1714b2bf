//! EntityService over the record engine, for any owner of records. Its [`Gate`] says who
//! answers each call: the engine here, for a caller the gate has checked, or the service
//! owning the model's records, to which the call goes on as it came (token included).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use kiln_proto::v1::{
    CreateEntityRequest, CreateEntityResponse, DeleteEntityRequest, DeleteEntityResponse, EntityChange,
    GetEntityRequest, GetEntityResponse, ImportEntitiesRequest, ImportEntitiesResponse, ListEntitiesRequest,
    ListEntitiesResponse, UpdateEntityRequest, UpdateEntityResponse, WatchEntitiesRequest,
    entity_service_client::EntityServiceClient, entity_service_server::EntityService,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    GrpcChannel, Principal,
    records::{
        engine::{ModelSource, Records, Watched},
        feed::ChangeKind,
    },
};

/// Who answers one records call.
pub enum Answer {
    /// The engine here, for this caller.
    Here(Principal),
    /// The service behind this client, which owns the model's records.
    PassOn(EntityServiceClient<GrpcChannel>),
}

/// Decides who answers a call for the records of `model` (a plural, as sent).
#[tonic::async_trait]
pub trait Gate: Send + Sync + 'static {
    async fn answer(&self, metadata: &MetadataMap, model: &str) -> Result<Answer, Status>;
}

#[derive(Debug, Clone)]
pub struct EntityApi<S, G> {
    records: Records<S>,
    gate: G,
    /// Cancelled when the process stops: watches, which never end by themselves, end.
    stopping: CancellationToken,
}

impl<S, G> EntityApi<S, G> {
    pub fn new(records: Records<S>, gate: G, stopping: CancellationToken) -> Self {
        EntityApi { records, gate, stopping }
    }
}

/// The changes a WatchEntities call streams.
pub type EntityChanges = Pin<Box<dyn Stream<Item = Result<EntityChange, Status>> + Send>>;

fn entity_change(watched: Watched) -> EntityChange {
    let kind = match watched.kind {
        ChangeKind::Created => "created",
        ChangeKind::Updated => "updated",
        ChangeKind::Deleted => "deleted",
    };
    EntityChange { kind: kind.into(), id: watched.id, record: watched.record }
}

/// EntityService, method by method: the gate decides, then the engine's `$op` answers
/// or the call goes on to the owner's `$method`.
macro_rules! entity_service {
    ($($method:ident, $op:ident, $request:ty, $response:ty;)*) => {
        #[tonic::async_trait]
        impl<S: ModelSource + Clone + 'static, G: Gate> EntityService for EntityApi<S, G> {
            #[tracing::instrument(level = "debug", skip_all, fields(model = %request.get_ref().model))]
            async fn watch_entities(
                &self,
                request: Request<WatchEntitiesRequest>,
            ) -> Result<Response<EntityChanges>, Status> {
                match self.gate.answer(request.metadata(), &request.get_ref().model).await? {
                    Answer::PassOn(mut owner) => {
                        let changes = owner.watch_entities(request).await?.into_inner();
                        Ok(Response::new(Box::pin(changes)))
                    }
                    Answer::Here(caller) => {
                        let model = request.into_inner().model;
                        let changes = self.records.watch(caller, &model, self.stopping.clone()).await?;
                        let changes = ReceiverStream::new(changes)
                            .map(|watched| watched.map(entity_change).map_err(Status::from));
                        Ok(Response::new(Box::pin(changes)))
                    }
                }
            }
            $(
                #[tracing::instrument(level = "debug", skip_all, fields(model = %request.get_ref().model))]
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    match self.gate.answer(request.metadata(), &request.get_ref().model).await? {
                        Answer::PassOn(mut owner) => owner.$method(request).await,
                        Answer::Here(caller) => Ok(Response::new(self.records.$op(caller, request.into_inner()).await?)),
                    }
                }
            )*
        }
    };
}

entity_service! {
    list_entities, list, ListEntitiesRequest, ListEntitiesResponse;
    get_entity, get, GetEntityRequest, GetEntityResponse;
    create_entity, create, CreateEntityRequest, CreateEntityResponse;
    update_entity, update, UpdateEntityRequest, UpdateEntityResponse;
    delete_entity, delete, DeleteEntityRequest, DeleteEntityResponse;
    import_entities, import, ImportEntitiesRequest, ImportEntitiesResponse;
}
