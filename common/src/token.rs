//! Access tokens: signing (app-svc) and verification (every service).
//!
//! Access tokens are HS256 JWTs with a `kid` header naming the key that signed them, so
//! the signing secret can rotate: the current key signs, earlier keys still verify until
//! their tokens expire. Each token names its session (`sid`, the refresh-token family);
//! [`Authenticator`] refuses tokens whose session has ended or is not the named user's in
//! the named workspace ([`crate::sessions`]), so logout takes effect on every service
//! without waiting for the token to expire.

use std::{path::Path, time::Duration};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use uuid::Uuid;

use crate::{config::MIN_JWT_SECRET_BYTES, db::Db, error::ServiceError, sessions::LiveSessions};

const ISSUER: &str = "kiln";
const AUDIENCE: &str = "kiln";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The user's workspace: the only one the token can reach.
    pub ws: Uuid,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// Who made a call, as proven by a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub workspace_id: Uuid,
    pub session_id: Uuid,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Key material for what a service keeps encrypted at rest (never the secret itself).
    sealing: [u8; 32],
}

impl Key {
    fn new(secret: &str) -> Self {
        let digest = Sha256::digest(format!("kiln-jwt-kid:{secret}").as_bytes());
        Key {
            kid: hex::encode(&digest[..8]),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            sealing: Sha256::digest(format!("kiln-seal:{secret}").as_bytes()).into(),
        }
    }
}

/// The signing key and the keys still accepted for verification.
#[derive(Clone)]
pub struct TokenKeys {
    keys: std::sync::Arc<Vec<Key>>,
    access_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("TokenKeys").field("kids", &kids).field("access_ttl", &self.access_ttl).finish()
    }
}

impl TokenKeys {
    /// `current` signs; `previous` only verify.
    pub fn new(current: &str, previous: &[String], access_ttl: Duration) -> Self {
        let mut keys = vec![Key::new(current)];
        keys.extend(previous.iter().map(|s| Key::new(s)));
        TokenKeys { keys: std::sync::Arc::new(keys), access_ttl }
    }

    /// Key material for data kept encrypted at rest, derived from each secret: the
    /// current one first (it seals), then the previous ones (what they sealed still
    /// opens after the secret rotates).
    pub fn sealing_keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.keys.iter().map(|key| &key.sealing)
    }

    /// The id of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Signs an access token for a user's session.
    pub fn issue(&self, user_id: Uuid, workspace_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            ws: workspace_id,
            sid: session_id,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).context("signing access token")
    }

    /// Checks a token's signature, key, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ServiceError> {
        let unauthenticated = |m: &str| ServiceError::Unauthenticated(m.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("malformed access token"))?;
        let kid = header.kid.ok_or_else(|| unauthenticated("access token has no key id"))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| unauthenticated("access token was signed by an unknown key"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthenticated("access token has expired"),
                _ => unauthenticated("invalid access token"),
            }
        })
    }
}

/// Reads the all-in-one signing secret from the data dir, generating it on first start.
pub fn load_or_generate_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= MIN_JWT_SECRET_BYTES => return Ok(secret.trim().to_string()),
        Ok(_) => anyhow::bail!("{} holds a secret shorter than {MIN_JWT_SECRET_BYTES} bytes", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "generated a JWT signing secret; set KILN_JWT_SECRET to choose one");
    Ok(secret)
}

/// Writes `text` to a new file at `path` that only its owner can read.
#[cfg(unix)]
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Verifies the access token a call carries, in every service.
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: TokenKeys,
    sessions: LiveSessions,
}

impl Authenticator {
    /// Checks sessions in the `sessions` table of `db`: in the process that owns it.
    pub fn new(keys: TokenKeys, db: Db) -> Self {
        Authenticator { keys, sessions: LiveSessions::new(crate::sessions::SessionsTable(db.clone()), db) }
    }

    /// Checks sessions with `sessions`, e.g. by asking app-svc ([`crate::sessions::AskAppSvc`]).
    pub fn with_sessions(keys: TokenKeys, sessions: LiveSessions) -> Self {
        Authenticator { keys, sessions }
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The caller, from `authorization: Bearer <token>`; UNAUTHENTICATED when the token is
    /// missing, invalid, expired or its session has ended.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, ServiceError> {
        let token = bearer_token(metadata)?;
        let claims = self.keys.verify(token)?;
        if !self.sessions.is_live(claims.sid, claims.sub, claims.ws, token).await? {
            return Err(ServiceError::Unauthenticated("the session has ended; sign in again".into()));
        }
        Ok(Principal { user_id: claims.sub, workspace_id: claims.ws, session_id: claims.sid })
    }

    /// Tells every service that session `sid` ended (logout, reuse of a refresh token);
    /// call it once the end has committed.
    pub async fn session_ended(&self, sid: Uuid) {
        self.sessions.ended(sid).await
    }
}

fn bearer_token(metadata: &MetadataMap) -> Result<&str, ServiceError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        ServiceError::Unauthenticated("missing access token: send `authorization: Bearer <token>`".into())
    })?;
    let value = value
        .to_str()
        .map_err(|_| ServiceError::Unauthenticated("the authorization header is not valid text".into()))?;
    bearer(value)
        .ok_or_else(|| ServiceError::Unauthenticated("the authorization header must be `Bearer <token>`".into()))
}

/// The token of an `authorization: Bearer <token>` value.
pub fn bearer(value: &str) -> Option<&str> {
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Some(token.trim())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-example-secret-that-is-32-bytes!!";
    const OLD: &str = "an-older-secret-that-is-also-32-bytes";

    #[test]
    fn tokens_round_trip_and_name_their_key() {
        let keys = TokenKeys::new(SECRET, &[], Duration::from_secs(60));
        let (u, w, s) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(u, w, s).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.current_kid()));
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.ws, claims.sid), (u, w, s));
    }

    #[test]
    fn a_rotated_key_still_verifies_old_tokens_and_a_foreign_key_does_not() {
        let old = TokenKeys::new(OLD, &[], Duration::from_secs(60));
        let token = old.issue(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()).unwrap();
        let rotated = TokenKeys::new(SECRET, &[OLD.to_string()], Duration::from_secs(60));
        assert!(rotated.verify(&token).is_ok());
        let fresh = TokenKeys::new(SECRET, &[], Duration::from_secs(60));
        let err = fresh.verify(&token).unwrap_err().to_string();
        assert_eq!(err, "access token was signed by an unknown key");
    }

    #[test]
    fn tampered_and_expired_tokens_are_refused() {
        let keys = TokenKeys::new(SECRET, &[], Duration::from_secs(60));
        let token = keys.issue(Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify(&tampered).is_err());
        assert!(keys.verify("not.a.token").is_err());

        let key = &keys.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::nil(),
            ws: Uuid::nil(),
            sid: Uuid::nil(),
            iat: now - 120,
            exp: now - 60,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let expired = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        assert_eq!(keys.verify(&expired).unwrap_err().to_string(), "access token has expired");
    }

    #[test]
    fn bearer_header_is_parsed_strictly() {
        let mut md = MetadataMap::new();
        assert!(bearer_token(&md).is_err());
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer_token(&md).is_err());
        md.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&md).unwrap(), "abc");
    }

    #[test]
    fn generated_secret_is_kept_and_private() {
        let dir = std::env::temp_dir().join(format!("kiln-secret-{}", Uuid::now_v7()));
        let first = load_or_generate_secret(&dir).unwrap();
        let second = load_or_generate_secret(&dir).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_JWT_SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("jwt_secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
