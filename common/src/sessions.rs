//! Which sessions are live: the check every access token passes after its signature.
//!
//! Sessions are app-svc's (its `sessions` table). Where the truth is asked is a
//! [`SessionSource`]: [`SessionsTable`] reads the table in the process that owns it
//! (app-svc, and all-in-one where every service shares the process); [`AskAppSvc`] asks
//! app-svc over gRPC, for the other roles of the mesh, which have no access to it.
//!
//! A token names its session (`sid`), user (`sub`) and workspace (`ws`); it is accepted
//! only while that session is live *and belongs to that user and workspace*, so a token
//! signed with a leaked secret cannot borrow someone else's workspace through its own
//! session. Answers are remembered for [`SESSION_CACHE_TTL`] so calls do not pay a database
//! round trip each. Ending a session forgets it at once in this process
//! ([`LiveSessions::ended`]) and, on PostgreSQL, in every other process through
//! `NOTIFY kiln_session_ended`. **Staleness bound:** a process that misses the
//! notification (its listening connection was down) refuses the ended session at most
//! [`SESSION_CACHE_TTL`] later; a lost listening connection also clears the cache.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    GrpcChannel,
    db::{
        Db, Id,
        notices::{self, Heard},
    },
    error::ServiceError,
    with_db_read,
};

/// Where a session's liveness is read.
#[tonic::async_trait]
pub trait SessionSource: Send + Sync + std::fmt::Debug + 'static {
    /// The user and workspace of session `sid`, if it is live. `token` is the access
    /// token being checked (its signature already verified), for a source that asks with it.
    async fn owner(&self, sid: Uuid, token: &str) -> Result<Option<(Uuid, Uuid)>, ServiceError>;
}

/// The `sessions` table, read in the process that owns it.
#[derive(Debug, Clone)]
pub struct SessionsTable(pub Db);

#[tonic::async_trait]
impl SessionSource for SessionsTable {
    async fn owner(&self, sid: Uuid, _token: &str) -> Result<Option<(Uuid, Uuid)>, ServiceError> {
        let owner: Option<(Id, Id)> = with_db_read!(&self.0, pool => {
            sqlx::query_as("SELECT user_id, workspace_id FROM sessions WHERE id = $1 AND revoked_at IS NULL")
                .bind(Id(sid))
                .fetch_optional(pool)
                .await
        })?;
        Ok(owner.map(|(user, workspace)| (user.0, workspace.0)))
    }
}

/// app-svc, asked with the token itself (`AuthService.GetProfile`): it answers only for
/// a live session of the token's own user and workspace.
#[derive(Debug, Clone)]
pub struct AskAppSvc(pub GrpcChannel);

#[tonic::async_trait]
impl SessionSource for AskAppSvc {
    async fn owner(&self, _sid: Uuid, token: &str) -> Result<Option<(Uuid, Uuid)>, ServiceError> {
        use kiln_proto::v1::{GetProfileRequest, auth_service_client::AuthServiceClient};
        let mut request = tonic::Request::new(GetProfileRequest {});
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| ServiceError::Unauthenticated("the access token is not valid text".into()))?;
        request.metadata_mut().insert("authorization", bearer);
        match AuthServiceClient::new(self.0.clone()).get_profile(request).await {
            Ok(response) => {
                let user = response.into_inner().user.unwrap_or_default();
                let id = |text: &str| {
                    Uuid::parse_str(text).map_err(|e| anyhow::anyhow!("app-svc answered an id `{text}`: {e}"))
                };
                Ok(Some((id(&user.id)?, id(&user.workspace_id)?)))
            }
            Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(None),
            Err(status) => {
                tracing::warn!(error = %status, "cannot ask app-svc whether a session is live");
                Err(ServiceError::Unavailable("the identity service is unavailable; try again shortly".into()))
            }
        }
    }
}

