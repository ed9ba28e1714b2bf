//! Requests workflows send out (`http_request`, `send_webhook`): one HTTP client that
//! refuses loopback, private, link-local and other non-public addresses, whether a URL
//! names them or a host name resolves to them, unless the operator allows them
//! (`KILN_WEBHOOK_ALLOW_PRIVATE`), so a workspace cannot reach the platform's own
//! network. No proxies from the environment and no redirects: the address checked is the
//! address reached. And the signature of a webhook delivery, the Standard Webhooks way.

use std::{
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;

/// The most of a response body a run keeps.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The client every outgoing request of this process goes through.
#[derive(Debug, Clone)]
pub struct Outgoing {
    client: reqwest::Client,
    allow_private: bool,
}

impl Outgoing {
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kiln-workflows/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outgoing { client, allow_private })
    }

    /// A request to `url`, once the address it names is one this process may reach.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let parsed = parse_url(url)?;
        if let Some(host) = parsed.host_str() {
            // A literal address is not resolved, so it is checked here.
            let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
            if let Ok(ip) = literal
                && !self.allow_private
                && !is_public(ip)
            {
                return Err(refused(ip));
            }
        }
        Ok(self.client.request(method, parsed))
    }
}

fn refused(ip: IpAddr) -> String {
    format!("{ip} is not a public address; the operator allows such addresses with KILN_WEBHOOK_ALLOW_PRIVATE")
}

fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" => Ok(parsed),
        "https" => Err(format!(
            "`{url}`: https is not reachable from this build (no TLS stack); use http:// to a relay inside your network"
        )),
        other => Err(format!("`{url}`: {other}:// is not http://")),
    }
}

/// Why `url` (with no template in it) cannot be requested, said when a workflow is saved.
pub fn url_error(url: &str) -> Result<(), String> {
    parse_url(url).map(|_| ()).map_err(|why| why.replace(&format!("`{url}`: "), "").replace(&format!("`{url}` "), ""))
}

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // shared address space (carrier-grade NAT) and benchmarking
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // Global unicast only (2000::/3), less the ranges that carry or translate to
            // other addresses (6to4, Teredo) and documentation; NAT64, IPv4-compatible,
            // unique- and link-local forms all fall outside 2000::/3.
            let [first, second, ..] = v6.segments();
            (first & 0xe000) == 0x2000 && first != 0x2002 && !(first == 0x2001 && (second == 0 || second == 0x0db8))
        }
    }
}

/// Resolves names as the system does, then keeps only public addresses (all, when the
/// operator allows private ones); a name with none left is an error naming why.
#[derive(Debug)]
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup = host.clone();
            let found: Vec<SocketAddr> = tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??
                .collect();
            let reachable: Vec<SocketAddr> =
                found.iter().copied().filter(|addr| allow_private || is_public(addr.ip())).collect();
            match (reachable.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(reachable.into_iter()) as Addrs),
                // The address is not named: a workspace may not map the platform's network.
                (true, Some(_)) => Err(format!(
                    "{host} resolves to no public address; the operator allows private ones with KILN_WEBHOOK_ALLOW_PRIVATE"
                )
                .into()),
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

/// The headers that sign a webhook delivery (Standard Webhooks): `webhook-id`,
/// `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` and the base64
/// HMAC-SHA256 of `id.timestamp.body` under the secret). A secret `whsec_<base64>` is
/// the key's bytes in base64, as Standard Webhooks' libraries expect; any other is used
/// as it is.
pub fn signature_headers(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC keys have any length"));
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

/// A response body as a run keeps it: JSON when it is, else text, cut to
/// [`MAX_RESPONSE_BYTES`].
pub async fn response_body(response: reqwest::Response) -> serde_json::Value {
    // Read no further than what is kept: a receiver may answer with gigabytes.
    let mut response = response;
    let mut bytes = Vec::new();
    while bytes.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let kept = &bytes[..bytes.len().min(MAX_RESPONSE_BYTES)];
    serde_json::from_slice(kept)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(kept).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "fec0::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        let guarded = Outgoing::new(false).unwrap();
        let literal = guarded.request(reqwest::Method::GET, "http://127.0.0.1:9/x").unwrap_err();
        assert!(literal.starts_with("127.0.0.1 is not a public address"), "{literal}");
        let named = guarded.request(reqwest::Method::GET, "http://localhost:9/x").unwrap().send().await.unwrap_err();
        let chain = format!("{:?}", anyhow::Error::from(named));
        assert!(chain.contains("localhost resolves to no public address"), "{chain}");
        let open = Outgoing::new(true).unwrap();
        assert!(open.request(reqwest::Method::GET, "http://127.0.0.1:9/x").is_ok());
        assert!(url_error("ftp://example.com").is_err());
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let [_, _, (_, signature)] = signature_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
