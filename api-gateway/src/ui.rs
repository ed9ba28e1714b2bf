//! The web UI's files (`kiln_ui_assets`, built into the binary) over HTTP: gzipped for
//! browsers that take it, content-named files cached for good and `index.html` asked for
//! again each time; any other page a browser navigates to (`/invoices/<id>`) gets
//! `index.html`, where the app routes it. Served by the gateway at `/`, and alone by the
//! `ui` role, which names the gateway in the page (`<meta name="kiln-api">`).

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
}

impl From<&'static Asset> for Served {
    fn from(asset: &'static Asset) -> Self {
        Served {
            content_type: asset.content_type,
            body: Bytes::from_static(asset.body),
            gzip: Bytes::from_static(asset.gzip),
            immutable: asset.immutable,
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
        if api_url.is_empty() {
            return UiFiles { index };
        }
        let page = String::from_utf8_lossy(&index.body).replace(
            "<meta name=\"kiln-api\" content=\"\">",
            &format!("<meta name=\"kiln-api\" content=\"{}\">", escape_attribute(api_url)),
        );
        let gzip = Bytes::from(gzip(page.as_bytes()));
        UiFiles { index: Served { body: Bytes::from(page), gzip, ..index } }
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
    response
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