/// How long a live session is remembered without asking the database again.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);
/// Sessions remembered at most; past that, expired entries go, then everything.
const CAPACITY: usize = 100_000;
const CHANNEL: &str = "kiln_session_ended";

#[derive(Debug, Clone, Copy)]
struct Entry {
    user_id: Uuid,
    workspace_id: Uuid,
    checked: Instant,
}

/// The live-session check with its cache; cheap to clone, shared by a process's services.
#[derive(Debug, Clone)]
pub struct LiveSessions {
    source: Arc<dyn SessionSource>,
    /// The database whose notices of ended sessions are heard and sent (PostgreSQL only).
    db: Db,
    cache: Arc<Mutex<HashMap<Uuid, Entry>>>,
    /// Bumped whenever sessions are forgotten: an answer read from the database before a
    /// bump may be stale and is not remembered.
    forgotten: Arc<AtomicU64>,
}

impl LiveSessions {
    /// The check asking `source`; on PostgreSQL it also listens on `db` for sessions
    /// ended elsewhere (listening needs no access to any table).
    pub fn new(source: impl SessionSource, db: Db) -> Self {
        let sessions = LiveSessions {
            source: Arc::new(source),
            db,
            cache: Arc::default(),
            forgotten: Arc::new(AtomicU64::new(0)),
        };
        if let Db::Postgres(pool) = &sessions.db {
            tokio::spawn(sessions.clone().listen(pool.clone()));
        }
        sessions
    }

    /// Whether session `sid` is live and belongs to `user_id` in `workspace_id`; `token`
    /// is the access token that names it.
    pub async fn is_live(
        &self,
        sid: Uuid,
        user_id: Uuid,
        workspace_id: Uuid,
        token: &str,
    ) -> Result<bool, ServiceError> {
        if let Some(entry) = self.lock().get(&sid).copied()
            && entry.checked.elapsed() < SESSION_CACHE_TTL
        {
            return Ok(entry.user_id == user_id && entry.workspace_id == workspace_id);
        }
        let generation = self.forgotten.load(Ordering::Acquire);
        let Some((owner, workspace)) = self.source.owner(sid, token).await? else {
            self.lock().remove(&sid);
            return Ok(false);
        };
        let entry = Entry { user_id: owner, workspace_id: workspace, checked: Instant::now() };
        let mut cache = self.lock();
        if self.forgotten.load(Ordering::Acquire) == generation {
            if cache.len() >= CAPACITY {
                cache.retain(|_, e| e.checked.elapsed() < SESSION_CACHE_TTL);
                if cache.len() >= CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(sid, entry);
        }
        Ok(entry.user_id == user_id && entry.workspace_id == workspace_id)
    }

    /// Forgets a session that has just ended (its end committed), here and, on
    /// PostgreSQL, in every process listening.
    pub async fn ended(&self, sid: Uuid) {
        self.forget(Some(sid));
        if let Db::Postgres(pool) = &self.db
            && let Err(e) = notices::notify(pool, CHANNEL, &sid.to_string()).await
        {
            tracing::warn!(error = %e, "could not announce an ended session; others refuse it within the cache TTL");
        }
    }

    fn forget(&self, sid: Option<Uuid>) {
        let mut cache = self.lock();
        self.forgotten.fetch_add(1, Ordering::AcqRel);
        match sid {
            Some(sid) => {
                cache.remove(&sid);
            }
            None => cache.clear(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets sessions other processes announce as ended, until the pool closes; all
    /// of them when notices may have been missed.
    async fn listen(self, pool: sqlx::PgPool) {
        notices::listen(pool, CHANNEL, |heard| match heard {
            Heard::Notice(payload) => match payload.parse::<Uuid>() {
                Ok(sid) => self.forget(Some(sid)),
                Err(_) => tracing::warn!(payload, "malformed ended-session notice"),
            },
            Heard::MaybeMissed => self.forget(None),
        })
        .await
    }
}
