//! The gateway, as the UI reaches it: grpc-web through the generated `kiln.v1` clients,
//! with the session's access token on every call. The session (tokens and when the access
//! token expires) lives in memory and in `localStorage`, so a reload stays signed in. An
//! access token about to expire, or refused as UNAUTHENTICATED, is refreshed once (one
//! refresh at a time: the refresh token rotates, and a second use of a spent one ends the
//! session) and the call is made again; when the refresh fails the session is over.

use std::{cell::RefCell, rc::Rc};

use kiln_proto::v1::{
    TokenPair, application_service_client::ApplicationServiceClient, auth_service_client::AuthServiceClient,
    build_service_client::BuildServiceClient, entity_service_client::EntityServiceClient,
    model_service_client::ModelServiceClient, prompt_service_client::PromptServiceClient,
    webhook_service_client::WebhookServiceClient, workflow_service_client::WorkflowServiceClient,
};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
};
use tonic_types::StatusExt;

/// Refresh an access token this long before it expires.
const REFRESH_MARGIN_MS: f64 = 30_000.0;

/// How long a call may take to answer (for a stream: to start) before the page says so
/// and offers to try again, instead of showing "Loading…" for ever.
pub const CALL_DEADLINE_MS: i32 = 20_000;

/// The first pause before a broken stream is opened again; each break without anything
/// received between doubles it, up to [`MAX_REOPEN_PAUSE_MS`].
pub const FIRST_REOPEN_PAUSE_MS: i32 = 1_000;
pub const MAX_REOPEN_PAUSE_MS: i32 = 30_000;

/// The pause after `pause`, when the stream broke again with nothing received between.
pub fn next_reopen_pause(pause: i32) -> i32 {
    pause.saturating_mul(2).min(MAX_REOPEN_PAUSE_MS)
}

const STORAGE_KEY: &str = "kiln.session";

/// The signed-in session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires, in milliseconds since the epoch.
    pub expires_at_ms: f64,
}

impl Session {
    pub fn from_tokens(tokens: &TokenPair, now_ms: f64) -> Session {
        Session {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at_ms: now_ms + tokens.expires_in as f64 * 1000.0,
        }
    }

    /// Whether the access token should be refreshed before the next call.
    pub fn needs_refresh(&self, now_ms: f64) -> bool {
        now_ms + REFRESH_MARGIN_MS >= self.expires_at_ms
    }

    fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.access_token, self.refresh_token, self.expires_at_ms)
    }

    fn decode(text: &str) -> Option<Session> {
        let mut lines = text.lines();
        let (access_token, refresh_token) = (lines.next()?.to_string(), lines.next()?.to_string());
        let expires_at_ms = lines.next()?.parse().ok()?;
        (!access_token.is_empty()).then_some(Session { access_token, refresh_token, expires_at_ms })
    }
}

/// An error of a call, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// (field, description) for each field the server refused.
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    /// A form's own refusal before any call: the fields it found wrong (`noun` names what
    /// they are to the user, "field" or "setting"); none when nothing is.
    pub fn found_in_form(found: Vec<(String, String)>, noun: &str) -> Option<Self> {
        let count = found.len();
        let message = match count {
            0 => return None,
            1 => format!("1 {noun} needs a look."),
            _ => format!("{count} {noun}s need a look."),
        };
        Some(ApiError { code: Code::InvalidArgument, message, fields: found })
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field == name).map(|(_, description)| description.as_str())
    }

    /// For a save refused because someone else saved first (FAILED_PRECONDITION whose
    /// message says "version N is current"): N.
    pub fn current_version(&self) -> Option<i32> {
        if self.code != Code::FailedPrecondition {
            return None;
        }
        let (before, _) = self.message.split_once(" is current")?;
        before.rsplit_once("version ")?.1.trim().parse().ok()
    }

    /// Whether trying again later may help (the server or the network, not the request).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal | Code::ResourceExhausted
        )
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let mut fields: Vec<(String, String)> = status
            .get_details_bad_request()
            .map(|bad| bad.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
            .unwrap_or_default();
        fields.dedup();
        let message = match status.code() {
            // The browser could not reach the gateway at all.
            Code::Unknown if status.message().contains("fetch") || status.message().is_empty() => {
                "Kiln could not be reached. Check your connection, then try again.".to_string()
            }
            _ if status.message().is_empty() => format!("{:?}", status.code()),
            _ => status.message().to_string(),
        };
        ApiError { code: status.code(), message, fields }
    }
}

