//! A workspace's OpenAI-compatible endpoint for prompt test runs: its key sealed at rest
//! (ChaCha20-Poly1305 under key material derived from the token signing secret, so a
//! copy of the database alone does not give the key away; what an earlier secret sealed
//! still opens after a rotation), and the one call a test run makes, through the guarded
//! outgoing client.

use std::time::{Duration, Instant};

use chacha20poly1305::{
    ChaCha20Poly1305, Key, Nonce,
    aead::{Aead, KeyInit},
};
use kiln_common::token::TokenKeys;
use rand::RngCore;
use serde_json::{Value, json};

use crate::workflows::outgoing::{self, Outgoing};

const NONCE_BYTES: usize = 12;

/// How long a test run waits for the provider's answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `key` sealed with the current secret: nonce then ciphertext.
pub fn seal(keys: &TokenKeys, key: &str) -> anyhow::Result<Vec<u8>> {
    let material = keys.sealing_keys().next().ok_or_else(|| anyhow::anyhow!("no signing secret"))?;
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let cipher = ChaCha20Poly1305::new(&Key::from(*material));
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), key.as_bytes())
        .map_err(|_| anyhow::anyhow!("the key could not be sealed"))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The key `sealed` holds, opened with whichever secret sealed it.
pub fn open(keys: &TokenKeys, sealed: &[u8]) -> anyhow::Result<String> {
    let (nonce, ciphertext) =
        sealed.split_at_checked(NONCE_BYTES).ok_or_else(|| anyhow::anyhow!("the kept key is too short to be one"))?;
    let nonce: [u8; NONCE_BYTES] = nonce.try_into()?;
    for material in keys.sealing_keys() {
        let cipher = ChaCha20Poly1305::new(&Key::from(*material));
        if let Ok(plain) = cipher.decrypt(&Nonce::from(nonce), ciphertext) {
            return Ok(String::from_utf8(plain)?);
        }
    }
    anyhow::bail!("the provider key was sealed with a secret this installation no longer has; set the key again")
}

/// The last four characters of a key, for telling keys apart.
pub fn hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// What the endpoint answered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Completion {
    pub output: String,
    pub latency_ms: i64,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub total_tokens: i32,
}

/// Sends `rendered` as the one user message of a chat completion to `url`
/// (`{url}/chat/completions`); the error says what went wrong, with the latency.
pub async fn complete(
    outgoing: &Outgoing,
    url: &str,
    model: &str,
    key: Option<&str>,
    rendered: &str,
) -> Result<Completion, (String, i64)> {
    let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis() as i64;
    let mut request = outgoing
        .request(reqwest::Method::POST, &endpoint)
        .map_err(|why| (why, 0))?
        .timeout(CALL_TIMEOUT)
        .json(&json!({ "model": model, "messages": [{ "role": "user", "content": rendered }] }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .map_err(|e| (format!("{endpoint}: {}", crate::workflows::error_chain(&e)), elapsed(started)))?;
    let status = response.status();
    let body = outgoing::response_body(response).await;
    let latency_ms = elapsed(started);
    if !status.is_success() {
        let said = body.pointer("/error/message").and_then(Value::as_str).map(str::to_string);
        return Err((
            format!("{endpoint} answered {status}: {}", said.unwrap_or_else(|| body.to_string())),
            latency_ms,
        ));
    }
    let Some(output) = body.pointer("/choices/0/message/content").and_then(Value::as_str) else {
        return Err((format!("{endpoint} answered without choices[0].message.content"), latency_ms));
    };
    let tokens = |name: &str| body.pointer(&format!("/usage/{name}")).and_then(Value::as_i64).unwrap_or(0) as i32;
    Ok(Completion {
        output: output.to_string(),
        latency_ms,
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        total_tokens: tokens("total_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "the-current-signing-secret-of-32-bytes!";
    const BEFORE: &str = "the-previous-signing-secret-of-32-bytes";

    #[test]
    fn a_sealed_key_opens_after_the_secret_rotates_and_not_without_it() {
        let before = TokenKeys::new(BEFORE, &[], Duration::from_secs(60));
        let sealed = seal(&before, "sk-test-1234").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"1234"), "the key is not kept in the clear");
        let rotated = TokenKeys::new(NOW, &[BEFORE.to_string()], Duration::from_secs(60));
        assert_eq!(open(&rotated, &sealed).unwrap(), "sk-test-1234");
        let forgotten = TokenKeys::new(NOW, &[], Duration::from_secs(60));
        assert!(open(&forgotten, &sealed).unwrap_err().to_string().contains("set the key again"));
        // Two seals of one key differ (fresh nonce each time).
        assert_ne!(seal(&before, "sk-test-1234").unwrap(), sealed);
        assert_eq!(hint("sk-test-1234"), "1234");
    }
}
