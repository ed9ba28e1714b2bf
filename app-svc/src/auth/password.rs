//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane).
//! Hashing is CPU-bound, so it runs on the blocking pool, and at most one hash per core
//! runs at once: a burst of sign-ins queues (up to [`QUEUE_WAIT`], then is refused with
//! RESOURCE_EXHAUSTED) instead of taking 19 MiB per request until memory runs out.

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::anyhow;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use kiln_common::ServiceError;
use tokio::sync::Semaphore;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, verified against when the email is unknown so
/// that "no such user" costs the same time as "wrong password".
static DECOY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hasher().hash_password(b"kiln decoy password for unknown accounts").ok().map(|h| h.to_string()));

/// How long a sign-in waits for a free hashing slot before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Hashes that may run at once: one per core (more would not finish sooner).
pub fn hashing_slots() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(hashing_slots()));
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// The most hashes ever seen running at once, for tests and the metric.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ServiceError> {
    let permit = tokio::time::timeout(QUEUE_WAIT, SLOTS.acquire())
        .await
        .map_err(|_| ServiceError::ResourceExhausted("too many sign-ins at once; retry shortly".into()))?
        .map_err(|e| anyhow!("hashing slots closed: {e}"))?;
    let running = RUNNING.fetch_add(1, Ordering::AcqRel) + 1;
    PEAK.fetch_max(running, Ordering::AcqRel);
    metrics::gauge!("kiln_password_hashes_running").set(running as f64);
    let result = tokio::task::spawn_blocking(work).await;
    let running = RUNNING.fetch_sub(1, Ordering::AcqRel) - 1;
    metrics::gauge!("kiln_password_hashes_running").set(running as f64);
    drop(permit);
    Ok(result.map_err(|e| anyhow!("hashing task failed: {e}"))??)
}

/// The PHC string of `password` with a fresh random salt.
pub async fn hash(password: String) -> Result<String, ServiceError> {
    bounded(move || {
        hasher().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| anyhow!("hashing password: {e}"))
    })
    .await
}

/// Whether `password` matches `phc`; with no hash, spends the same time and says no.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, ServiceError> {
    bounded(move || {
        let known = phc.is_some();
        let Some(phc) = phc.or_else(|| DECOY_HASH.clone()) else {
            return Err(anyhow!("decoy hash unavailable"));
        };
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow!("stored password hash is malformed: {e}"))?;
        Ok(hasher().verify_password(password.as_bytes(), &parsed).is_ok() && known)
    })
    .await
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_hashes_runs_at_most_one_per_core() {
        let burst: Vec<_> = (0..4 * hashing_slots() + 2)
            .map(|i| tokio::spawn(async move { hash(format!("burst password {i}")).await }))
            .collect();
        for task in burst {
            assert!(task.await.unwrap().is_ok());
        }
        let peak = PEAK.load(Ordering::Acquire);
        assert!(peak >= 1 && peak <= hashing_slots(), "{peak} hashes ran at once");
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        assert!(!verify("kiln decoy password for unknown accounts".into(), None).await.unwrap());
    }
}
