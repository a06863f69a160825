//! The site's static files (`/pkg`: the WASM bundle, its JS and the stylesheet; `/docs`:
//! the API documentation page), as a web server should send them: the brotli or gzip copy
//! the build made (`.ci/build-site.sh`) when the browser accepts it, `Vary:
//! Accept-Encoding`, and `Cache-Control: public, max-age=31536000, immutable` on files
//! whose name carries their content hash (a new build gives them new names), `no-cache`
//! on the rest. Pages rendered by Leptos get `no-cache` too (see [`no_cache_html`]).

use std::path::Path;

use axum::{
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use tower_http::services::ServeDir;

/// `Cache-Control` of a file that never changes under its name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Serves `/pkg/…` and `/docs/…` from the site root.
pub fn router<S: Clone + Send + Sync + 'static>(site_root: &Path) -> axum::Router<S> {
    let files = ServeDir::new(site_root)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true);
    axum::Router::new()
        .route_service("/pkg/{*path}", files.clone())
        .route_service("/docs/{*path}", files)
        .layer(axum::middleware::from_fn(cache_control))
}

/// Whether a file name carries a content hash: `name.0123456789abcdef.ext` (16 hex
/// digits, as the build writes them; 22 for the split bundle's loader, whose name has the
/// length of the placeholder it replaces inside the WASM).
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut parts = name.rsplit('.');
    let (Some(_ext), Some(hash), Some(_stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(hash.len(), 16 | 22) && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn cache_control(req: Request, next: Next) -> Response {
    let immutable = is_hashed(req.uri().path());
    let mut res = next.run(req).await;
    if res.status().is_success() || res.status() == axum::http::StatusCode::NOT_MODIFIED {
        let value = if immutable { IMMUTABLE } else { "no-cache" };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    res
}

/// `Cache-Control: no-cache` on HTML that says nothing of its caching (the pages Leptos
/// renders for each request): a browser asks again rather than showing an old page that
/// names old asset hashes.
pub async fn no_cache_html(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_with_a_content_hash_are_immutable() {
        assert!(is_hashed("/pkg/stoa.0123456789abcdef.wasm"));
        assert!(is_hashed("/docs/vendor/swagger-ui-bundle.fedcba9876543210.js"));
        assert!(is_hashed("/pkg/split_documents_42.0123456789abcdef.wasm"));
        assert!(is_hashed("/pkg/__wasm_split.0123456789abcdef012345.js"));
        assert!(!is_hashed("/pkg/__wasm_split.______________________.js"));
        assert!(!is_hashed("/pkg/stoa.wasm"));
        assert!(!is_hashed("/docs/index.html"));
        assert!(!is_hashed("/pkg/stoa.0123456789abcdeg.js"));
        assert!(!is_hashed("/pkg/0123456789abcdef.js"));
    }
}
