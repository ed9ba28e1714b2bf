//! Paging, the one way every list of the platform pages: one default page size, one cap,
//! and one page token format.
//!
//! A list pages by key (keyset paging): a page ends with the key of its last item, and the
//! next page starts after that key. The token a client gets back is that key, opaque:
//! `base64url(digest ‖ json(key))`, where the digest (8 bytes of SHA-256) covers the key
//! and the list the token belongs to — its *scope*, e.g. the workspace, the model and the
//! sort order. A token that was edited, cut short or came from another list (another
//! workspace's, another model's, another sort's) fails the digest and is a 400 on
//! `page_token`. The digest is not a secret: a client that recomputes it can only name
//! a position in a list it may read anyway, whose query is scoped and bound as always.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::ServiceError;

/// Items in a page when the request names no size.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Most items a page may hold.
pub const MAX_PAGE_SIZE: usize = 100;

/// Longest token accepted: keys are a few values, never kilobytes.
const MAX_TOKEN_CHARS: usize = 4096;
const DIGEST_BYTES: usize = 8;

/// A list request's paging, validated: how many items, and after which key.
#[derive(Debug)]
pub struct Paging<K> {
    /// Items the page holds at most.
    pub size: usize,
    /// The key of the last item of the previous page; `None` for the first page.
    pub after: Option<K>,
    scope: String,
}

impl<K: Serialize + DeserializeOwned> Paging<K> {
    /// Reads a request's `page_size` (0 = the default) and `page_token` ("" = the first
    /// page) for the list named by `scope`.
    pub fn read(scope: impl Into<String>, page_size: i32, page_token: &str) -> Result<Self, ServiceError> {
        let size = match usize::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                return Err(ServiceError::invalid_field("page_size", format!("must be between 0 and {MAX_PAGE_SIZE}")));
            }
        };
        let scope = scope.into();
        let after = match page_token {
            "" => None,
            token => Some(decode(&scope, token).ok_or_else(bad_token)?),
        };
        Ok(Paging { size, after, scope })
    }

    /// Rows to fetch: one more than the page holds tells whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.size as i64 + 1
    }

    /// Ends a page fetched with [`Paging::fetch`] rows: keeps `size` items and returns the
    /// token of the next page, or "" when this page is the last.
    pub fn finish<T>(&self, items: &mut Vec<T>, key: impl Fn(&T) -> K) -> String {
        if items.len() <= self.size {
            return String::new();
        }
        items.truncate(self.size);
        items.last().map(|item| self.token_after(&key(item))).unwrap_or_default()
    }

    /// The token of the page that starts after `key`.
    pub fn token_after(&self, key: &K) -> String {
        // A key is plain data (strings, numbers, ids); serialising it cannot fail.
        let json = serde_json::to_vec(key).unwrap_or_default();
        let mut bytes = digest(&self.scope, &json).to_vec();
        bytes.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// The 400 every unusable token gets, whatever made it unusable.
pub fn bad_token() -> ServiceError {
    ServiceError::invalid_field("page_token", "is not a token this list returned")
}

fn decode<K: DeserializeOwned>(scope: &str, token: &str) -> Option<K> {
    if token.len() > MAX_TOKEN_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let (sum, json) = bytes.split_at_checked(DIGEST_BYTES)?;
    (sum == digest(scope, json)).then(|| serde_json::from_slice(json).ok())?
}

fn digest(scope: &str, json: &[u8]) -> [u8; DIGEST_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(b"kiln page token\0");
    hasher.update(scope.as_bytes());
    hasher.update([0]);
    hasher.update(json);
    let full = hasher.finalize();
    let mut sum = [0; DIGEST_BYTES];
    sum.copy_from_slice(&full[..DIGEST_BYTES]);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ServiceError) -> String {
        match error {
            ServiceError::InvalidArgument { violations, .. } => violations[0].field.clone(),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(Paging::<i32>::read("s", 0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(Paging::<i32>::read("s", 7, "").unwrap().size, 7);
        assert_eq!(Paging::<i32>::read("s", MAX_PAGE_SIZE as i32, "").unwrap().size, MAX_PAGE_SIZE);
        for wrong in [-1, MAX_PAGE_SIZE as i32 + 1, i32::MAX] {
            assert_eq!(field_of(Paging::<i32>::read("s", wrong, "").unwrap_err()), "page_size");
        }
    }

    #[test]
    fn a_page_ends_with_the_token_of_its_last_item() {
        let paging = Paging::<(String, i32)>::read("list", 2, "").unwrap();
        assert_eq!(paging.fetch(), 3);
        let mut items = vec![("a", 1), ("b", 2), ("c", 3)];
        let token = paging.finish(&mut items, |(s, n)| (s.to_string(), *n));
        assert_eq!(items, [("a", 1), ("b", 2)]);
        let next = Paging::<(String, i32)>::read("list", 2, &token).unwrap();
        assert_eq!(next.after, Some(("b".to_string(), 2)));

        let mut last_page = vec![("c", 3)];
        assert_eq!(next.finish(&mut last_page, |(s, n)| (s.to_string(), *n)), "");
        assert_eq!(last_page.len(), 1);
    }

    #[test]
    fn edited_foreign_and_malformed_tokens_are_refused() {
        let token = Paging::<String>::read("workspace-a", 1, "").unwrap().token_after(&"ledgers".to_string());
        assert!(Paging::<String>::read("workspace-a", 1, &token).is_ok());
        // Another list's token.
        assert_eq!(field_of(Paging::<String>::read("workspace-b", 1, &token).unwrap_err()), "page_token");
        // Any one character changed.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for at in 0..token.len() {
            let mut edited = token.clone().into_bytes();
            edited[at] = alphabet.bytes().find(|&c| c != edited[at]).unwrap();
            let edited = String::from_utf8(edited).unwrap();
            if URL_SAFE_NO_PAD.decode(&edited).ok() == URL_SAFE_NO_PAD.decode(&token).ok() {
                continue; // the last character's unused low bits
            }
            assert!(Paging::<String>::read("workspace-a", 1, &edited).is_err(), "{edited} was taken");
        }
        // A key of the wrong shape under a right digest, and plain garbage.
        let numbers = Paging::<i32>::read("workspace-a", 1, "").unwrap().token_after(&7);
        assert!(Paging::<String>::read("workspace-a", 1, &numbers).is_err());
        for garbage in ["garbage", "%%%", "bGVkZ2Vycw", "A"] {
            assert!(Paging::<String>::read("workspace-a", 1, garbage).is_err(), "{garbage} was taken");
        }
        assert!(Paging::<String>::read("workspace-a", 1, &"A".repeat(20_000)).is_err());
    }
}
