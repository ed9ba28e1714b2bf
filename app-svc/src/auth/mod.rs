//! AuthService: register, login, refresh with rotation and reuse detection, logout,
//! profile. Access tokens come from [`kiln_common::TokenKeys`]; refresh tokens are
//! random, stored only as SHA-256 hashes, and spent on use.

mod input;
mod password;
pub(crate) mod store;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use kiln_common::{Principal, ServiceError, error::FieldViolation, paging::Paging, timestamp};
use kiln_proto::v1::{
    AuditEvent as AuditEventMessage, GetProfileRequest, GetProfileResponse, ListAuditEventsRequest,
    ListAuditEventsResponse, LoginRequest, LoginResponse, LogoutRequest, LogoutResponse, RefreshRequest,
    RefreshResponse, RegisterRequest, RegisterResponse, TokenPair, UpdateProfileRequest, UpdateProfileResponse, User,
    UserSettings, auth_service_server::AuthService,
};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

pub use input::{Email, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Password};
use store::{AuditEvent, NewAccount, ProfileChanges, UserRecord};

use crate::AppDeps;

/// The same answer for an unknown email and a wrong password.
const BAD_CREDENTIALS: &str = "invalid email or password";
/// Failed sign-ins for one address allowed within [`LOCKOUT_WINDOW`] before it locks.
const FREE_FAILURES: i64 = 5;
/// Failures older than this are forgotten.
const LOCKOUT_WINDOW: chrono::Duration = chrono::Duration::hours(1);

/// How long an address is locked after its `failures`-th failure in the window: from
/// the 5th on, 30 s doubling with each failure, at most 15 minutes.
fn lockout(failures: i64) -> Option<chrono::Duration> {
    let over = failures.checked_sub(FREE_FAILURES).filter(|over| *over >= 0)?;
    let seconds = 30i64.saturating_mul(1i64 << over.min(20));
    Some(chrono::Duration::seconds(seconds.min(15 * 60)))
}

const REFRESH_TOKEN_PREFIX: &str = "krt_";

#[derive(Clone)]
pub struct AuthApi {
    deps: AppDeps,
}

impl AuthApi {
    pub fn new(deps: AppDeps) -> Self {
        AuthApi { deps }
    }

    async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse, ServiceError> {
        let mut violations = Vec::new();
        let email = Email::parse(&req.email).map_err(|v| violations.push(v)).ok();
        let password = Password::parse(&req.password, email.as_ref()).map_err(|v| violations.push(v)).ok();
        let display_name = match (req.display_name.trim().is_empty(), &email) {
            (false, _) => input::display_name(&req.display_name).map_err(|v| violations.push(v)).ok(),
            (true, Some(email)) => Some(email.local_part().to_string()),
            (true, None) => None,
        };
        let (Some(email), Some(password), Some(display_name)) = (email, password, display_name) else {
            return Err(ServiceError::invalid(violations));
        };
        let password_hash = password::hash(password.expose().to_string()).await?;
        let db = &self.deps.db;
        let user = store::create_account(
            db,
            NewAccount { email: email.as_str(), display_name: &display_name, password_hash: &password_hash },
        )
        .await?;
        // The workspace starts with the starter workflows and templates (model-svc seeds
        // the system models on the workspace's first call). Should this fail, the
        // account still exists and the start-up seed upgrade completes the workspace.
        crate::seeding::seed_workspace(db, user.workspace_id).await?;
        let tokens = self.start_session(&user).await?;
        store::audit(db, event("register", "success", &user, json!({}))).await;
        tracing::info!(user_id = %user.id, workspace_id = %user.workspace_id, "user registered");
        Ok(RegisterResponse { user: Some(user_message(&user)), tokens: Some(tokens) })
    }

