//! The web UI's files (`kiln_ui_assets`, built into the binary) over HTTP: gzipped for
//! browsers that take it, content-named files cached for good and `index.html` asked for
//! again each time; any other page a browser navigates to (`/invoices/<id>`) gets
//! `index.html`, where the app routes it. Served by the gateway at `/`, and alone by the
//! `ui` role, which names the gateway in the page (`<meta name="kiln-api">`). The page
//! carries a Content-Security-Policy that lets it run only its own files and its two
//! inline scripts (by hash) and talk only to the gateway, so an injected script has
//! nowhere to run and nowhere to send the session.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use kiln_ui_assets::Asset;

/// A file as served: its bytes, their gzip, how it may be cached.
#[derive(Clone)]
struct Served {
    content_type: &'static str,
    body: Bytes,
    gzip: Bytes,
    immutable: bool,
    /// The page's Content-Security-Policy (None for the files it loads).
    policy: Option<HeaderValue>,
}

impl From<&'static Asset> for Served {
    fn from(asset: &'static Asset) -> Self {
        Served {
            content_type: asset.content_type,
            body: Bytes::from_static(asset.body),
            gzip: Bytes::from_static(asset.gzip),
            immutable: asset.immutable,
            policy: None,
        }
    }
}

/// The pages the UI serves: its files, and `index.html` with the gateway's address in it.
#[derive(Clone)]
pub struct UiFiles {
    index: Served,
}

impl UiFiles {
    /// `api_url`: where the UI finds the gateway; empty when the gateway serves the UI (same origin).
    pub fn new(api_url: &str) -> UiFiles {
        let index = Served::from(kiln_ui_assets::index());
        let page = String::from_utf8_lossy(&index.body).into_owned();
        let policy = HeaderValue::from_str(&content_security_policy(&page, api_url)).ok();
        if api_url.is_empty() {
            return UiFiles { index: Served { policy, ..index } };
        }
        let page = page.replace(
            "<meta name=\"kiln-api\" content=\"\">",
            &format!("<meta name=\"kiln-api\" content=\"{}\">", escape_attribute(api_url)),
        );
        let gzip = Bytes::from(gzip(page.as_bytes()));
        UiFiles { index: Served { body: Bytes::from(page), gzip, policy, ..index } }
    }

    /// The answer to a GET or HEAD of `path` by a browser, if the UI has one: a file of
    /// the bundle, or the app's page for a page of the app. None for anything else (an
    /// unknown file, a client that does not want HTML).
    pub fn answer(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let name = path.trim_start_matches('/');
        if let Some(asset) = kiln_ui_assets::find(name).filter(|a| a.path != "index.html") {
            return Some(respond(&Served::from(asset), method, headers));
        }
        let wants_html = headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        // A path with a file extension is a missing file, not a page of the app.
        let looks_like_file = name.rsplit('/').next().is_some_and(|last| last.contains('.'));
        (name.is_empty() || (wants_html && !looks_like_file)).then(|| respond(&self.index, method, headers))
    }
}

fn respond(file: &Served, method: &Method, headers: &HeaderMap) -> Response {
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|coding| coding.trim().split(';').next() == Some("gzip")));
    let body = if gzip_ok { file.gzip.clone() } else { file.body.clone() };
    let cache = if file.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let length = body.len();
    let mut response = Response::new(if method == Method::HEAD { Body::empty() } else { Body::from(body) });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if gzip_ok {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Some(policy) = &file.policy {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

/// The page's policy: scripts from this origin and the page's own inline scripts (by
/// their SHA-256), WebAssembly compiled from them, calls to this origin and to the
/// gateway named by `api_url` (its origin, when it is an http(s) URL), no framing.
/// Styles may be inline: the views set `style` attributes.
fn content_security_policy(page: &str, api_url: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hashes: String = inline_scripts(page)
        .map(|script| {
            let digest = sha2::Sha256::digest(script.as_bytes());
            format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
        })
        .collect();
    let gateway = api_url
        .parse::<http::Uri>()
        .ok()
        .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
        .and_then(|uri| Some(format!(" {}://{}", uri.scheme_str()?, uri.authority()?)))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{gateway}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The text of each `<script>` element of `page` that has no `src`.
fn inline_scripts(page: &str) -> impl Iterator<Item = &str> {
    page.split("<script").skip(1).filter_map(|rest| {
        let (tag, rest) = rest.split_once('>')?;
        let (body, _) = rest.split_once("</script>")?;
        (!tag.contains("src=")).then_some(body)
    })
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The `ui` role: the UI's files and nothing else, on a port of its own.
pub fn router(api_url: &str) -> Router {
    Router::new().fallback(serve_alone).with_state(UiFiles::new(api_url))
}

async fn serve_alone(State(files): State<UiFiles>, request: Request) -> Response {
    if request.uri().path() == "/healthz" {
        return axum::Json(serde_json::json!({ "status": "ok" })).into_response();
    }
    files
        .answer(request.method(), request.uri().path(), request.headers())
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_each_inline_script_by_hash_and_the_gateway_by_origin() {
        let page = "<script>one()</script><script type=\"module\" src=\"/a.js\"></script><script type=\"module\">\ntwo()\n</script>";
        assert_eq!(inline_scripts(page).collect::<Vec<_>>(), ["one()", "\ntwo()\n"]);
        let policy = content_security_policy(page, "https://api.example.com:8443/base/");
        // printf 'one()' | openssl dgst -sha256 -binary | base64
        assert!(policy.contains("'sha256-HR7iaask9daLMRRskMI++QeJtjWDOjyPA6lGzYGzKW4='"), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(policy.contains("connect-src 'self' https://api.example.com:8443;"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        // An address that is not an http(s) URL adds nothing to the policy.
        for odd in ["", "javascript:alert(1)", "https://x.example; script-src *"] {
            assert!(content_security_policy(page, odd).contains("connect-src 'self';"), "{odd}");
        }
    }

    #[test]
    fn the_page_served_carries_the_policy_of_its_own_scripts() {
        let files = UiFiles::new("");
        let answer = files.answer(
            &Method::GET,
            "/invoices/1",
            &HeaderMap::from_iter([(header::ACCEPT, HeaderValue::from_static("text/html"))]),
        );
        let answer = answer.expect("a page of the app");
        let policy = answer.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        let page = std::str::from_utf8(kiln_ui_assets::index().body).unwrap();
        assert_eq!(policy.matches("'sha256-").count(), inline_scripts(page).count(), "{policy}");
        assert!(inline_scripts(page).count() >= 2, "the theme and the loader are inline");
    }
}
