//! The one gate every request passes: cross-site refusal, authentication, CSRF, access
//! and rate limits, in that order. Handlers find the [`Principal`] in the extensions (or
//! take it as an extractor) and never authenticate on their own.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use super::{Principal, service::SESSION_COOKIE};
use crate::{
    api::{
        ApiError, ErrorCode,
        csrf::{CSRF_FIELD, CSRF_HEADER},
    },
    server::{
        http::{
            policy::{self, Access},
            security::MAX_BODY_BYTES,
        },
        state::AppState,
    },
};

pub fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "sign in, or send a valid API key as 'Authorization: Bearer <key>'",
    )
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

/// An error in the shape of the API the path belongs to: OpenAI's error object under
/// `/v1`, problem details under `/api/v1`, Stoa's error (what server functions decode)
/// elsewhere.
pub fn reject(path: &str, e: ApiError) -> Response {
    let mut res = if path.starts_with("/v1/") {
        let (status, body) = crate::server::http::openai_wire::error_body(&e);
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response()
    } else if path.starts_with("/api/v1/") {
        return crate::server::http::rest::problem(e);
    } else {
        (
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(&e),
        )
            .into_response()
    };
    if e.code == ErrorCode::Unauthorized {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    crate::server::http::set_retry_after(&e, res.headers_mut());
    res
}

/// Pages (as opposed to APIs): anonymous visitors are sent to the sign-in page.
fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path.starts_with("/v1/") || path.starts_with("/auth/"))
}

/// A browser request made by another site (`Sec-Fetch-Site`, or an `Origin` that is not
/// this host). Programs send neither header.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    authority != host
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of the cookie `name` in the request's `Cookie` headers (raw, as sent).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

fn client_ip(state: &AppState, req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| state.limits.client(addr.ip(), req.headers()))
}

/// Whether a session-authenticated, state-changing request carries the session's CSRF
/// token: in the `x-csrf-token` header (server functions, scripts) or, for a plain HTML
/// form, in its `csrf_token` field. Returns the request with its body intact.
async fn carries_csrf_token(req: Request, expected: &str) -> (bool, Request) {
    if let Some(sent) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return (super::secrets::same(sent, expected), req);
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, req);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (false, Request::from_parts(parts, Body::empty()));
    };
    let ok =
        form_urlencoded::parse(&bytes).any(|(k, v)| k == CSRF_FIELD && super::secrets::same(&v, expected));
    (ok, Request::from_parts(parts, Body::from(bytes)))
}

pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let policy = policy::of(req.method(), &path);
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && cross_site(req.headers()) {
        return reject(&path, forbidden("cross-site request refused"));
    }

    let principal = match state
        .accounts
        .authenticate(bearer(req.headers()), cookie(req.headers(), SESSION_COOKIE))
        .await
    {
        Ok(p) => p,
        Err(_) if policy.access == Access::Public => None,
        Err(e) => return reject(&path, e.into()),
    };

    let mut req = req;
    if changes_state && let Some(expected) = principal.as_ref().and_then(Principal::csrf_token) {
        let (ok, checked) = carries_csrf_token(req, expected).await;
        if !ok {
            return reject(
                &path,
                forbidden("missing or wrong CSRF token; reload the page and try again"),
            );
        }
        req = checked;
    }

    if policy.access != Access::Public {
        match &principal {
            None if is_page(&path) && req.method() == Method::GET => {
                return Redirect::to("/signin").into_response();
            }
            None => return reject(&path, unauthorized()),
            Some(p) if policy.access == Access::Admin && !p.admin => {
                return reject(&path, forbidden("only an admin may do this"));
            }
            Some(_) => {}
        }
    }

    if let Some(class) = policy.class {
        let user = principal.as_ref().map(|p| p.user);
        if let Err(wait) = state.limits.check(class, user, client_ip(&state, &req)).await {
            return reject(&path, super::limits::rate_limited(wait));
        }
    }

    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tells_cross_site_requests_from_same_origin_ones() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(!cross_site(&headers(&[])));
    }

    #[test]
    fn reads_bearer_keys_and_cookies() {
        let h = headers(&[
            ("authorization", "Bearer stoa_abc"),
            ("cookie", "a=1; stoa_session=tok; b=2"),
        ]);
        assert_eq!(bearer(&h), Some("stoa_abc"));
        assert_eq!(cookie(&h, "stoa_session"), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn tells_pages_from_apis() {
        assert!(is_page("/c/123") && is_page("/signin"));
        assert!(!is_page("/api/conversations/list") && !is_page("/v1/models") && !is_page("/auth/signin"));
    }
}
