//! `GET /metrics` and the middleware that counts and times every HTTP request.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{counter, histogram};

use crate::server::{
    metrics::{self as m, HTTP_DURATION, HTTP_REQUESTS},
    state::AppState,
};

/// Counts every request and times it to its response headers, labelled with the route
/// template (`/api/v1/conversations/{id}`), never the raw path; unmatched paths (static
/// files, unknown pages) share the label `other`.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    response
}

/// The standard methods by name, anything else as `OTHER`: a label is never taken from
/// what a client made up, so anonymous requests cannot grow the number of series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Prometheus scrapes this (text format 0.0.4); open like `/healthz` (counts and timings,
/// no user data). Keep it inside your network: see docs/operating.md.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Metrics in Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let backlog = match &state.ingest {
        Some(ingest) => ingest.backlog().await,
        None => 0,
    };
    let text = m::render(
        state.local.as_ref().map_or(0, |l| l.in_flight()),
        backlog,
        state.chat.running(),
    );
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    (content_type, text)
}
