//! Who is asking. Every request passes [`middleware::authenticate`], which turns a session
//! cookie, an API key (`Authorization: Bearer`), or single-user mode into a [`Principal`]
//! in the request's extensions, checks CSRF and cross-site requests, refuses anonymous
//! access to everything but the sign-in pages and public assets, and applies rate limits.
//!
//! Ownership: every store method that reads or changes a user's conversations, messages,
//! documents or collections takes a [`UserId`], and its query matches rows of that user
//! only, so another user's id is "not found" (404). A `UserId` can only be made here, from
//! an authenticated principal: handlers get one from [`Principal`] and cannot skip the check.

pub mod limits;
pub mod middleware;
pub mod proxies;
pub mod routes;
pub mod secrets;
pub mod service;

pub use service::Accounts;

/// An authenticated user's id. Only this module makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(i64);

impl UserId {
    /// The single-user owner (and, once claimed, the first account).
    const LOCAL: UserId = UserId(1);
    /// The owner in single-user mode, as a constant for tools and tests (see
    /// [`UserId::single_user`]).
    pub const SINGLE_USER: UserId = Self::LOCAL;

    pub fn get(self) -> i64 {
        self.0
    }

    /// The owner in single-user mode. Tools that run without a request (the retrieval
    /// evaluation, benchmarks, tests) act as this user; request handlers never call it.
    pub const fn single_user() -> Self {
        Self::LOCAL
    }

    /// For tests that need a second owner.
    #[cfg(test)]
    pub fn for_tests(id: i64) -> Self {
        Self(id)
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Single-user mode on loopback: no sign-in.
    SingleUser,
    /// A session cookie; state-changing requests must carry this CSRF token.
    Session { csrf_token: String },
    /// An API key (not subject to CSRF: browsers never attach it on their own).
    ApiKey,
}

/// The user a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub name: String,
    pub admin: bool,
    pub via: Via,
}

impl Principal {
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf_token } => Some(csrf_token),
            _ => None,
        }
    }

    /// The principal of single-user mode.
    fn single_user() -> Self {
        Self {
            user: UserId::LOCAL,
            name: "local".into(),
            admin: true,
            via: Via::SingleUser,
        }
    }

    fn of(user: &crate::server::storage::accounts::UserRecord, via: Via) -> Self {
        Self {
            user: UserId(user.id),
            name: user.name.clone(),
            admin: user.admin,
            via,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| middleware::reject(parts.uri.path(), middleware::unauthorized()))
    }
}

/// The session of the page being rendered (from the request's principal), for the UI.
pub fn page_session() -> crate::api::session::SessionInfo {
    use leptos::prelude::use_context;
    let accounts = use_context::<crate::server::state::AppState>()
        .is_some_and(|s| s.accounts.mode() == crate::server::config::AuthMode::Accounts);
    let parts = use_context::<axum::http::request::Parts>();
    let theme = parts
        .as_ref()
        .and_then(|p| middleware::cookie(&p.headers, crate::api::session::THEME_COOKIE))
        .and_then(crate::api::session::valid_theme);
    let principal = parts.and_then(|parts| parts.extensions.get::<Principal>().cloned());
    match principal {
        Some(p) => crate::api::session::SessionInfo {
            accounts,
            csrf_token: p.csrf_token().map(str::to_owned),
            name: Some(p.name),
            admin: p.admin,
            theme,
        },
        None => crate::api::session::SessionInfo {
            accounts,
            theme,
            ..Default::default()
        },
    }
}
