//! Deployments: a succeeded build's image run as a container on a free port of
//! 127.0.0.1, labelled with its workspace, application, build and deployment and
//! limited in memory, CPU and processes; listed with its state and health as the engine
//! and the service answer now; stopped and removed on request. The `deployments` table
//! is reconciled with the engine at start-up and on every listing.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig, PortBinding},
    query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder},
};
use kiln_common::{
    Db, ServiceError,
    db::{Id, RowExt},
    timestamp, with_db, with_db_read,
};
use kiln_proto::v1::Deployment;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    docker,
    store::{self, BuildStore},
};

/// Label naming the deployment a container runs.
pub const LABEL_DEPLOYMENT: &str = "dev.kiln.deployment";
/// What one deployment may use.
const MEMORY_BYTES: i64 = 512 * 1024 * 1024;
const NANO_CPUS: i64 = 1_000_000_000;
const PIDS: i64 = 256;
/// How long a health probe waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

const COLUMNS: &str = "d.id, d.application_id, d.build_id, b.number, d.container_id, d.image, d.host_port, d.status, d.created_at, d.stopped_at";

#[derive(Debug, Clone)]
pub struct Deployer {
    db: Db,
    builds: BuildStore,
    docker_host: Option<String>,
}

struct Row {
    deployment: Deployment,
}

fn read_row<R: RowExt>(row: &R) -> Result<Row, sqlx::Error> {
    let port = i32::try_from(row.int("host_port")?).unwrap_or_default();
    Ok(Row {
        deployment: Deployment {
            id: row.id("id")?.to_string(),
            application_id: row.id("application_id")?.to_string(),
            build_id: row.id("build_id")?.to_string(),
            build_number: row.int("number")?,
            container_id: row.text("container_id")?,
            image: row.text("image")?,
            status: row.text("status")?,
            health: "unknown".into(),
            host_port: port,
            url: format!("http://127.0.0.1:{port}"),
            created_at: Some(timestamp(row.time("created_at")?)),
            stopped_at: row.opt_time("stopped_at")?.map(timestamp),
        },
    })
}

fn unavailable(reason: String) -> ServiceError {
    ServiceError::FailedPrecondition(format!("deployments need a Docker engine: {reason}"))
}

impl Deployer {
    pub fn new(db: Db, docker_host: Option<String>) -> Self {
        Deployer { builds: BuildStore::new(db.clone()), db, docker_host }
    }

    async fn engine(&self) -> Result<Docker, ServiceError> {
        let docker = docker::connect(self.docker_host.as_deref()).map_err(|e| unavailable(format!("{e:#}")))?;
        docker::reachable(&docker).await.map_err(unavailable)
    }

