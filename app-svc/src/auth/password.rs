//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane).
//! Hashing is CPU-bound, so it runs on the blocking pool.

use std::sync::LazyLock;

use anyhow::anyhow;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, verified against when the email is unknown so
/// that "no such user" costs the same time as "wrong password".
static DECOY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hasher().hash_password(b"kiln decoy password for unknown accounts").ok().map(|h| h.to_string()));

/// The PHC string of `password` with a fresh random salt.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Whether `password` matches `phc`; with no hash, spends the same time and says no.
pub async fn verify(password: String, phc: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let Some(phc) = phc.or_else(|| DECOY_HASH.clone()) else {
            return Err(anyhow!("decoy hash unavailable"));
        };
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow!("stored password hash is malformed: {e}"))?;
        Ok(hasher().verify_password(password.as_bytes(), &parsed).is_ok() && known)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let phc = hash("correct horse 9".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse 9".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("wrong horse 9".into(), Some(phc.clone())).await.unwrap());
        let again = hash("correct horse 9".into()).await.unwrap();
        assert_ne!(phc, again, "salts must differ");
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        assert!(!verify("kiln decoy password for unknown accounts".into(), None).await.unwrap());
    }
}