/// Puts the current access token on every call.
#[derive(Clone, Default)]
pub struct BearerAuth {
    token: Rc<RefCell<Option<String>>>,
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = self.token.borrow().as_deref() {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::unauthenticated("the stored token is malformed"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type SignedOut = Box<dyn Fn()>;

pub type Channel = InterceptedService<tonic_web_wasm_client::Client, BearerAuth>;

/// The UI's connection to the gateway; cheap to clone.
#[derive(Clone)]
pub struct Api {
    base_url: String,
    auth: BearerAuth,
    session: Rc<RefCell<Option<Session>>>,
    refreshing: Rc<futures_util::lock::Mutex<()>>,
    /// Called when the session ends (refresh refused, log out).
    on_signed_out: Rc<RefCell<Option<SignedOut>>>,
}

impl Api {
    /// `base_url`: the gateway's origin without a trailing slash; empty for this page's.
    pub fn new(base_url: String) -> Api {
        let api = Api {
            base_url: base_url.trim_end_matches('/').to_string(),
            auth: BearerAuth::default(),
            session: Rc::new(RefCell::new(None)),
            refreshing: Rc::new(futures_util::lock::Mutex::new(())),
            on_signed_out: Rc::new(RefCell::new(None)),
        };
        if let Some(session) =
            storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()).and_then(|t| Session::decode(&t))
        {
            api.set_session(Some(session));
        }
        api
    }

    pub fn on_signed_out(&self, callback: impl Fn() + 'static) {
        *self.on_signed_out.borrow_mut() = Some(Box::new(callback));
    }

    pub fn signed_in(&self) -> bool {
        self.session.borrow().is_some()
    }

    pub fn session(&self) -> Option<Session> {
        self.session.borrow().clone()
    }

    /// Starts (Some) or ends (None) the session.
    pub fn set_session(&self, session: Option<Session>) {
        *self.auth.token.borrow_mut() = session.as_ref().map(|s| s.access_token.clone());
        if let Some(storage) = storage() {
            let _ = match &session {
                Some(session) => storage.set_item(STORAGE_KEY, &session.encode()),
                None => storage.remove_item(STORAGE_KEY),
            };
        }
        *self.session.borrow_mut() = session;
    }

    pub fn sign_in(&self, tokens: &TokenPair) {
        self.set_session(Some(Session::from_tokens(tokens, now_ms())));
    }

    /// Ends the session here and tells whoever listens.
    pub fn sign_out(&self) {
        self.set_session(None);
        if let Some(callback) = self.on_signed_out.borrow().as_ref() {
            callback();
        }
    }

    fn channel(&self) -> Channel {
        InterceptedService::new(tonic_web_wasm_client::Client::new(self.base_url.clone()), self.auth.clone())
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }
    pub fn models(&self) -> ModelServiceClient<Channel> {
        ModelServiceClient::new(self.channel())
    }
    pub fn entities(&self) -> EntityServiceClient<Channel> {
        EntityServiceClient::new(self.channel())
    }
    pub fn applications(&self) -> ApplicationServiceClient<Channel> {
        ApplicationServiceClient::new(self.channel())
    }
    pub fn builds(&self) -> BuildServiceClient<Channel> {
        BuildServiceClient::new(self.channel())
    }
    pub fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel())
    }
    pub fn webhooks(&self) -> WebhookServiceClient<Channel> {
        WebhookServiceClient::new(self.channel())
    }
    pub fn prompts(&self) -> PromptServiceClient<Channel> {
        PromptServiceClient::new(self.channel())
    }

    /// Refreshes the access token if it is about to expire.
    pub async fn fresh(&self) {
        let due = self.session.borrow().as_ref().is_some_and(|s| s.needs_refresh(now_ms()));
        if due {
            let token = self.session.borrow().as_ref().map(|s| s.access_token.clone());
            self.refresh(token).await;
        }
    }

    /// Trades the refresh token for new tokens, unless another call already did since
    /// `failed` (the access token that was refused) was current. False: the session ended.
    pub async fn refresh(&self, failed: Option<String>) -> bool {
        let _one_at_a_time = self.refreshing.lock().await;
        let Some(session) = self.session() else { return false };
        if failed.is_some_and(|failed| failed != session.access_token) {
            return true;
        }
        let request = kiln_proto::v1::RefreshRequest { refresh_token: session.refresh_token.clone() };
        match within(self.auth().refresh(request), sleep_ms(CALL_DEADLINE_MS)).await {
            Ok(response) => match response.into_inner().tokens {
                Some(tokens) => {
                    self.sign_in(&tokens);
                    true
                }
                None => false,
            },
            Err(status)
                if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument) =>
            {
                self.sign_out();
                false
            }
            // The gateway is away: keep the session, the call reports the failure.
            Err(_) => false,
        }
    }
}

/// Calls `$client().$method(request)` with a fresh token; a call refused as
/// UNAUTHENTICATED is made once more after a refresh. Evaluates to `Result<Response, ApiError>`.
#[macro_export]
macro_rules! call {
    ($api:expr, $client:ident . $method:ident ( $request:expr )) => {{
        let api: $crate::api::Api = $api.clone();
        let request = $request;
        api.fresh().await;
        let token = api.session().map(|s| s.access_token);
        let deadline = || $crate::api::sleep_ms($crate::api::CALL_DEADLINE_MS);
        let first = $crate::api::within(api.$client().$method(request.clone()), deadline()).await;
        let answer = match first {
            Err(status) if status.code() == tonic::Code::Unauthenticated && token.is_some() => {
                if api.refresh(token).await {
                    $crate::api::within(api.$client().$method(request), deadline()).await
                } else {
                    Err(status)
                }
            }
            other => other,
        };
        answer.map(|response| response.into_inner()).map_err($crate::api::ApiError::from)
    }};
}