    async fn login(&self, req: LoginRequest) -> Result<LoginResponse, ServiceError> {
        let db = &self.deps.db;
        // No account has a longer password; refusing it says nothing about accounts and
        // spares hashing whatever size a client sends.
        if req.password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ServiceError::invalid_field(
                "password",
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        // Failures are counted per address, known or not, so a lockout tells nothing
        // about accounts either.
        let email = Email::parse(&req.email);
        let email_key = hash_token(&match &email {
            Ok(email) => email.as_str().to_string(),
            Err(_) => req.email.trim().to_lowercase(),
        });
        let now = kiln_common::db::now();
        if let Some(locked_until) = store::locked_until(db, &email_key).await?
            && locked_until > now
        {
            let wait = (locked_until - now).num_seconds().max(1);
            return Err(ServiceError::ResourceExhausted(format!(
                "too many failed sign-ins for this email address; retry in {wait}s"
            )));
        }
        // A malformed email cannot match an account; it gets the same answer as any miss.
        let found = match &email {
            Ok(email) => store::find_login(db, email.as_str()).await?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let matches = password::verify(req.password, hash).await?;
        if !matches {
            let failures = store::record_login_failure(db, &email_key, now - LOCKOUT_WINDOW, |failures| {
                lockout(failures).map(|wait| now + wait)
            })
            .await?;
            if let (Some(user), Some(wait)) = (&user, lockout(failures)) {
                let detail = json!({ "failures": failures, "locked_for_seconds": wait.num_seconds() });
                store::audit(db, event("login", "locked", user, detail)).await;
            }
        }
        match user {
            Some(user) if matches => {
                store::clear_login_failures(db, &email_key).await?;
                let tokens = self.start_session(&user).await?;
                store::audit(db, event("login", "success", &user, json!({}))).await;
                Ok(LoginResponse { user: Some(user_message(&user)), tokens: Some(tokens) })
            }
            Some(user) => {
                store::audit(db, event("login", "bad_password", &user, json!({}))).await;
                Err(ServiceError::Unauthenticated(BAD_CREDENTIALS.into()))
            }
            None => {
                // Kept for the audit trail, minus what a database or log could choke on.
                let attempted: String =
                    req.email.trim().chars().filter(|c| !c.is_control()).take(254).collect::<String>().to_lowercase();
                let detail = json!({ "email": attempted });
                let unknown =
                    AuditEvent { action: "login", outcome: "unknown_email", user_id: None, workspace_id: None, detail };
                store::audit(db, unknown).await;
                Err(ServiceError::Unauthenticated(BAD_CREDENTIALS.into()))
            }
        }
    }

    async fn refresh(&self, req: RefreshRequest) -> Result<RefreshResponse, ServiceError> {
        let db = &self.deps.db;
        let invalid = || ServiceError::Unauthenticated("invalid refresh token".into());
        let ended = || ServiceError::Unauthenticated("refresh token has been revoked; sign in again".into());
        if req.refresh_token.trim().is_empty() {
            return Err(ServiceError::invalid_field("refresh_token", "is required"));
        }
        let record = store::find_refresh_token(db, &hash_token(req.refresh_token.trim())).await?.ok_or_else(invalid)?;
        if record.revoked_at.is_some() {
            return Err(ended());
        }
        if record.expires_at <= Utc::now() {
            return Err(ServiceError::Unauthenticated("refresh token has expired; sign in again".into()));
        }
        let user = store::find_user(db, record.user_id).await?.ok_or_else(invalid)?;
        let (tokens, successor) = self.new_tokens(&user, record.family_id)?;
        let rotation = if record.used_at.is_some() {
            // Spent already: no need to try; the reuse ends the session below.
            store::Rotation::Reused { revoked: store::end_session(db, record.family_id).await? }
        } else {
            store::rotate_refresh_token(db, &record, successor.stored()).await?
        };
        match rotation {
            store::Rotation::Rotated => Ok(RefreshResponse { tokens: Some(tokens) }),
            store::Rotation::SessionEnded => Err(ended()),
            store::Rotation::Reused { revoked } => {
                // A spent token came back: someone holds a copy. The whole session ended.
                self.deps.auth.session_ended(record.family_id).await;
                let detail = json!({ "family_id": record.family_id, "revoked": revoked });
                let reuse = AuditEvent {
                    action: "refresh_token_reuse",
                    outcome: "family_revoked",
                    user_id: Some(record.user_id),
                    workspace_id: Some(user.workspace_id),
                    detail,
                };
                store::audit(db, reuse).await;
                tracing::warn!(user_id = %record.user_id, family_id = %record.family_id, "refresh token reused; session revoked");
                Err(ServiceError::Unauthenticated(
                    "refresh token was already used; the session has been revoked, sign in again".into(),
                ))
            }
        }
    }

    async fn logout(&self, principal: Principal, req: LogoutRequest) -> Result<LogoutResponse, ServiceError> {
        let db = &self.deps.db;
        if req.everywhere {
            let ended = store::end_sessions_of_user(db, principal.user_id).await?;
            for session in &ended {
                self.deps.auth.session_ended(*session).await;
            }
            let detail = json!({ "everywhere": true, "sessions": ended.len() });
            let event = AuditEvent {
                action: "logout",
                outcome: "success",
                user_id: Some(principal.user_id),
                workspace_id: Some(principal.workspace_id),
                detail,
            };
            store::audit(db, event).await;
            return Ok(LogoutResponse {});
        }
        let family = if req.refresh_token.trim().is_empty() {
            principal.session_id
        } else {
            match store::find_refresh_token(db, &hash_token(req.refresh_token.trim())).await? {
                Some(record) if record.user_id == principal.user_id => record.family_id,
                _ => {
                    return Err(ServiceError::invalid_field("refresh_token", "is not a refresh token of this account"));
                }
            }
        };
        store::end_session(db, family).await?;
        self.deps.auth.session_ended(family).await;
        let detail = json!({ "family_id": family });
        let logout = AuditEvent {
            action: "logout",
            outcome: "success",
            user_id: Some(principal.user_id),
            workspace_id: Some(principal.workspace_id),
            detail,
        };
        store::audit(db, logout).await;
        Ok(LogoutResponse {})
    }

    async fn profile(&self, principal: Principal) -> Result<UserRecord, ServiceError> {
        store::find_user(&self.deps.db, principal.user_id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("the account no longer exists".into()))
    }

    async fn update_profile(
        &self,
        principal: Principal,
        req: UpdateProfileRequest,
    ) -> Result<UserRecord, ServiceError> {
        let mut violations: Vec<FieldViolation> = Vec::new();
        let mut check = |result: Option<Result<String, FieldViolation>>| match result {
            Some(Ok(value)) => Some(value),
            Some(Err(v)) => {
                violations.push(v);
                None
            }
            None => None,
        };
        let changes = ProfileChanges {
            display_name: check(req.display_name.as_deref().map(input::display_name)),
            theme: check(req.theme.as_deref().map(input::theme)),
            locale: check(req.locale.as_deref().map(input::locale)),
            notifications: req.notifications,
        };
        if !violations.is_empty() {
            return Err(ServiceError::invalid(violations));
        }
        store::update_profile(&self.deps.db, principal.user_id, changes).await?;
        self.profile(principal).await
    }

    async fn audit_events(
        &self,
        principal: Principal,
        req: ListAuditEventsRequest,
    ) -> Result<ListAuditEventsResponse, ServiceError> {
        if !store::owns_workspace(&self.deps.db, principal.user_id, principal.workspace_id).await? {
            return Err(ServiceError::PermissionDenied("only the workspace's owner reads its audit log".into()));
        }
        let paging = Paging::<(chrono::DateTime<Utc>, Uuid)>::read(
            format!("audit of {}", principal.workspace_id),
            req.page_size,
            &req.page_token,
        )?;
        let mut events =
            store::audit_events(&self.deps.db, principal.workspace_id, paging.after, paging.fetch()).await?;
        let next_page_token = paging.finish(&mut events, |e| (e.at, e.id));
        let events = events
            .into_iter()
            .map(|e| AuditEventMessage {
                id: e.id.to_string(),
                at: Some(timestamp(e.at)),
                action: e.action,
                outcome: e.outcome,
                user_id: e.user_id.map(|u| u.to_string()).unwrap_or_default(),
                detail: serde_json::from_value(e.detail).ok(),
            })
            .collect();
        Ok(ListAuditEventsResponse { events, next_page_token })
    }

    /// A new session: a new refresh-token family.
    async fn start_session(&self, user: &UserRecord) -> Result<TokenPair, ServiceError> {
        let session_id = Uuid::now_v7();
        let (tokens, refresh) = self.new_tokens(user, session_id)?;
        store::start_session(&self.deps.db, session_id, user, refresh.stored()).await?;
        Ok(tokens)
    }

    /// An access token and a refresh token for a session; the refresh token is not
    /// stored yet.
    fn new_tokens(&self, user: &UserRecord, session_id: Uuid) -> Result<(TokenPair, IssuedRefresh), ServiceError> {
        let refresh_token = new_refresh_token();
        let refresh_ttl = self.deps.refresh_ttl;
        let issued = IssuedRefresh {
            hash: hash_token(&refresh_token),
            expires_at: Utc::now() + chrono::Duration::seconds(refresh_ttl.as_secs() as i64),
        };
        let keys = self.deps.auth.keys();
        let access_token = keys.issue(user.id, user.workspace_id, session_id)?;
        let tokens = TokenPair {
            access_token,
            token_type: "Bearer".into(),
            expires_in: keys.access_ttl().as_secs() as i64,
            refresh_token,
            refresh_expires_in: refresh_ttl.as_secs() as i64,
        };
        Ok((tokens, issued))
    }
}

/// A refresh token handed out: the hash and expiry that are stored.
struct IssuedRefresh {
    hash: String,
    expires_at: chrono::DateTime<Utc>,
}

impl IssuedRefresh {
    fn stored(&self) -> store::NewRefreshToken<'_> {
        store::NewRefreshToken { token_hash: &self.hash, expires_at: self.expires_at }
    }
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn event<'a>(action: &'a str, outcome: &'a str, user: &UserRecord, detail: serde_json::Value) -> AuditEvent<'a> {
    AuditEvent { action, outcome, user_id: Some(user.id), workspace_id: Some(user.workspace_id), detail }
}

fn user_message(user: &UserRecord) -> User {
    User {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        workspace_id: user.workspace_id.to_string(),
        workspace_slug: user.workspace_slug.clone(),
        settings: Some(UserSettings {
            theme: user.theme.clone(),
            locale: user.locale.clone(),
            notifications: user.notifications,
        }),
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        Ok(Response::new(AuthApi::register(self, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        Ok(Response::new(AuthApi::login(self, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn refresh(&self, request: Request<RefreshRequest>) -> Result<Response<RefreshResponse>, Status> {
        Ok(Response::new(AuthApi::refresh(self, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn logout(&self, request: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(AuthApi::logout(self, principal, request.into_inner()).await?))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn get_profile(&self, request: Request<GetProfileRequest>) -> Result<Response<GetProfileResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        let user = self.profile(principal).await?;
        Ok(Response::new(GetProfileResponse { user: Some(user_message(&user)) }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<UpdateProfileResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        let user = AuthApi::update_profile(self, principal, request.into_inner()).await?;
        Ok(Response::new(UpdateProfileResponse { user: Some(user_message(&user)) }))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let principal = self.deps.auth.authenticate(request.metadata()).await?;
        Ok(Response::new(self.audit_events(principal, request.into_inner()).await?))
    }
}
