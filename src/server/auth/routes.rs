//! The form targets of the sign-in pages: plain HTML form posts that answer with a
//! redirect (and a cookie), so signing in and out works without JavaScript.

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use serde::Deserialize;

use super::{middleware::cookie, service::SESSION_COOKIE};
use crate::{
    api::ApiError,
    server::{config::AuthMode, state::AppState},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signin", post(sign_in))
        .route("/auth/signup", post(sign_up))
        .route("/auth/signout", post(sign_out))
}

/// Missing fields are empty, so validation names them rather than the form failing whole.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Credentials {
    name: String,
    password: String,
}

/// Back to the form's page with the error and its field in the query.
fn back(page: &str, e: impl Into<ApiError>) -> Response {
    let e: ApiError = e.into();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", &e.message)
        .append_pair("field", e.field.as_deref().unwrap_or("form"))
        .finish();
    Redirect::to(&format!("{page}?{query}")).into_response()
}

/// Signed in: a new session cookie, then the app.
async fn signed_in(state: &AppState, user: &crate::server::storage::accounts::UserRecord) -> Response {
    match state.accounts.open_session(user).await {
        Ok(token) => {
            let mut res = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&state.accounts.session_cookie(&token)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => back("/signin", e),
    }
}

async fn sign_in(State(state): State<AppState>, Form(c): Form<Credentials>) -> Response {
    if state.accounts.mode() == AuthMode::SingleUser {
        return Redirect::to("/").into_response();
    }
    // Per account name, from any address (the gate already counted this address).
    if let Err(wait) = state.limits.check_account(&c.name).await {
        return back("/signin", super::limits::rate_limited(wait));
    }
    match state.accounts.sign_in(&c.name, &c.password).await {
        Ok(user) => signed_in(&state, &user).await,
        Err(e) => back("/signin", e),
    }
}

async fn sign_up(State(state): State<AppState>, Form(c): Form<Credentials>) -> Response {
    if state.accounts.mode() == AuthMode::SingleUser {
        return Redirect::to("/").into_response();
    }
    match state.accounts.sign_up(&c.name, &c.password).await {
        Ok(user) => signed_in(&state, &user).await,
        Err(e) => back("/signup", e),
    }
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.accounts.close_session(token).await
    {
        return back("/account", e);
    }
    let mut res = Redirect::to("/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&state.accounts.clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
