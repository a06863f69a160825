//! Security headers. Every response gets `nosniff`, a strict referrer policy and no
//! framing; every page rendered by Leptos gets a Content-Security-Policy whose only
//! allowed inline scripts are Leptos' own, marked with this response's nonce.

use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of app pages: scripts only by nonce (and what they load), WebAssembly
/// allowed, everything else from Stoa itself, no plugins, no framing.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sets the page's CSP header; call while rendering a page on the server.
pub fn set_page_csp() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(&nonce.to_string())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Headers every response carries (unless a handler set them itself).
pub fn layers() -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    [
        header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        header(header::REFERRER_POLICY, "no-referrer"),
        header(header::X_FRAME_OPTIONS, "DENY"),
    ]
}

/// Largest request body of every route but uploads.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The endpoints that take files (document uploads, conversation imports; UI and REST).
pub const UPLOAD_PATHS: [&str; 4] = [
    "/api/documents/upload",
    "/api/v1/documents",
    "/api/conversations/import",
    "/api/v1/import",
];

/// Refuses request bodies over the limit with a 413 naming it (by `Content-Length` at
/// once, otherwise when the body grows past it), so no route reads unbounded input.
pub async fn limit_body(
    axum::extract::State(upload_limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let limit = if UPLOAD_PATHS.contains(&req.uri().path()) {
        upload_limit
    } else {
        MAX_BODY_BYTES
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        let error = crate::api::ApiError::new(
            crate::api::ErrorCode::PayloadTooLarge,
            format!("the request body is over the limit of {} MB", limit / 1_048_576),
        )
        .with_field("body");
        return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error)).into_response();
    }
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}
