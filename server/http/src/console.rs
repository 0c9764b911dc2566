//! The web console at `/`: a single-page app from assets embedded in the
//! binary when it was compiled (`console/`, built by `scripts/console.sh`),
//! so it works offline and needs nothing beside the server. It calls the
//! JSON API under `/v1` with the user's bearer token like any other client.
//!
//! Files are sent gzip-compressed to browsers that accept it, with an ETag
//! so a reload costs a 304, and with headers that keep the page from being
//! framed or loading anything from elsewhere.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Scripts, styles and data only from this origin; CodeMirror and the
/// charts set inline styles.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes: the page at `/`, its files under `/console/`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/console/{file}", get(file))
}

async fn page(headers: HeaderMap) -> Response {
    match asset("index.html") {
        Some(_) => send("index.html", &headers),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web console was not built into this binary. Run scripts/console.sh (it needs \
             Node.js and npm), then build the server again; ./dev build does both. The JSON API \
             is at /v1 (see /v1/openapi.json).\n",
        )
            .into_response(),
    }
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if name == "index.html" || name.ends_with(".gz") || asset(&name).is_none() {
        return (StatusCode::NOT_FOUND, "no such file in the console\n").into_response();
    }
    send(&name, &headers)
}

fn asset(name: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, bytes, etag)| (*bytes, *etag))
}

/// Sends `name`, or its gzip copy when the browser accepts gzip; 304 when
/// the browser's copy is current.
fn send(name: &str, request: &HeaderMap) -> Response {
    let gzip_name = format!("{name}.gz");
    let gzip = accepts_gzip(request).then(|| asset(&gzip_name)).flatten();
    let Some((bytes, etag)) = gzip.or_else(|| asset(name)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        bytes.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    headers.insert(header::ETAG, HeaderValue::from_static(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip(&accept("gzip, deflate, br")));
        assert!(accepts_gzip(&accept("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&accept("*")));
        assert!(!accepts_gzip(&accept("gzip;q=0, br")));
        assert!(!accepts_gzip(&accept("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn files_have_their_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("console.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("console.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("LICENSES.txt"), "text/plain; charset=utf-8");
    }
}