/// The answer of `call`, or DEADLINE_EXCEEDED if `deadline` comes first (the call is
/// dropped: the browser aborts its request).
pub async fn within<T>(
    call: impl std::future::Future<Output = Result<T, Status>>,
    deadline: impl std::future::Future<Output = ()>,
) -> Result<T, Status> {
    let (call, deadline) = (std::pin::pin!(call), std::pin::pin!(deadline));
    match futures_util::future::select(call, deadline).await {
        futures_util::future::Either::Left((answer, _)) => answer,
        futures_util::future::Either::Right(((), _)) => {
            Err(Status::deadline_exceeded("Kiln is taking too long to answer. Try again in a moment."))
        }
    }
}

/// Resolves after `ms` milliseconds (the browser's timer).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_stream_is_reopened_after_a_pause_that_doubles_to_half_a_minute() {
        let pauses: Vec<i32> =
            std::iter::successors(Some(FIRST_REOPEN_PAUSE_MS), |p| Some(next_reopen_pause(*p))).take(7).collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    }

    #[test]
    fn a_form_refuses_itself_only_for_what_it_found_and_counts_it() {
        assert_eq!(ApiError::found_in_form(Vec::new(), "field"), None);
        let one = ApiError::found_in_form(vec![("name".into(), "is required".into())], "field").unwrap();
        assert_eq!(
            (one.code, one.message.as_str(), one.field("name")),
            (Code::InvalidArgument, "1 field needs a look.", Some("is required"))
        );
        let two = vec![("a".into(), "x".into()), ("b".into(), "y".into())];
        assert_eq!(ApiError::found_in_form(two, "setting").unwrap().message, "2 settings need a look.");
    }

    #[test]
    fn a_token_is_refreshed_shortly_before_it_expires() {
        let tokens =
            TokenPair { access_token: "a".into(), refresh_token: "r".into(), expires_in: 900, ..TokenPair::default() };
        let session = Session::from_tokens(&tokens, 1_000_000.0);
        assert_eq!(session.expires_at_ms, 1_900_000.0);
        assert!(!session.needs_refresh(1_000_000.0));
        assert!(!session.needs_refresh(1_869_999.0));
        assert!(session.needs_refresh(1_870_000.0), "within the margin");
        assert!(session.needs_refresh(2_000_000.0), "expired");
    }

    #[test]
    fn a_session_survives_a_reload_and_garbage_is_no_session() {
        let session = Session { access_token: "a.b.c".into(), refresh_token: "r".into(), expires_at_ms: 12.5 };
        assert_eq!(Session::decode(&session.encode()), Some(session));
        assert_eq!(Session::decode("only-one-line"), None);
        assert_eq!(Session::decode("\nr\n1"), None);
    }

    #[test]
    fn field_errors_come_from_the_status_details() {
        let details = tonic_types::ErrorDetails::with_bad_request(vec![
            tonic_types::FieldViolation::new("amount", "must be at least 0"),
            tonic_types::FieldViolation::new("status", "must be one of draft, sent"),
        ]);
        let status = Status::with_error_details(Code::InvalidArgument, "2 fields are invalid", details);
        let error = ApiError::from(status);
        assert_eq!(error.message, "2 fields are invalid");
        assert_eq!(error.field("amount"), Some("must be at least 0"));
        assert_eq!(error.field("number"), None);
        assert!(!error.is_transient());
        assert!(ApiError::from(Status::unavailable("down")).is_transient());
    }

    #[test]
    fn a_stale_save_names_the_version_that_is_current() {
        let stale = ApiError::from(Status::failed_precondition(
            "prompt 1f was saved by someone else since version 2: version 3 is current; read it, then save your change on it",
        ));
        assert_eq!(stale.current_version(), Some(3));
        assert_eq!(ApiError::from(Status::invalid_argument("version 3 is current")).current_version(), None);
        assert_eq!(ApiError::from(Status::failed_precondition("no version named")).current_version(), None);
    }

    #[test]
    fn a_call_that_does_not_answer_in_time_is_a_deadline_exceeded_that_can_be_retried() {
        use futures_util::{FutureExt, future};
        let answered = within(future::ready(Ok::<_, Status>(7)), future::pending()).now_or_never();
        assert_eq!(answered.map(|a| a.map_err(|s| s.code())), Some(Ok(7)));
        let late = within(future::pending::<Result<u8, Status>>(), future::ready(())).now_or_never();
        let error = ApiError::from(late.expect("the deadline resolves it").expect_err("no answer"));
        assert_eq!(error.code, Code::DeadlineExceeded);
        assert!(error.message.contains("too long"), "{}", error.message);
        assert!(error.is_transient(), "offered a retry");
    }
}
