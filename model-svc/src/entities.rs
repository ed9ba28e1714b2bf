//! EntityService at the edge, the one records API of every model: model-svc answers for
//! the workspace's user models with the record engine over its [`Catalog`]; the records
//! of a system kind belong to the service owning the kind's table (`owner` in
//! `seeds/models.yaml`), so those calls go on to app-svc (in this process or over the
//! network, as the role's channel says), and `models` are ModelService's.

use kiln_common::{
    GrpcChannel, ServiceError,
    records::{
        api::{self, Answer, Gate},
        engine::Records,
        names,
    },
    seeds::{self, SeedOwner},
};
use kiln_proto::v1::entity_service_client::EntityServiceClient;
use std::{collections::HashMap, sync::Arc};

use tokio_util::sync::CancellationToken;
use tonic::{Status, metadata::MetadataMap};

use crate::{Callers, catalog::Catalog};

pub type EntityApi = api::EntityApi<Catalog, ModelGate>;

pub fn entity_api(
    records: Records<Catalog>,
    callers: Callers,
    app: GrpcChannel,
    stopping: CancellationToken,
) -> anyhow::Result<EntityApi> {
    let owners = seeds::system_models()?.iter().map(|kind| (kind.plural.clone(), kind.owner)).collect();
    let gate = ModelGate { callers, app: EntityServiceClient::new(app), owners: Arc::new(owners) };
    Ok(api::EntityApi::new(records, gate, stopping))
}

/// Who answers, by the kind the call is for.
#[derive(Debug, Clone)]
pub struct ModelGate {
    callers: Callers,
    /// app-svc, which serves the records of the system kinds it owns.
    app: EntityServiceClient<GrpcChannel>,
    /// The owner of each system kind, by plural.
    owners: Arc<HashMap<String, SeedOwner>>,
}

#[tonic::async_trait]
impl Gate for ModelGate {
    async fn answer(&self, metadata: &MetadataMap, model: &str) -> Result<Answer, Status> {
        // Not a name at all: the engine answers that no such model exists.
        let Ok(plural) = names::plural_ref(model) else {
            return Ok(Answer::Here(self.callers.principal(metadata).await?));
        };
        match self.owners.get(plural.as_str()) {
            None => Ok(Answer::Here(self.callers.principal(metadata).await?)),
            // app-svc checks the caller itself.
            Some(SeedOwner::AppSvc) => Ok(Answer::PassOn(self.app.clone())),
            Some(SeedOwner::ModelSvc) => {
                self.callers.principal(metadata).await?;
                let message = format!("{plural} are managed through /api/v1/models");
                Err(ServiceError::FailedPrecondition(message).into())
            }
        }
    }
}