    /// Starts a container from the build's image.
    pub async fn run(&self, workspace: Uuid, user: Uuid, build_id: Uuid) -> Result<Deployment, ServiceError> {
        let build = self.builds.get(workspace, build_id).await?;
        if build.status != store::SUCCEEDED || build.image_id.is_empty() {
            return Err(ServiceError::FailedPrecondition(format!(
                "build {} has no image to run (it is {}{})",
                build.number,
                build.status,
                if build.image_skipped { ", its image step was skipped" } else { "" }
            )));
        }
        let docker = self.engine().await?;
        let inputs = self.builds.inputs(build_id).await?;
        let port =
            inputs.pointer("/application/config/port").and_then(Value::as_i64).filter(|p| *p > 0).unwrap_or(8080);
        let mut env: Vec<String> = inputs
            .pointer("/application/config/env")
            .and_then(Value::as_object)
            .map(|env| env.iter().filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?))).collect())
            .unwrap_or_default();
        env.push(format!("PORT={port}"));
        let id = Id::new();
        let labels = HashMap::from([
            (docker::LABEL_WORKSPACE.to_string(), workspace.to_string()),
            (docker::LABEL_APPLICATION.to_string(), build.application_id.clone()),
            (docker::LABEL_BUILD.to_string(), build.id.clone()),
            (LABEL_DEPLOYMENT.to_string(), id.0.to_string()),
        ]);
        let exposed = format!("{port}/tcp");
        let host_config = HostConfig {
            port_bindings: Some(HashMap::from([(
                exposed.clone(),
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
            )])),
            memory: Some(MEMORY_BYTES),
            nano_cpus: Some(NANO_CPUS),
            pids_limit: Some(PIDS),
            ..HostConfig::default()
        };
        let body = ContainerCreateBody {
            image: Some(build.image_id.clone()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(vec![exposed.clone()]),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        };
        let name = format!("kiln-{}", id.0.simple());
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker.create_container(Some(options), body).await.context("creating the container")?;
        docker.start_container(&created.id, None).await.context("starting the container")?;
        let inspected = docker.inspect_container(&created.id, None).await.context("inspecting the container")?;
        let host_port = inspected
            .network_settings
            .and_then(|settings| settings.ports)
            .and_then(|ports| ports.get(&exposed).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse::<i32>().ok()))
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the engine gave the container no port")))?;
        let now = kiln_common::db::now();
        with_db!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO deployments (id, workspace_id, application_id, build_id, container_id, image, host_port, \
                 status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9)",
            )
            .bind(id).bind(Id(workspace)).bind(Id(Uuid::parse_str(&build.application_id).unwrap_or_default()))
            .bind(Id(build_id)).bind(&created.id).bind(&build.image_id).bind(host_port).bind(Id(user)).bind(now)
            .execute(pool).await.map(|_| ())
        })
        .context("recording a deployment")?;
        self.get(workspace, id.0).await
    }

    async fn rows(
        &self,
        workspace: Uuid,
        application: Option<Uuid>,
        id: Option<Uuid>,
    ) -> Result<Vec<Row>, ServiceError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM deployments d JOIN builds b ON b.id = d.build_id \
             WHERE d.workspace_id = $1 AND d.status <> 'removed' AND ($2 = '' OR d.application_id = $3) \
             AND ($4 = '' OR d.id = $5) ORDER BY d.created_at DESC"
        );
        let (application_filter, id_filter) =
            (application.map(|a| a.to_string()).unwrap_or_default(), id.map(|i| i.to_string()).unwrap_or_default());
        let rows = with_db_read!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Id(workspace))
                .bind(&application_filter).bind(Id(application.unwrap_or_default()))
                .bind(&id_filter).bind(Id(id.unwrap_or_default()))
                .fetch_all(pool).await
            {
                Ok(rows) => rows.iter().map(read_row).collect::<Result<Vec<_>, _>>(),
                Err(e) => Err(e),
            }
        })
        .context("reading deployments")?;
        Ok(rows)
    }

    async fn get(&self, workspace: Uuid, id: Uuid) -> Result<Deployment, ServiceError> {
        let mut rows = self.rows(workspace, None, Some(id)).await?;
        match rows.pop() {
            Some(row) => {
                let docker = self.engine().await.ok();
                Ok(observed(self, docker.as_ref(), row.deployment).await)
            }
            None => Err(ServiceError::NotFound(format!("no deployment {id}"))),
        }
    }

    /// The application's deployments, each as the engine has it now.
    pub async fn list(&self, workspace: Uuid, application: Uuid) -> Result<Vec<Deployment>, ServiceError> {
        // One look for the engine for the whole list, not one per deployment.
        let docker = self.engine().await.ok();
        let mut deployments = Vec::new();
        for row in self.rows(workspace, Some(application), None).await? {
            deployments.push(observed(self, docker.as_ref(), row.deployment).await);
        }
        Ok(deployments)
    }

    async fn set_status(&self, id: &str, status: &str) -> anyhow::Result<()> {
        let id = Uuid::parse_str(id)?;
        let stopped = (status != "running").then(kiln_common::db::now);
        with_db!(&self.db, pool => {
            sqlx::query("UPDATE deployments SET status = $2, stopped_at = COALESCE(stopped_at, $3) WHERE id = $1")
                .bind(Id(id)).bind(status).bind(stopped)
                .execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Stops and removes the deployment's container.
    pub async fn delete(&self, workspace: Uuid, application: Uuid, id: Uuid) -> Result<(), ServiceError> {
        let rows = self.rows(workspace, Some(application), Some(id)).await?;
        let Some(row) = rows.into_iter().next() else {
            return Err(ServiceError::NotFound(format!("no deployment {id}")));
        };
        let docker = self.engine().await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(&row.deployment.container_id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => {
                return Err(ServiceError::Internal(anyhow::Error::new(error).context("removing a container")));
            }
        }
        self.set_status(&row.deployment.id, "removed").await?;
        Ok(())
    }

    /// Brings every deployment not removed in line with the engine: a container that is
    /// gone is `missing`, one that stopped `exited`. Without an engine, nothing changes.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let Ok(docker) = self.engine().await else { return Ok(0) };
        let live: Vec<(Uuid, String, String)> = with_db_read!(&self.db, pool => {
            match sqlx::query("SELECT id, container_id, status FROM deployments WHERE status IN ('running', 'exited')")
                .fetch_all(pool).await
            {
                Ok(rows) => rows.iter().map(|r| Ok((r.id("id")?, r.text("container_id")?, r.text("status")?))).collect::<Result<Vec<_>, sqlx::Error>>(),
                Err(e) => Err(e),
            }
        })?;
        let mut changed = 0;
        for (id, container, status) in live {
            let Some(now) = container_status(&docker, &container).await else { continue };
            if now != status {
                self.set_status(&id.to_string(), now).await?;
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// `deployment` with its status from the engine (recorded when it changed) and its
/// health from the service.
async fn observed(deployer: &Deployer, docker: Option<&Docker>, mut deployment: Deployment) -> Deployment {
    let Some(docker) = docker else { return deployment };
    let Some(status) = container_status(docker, &deployment.container_id).await else { return deployment };
    if status != deployment.status {
        let _ = deployer.set_status(&deployment.id, status).await;
        deployment.status = status.into();
    }
    deployment.health = if status == "running" {
        if probe(deployment.host_port).await { "healthy" } else { "unhealthy" }
    } else {
        "unknown"
    }
    .into();
    deployment
}

/// A container's state as a deployment's status: `running`, `exited` or `missing`; None
/// when the engine did not say.
async fn container_status(docker: &Docker, container: &str) -> Option<&'static str> {
    match docker.inspect_container(container, None).await {
        Ok(inspected) => {
            Some(if inspected.state.and_then(|state| state.running) == Some(true) { "running" } else { "exited" })
        }
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Some("missing"),
        Err(_) => None,
    }
}

/// Whether the service on `port` answers `GET /healthz` with a 2xx status.
async fn probe(port: i32) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).ok()?)).await.ok()?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && head[9] == b'2')
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, attempt).await, Ok(Some(true)))
}
