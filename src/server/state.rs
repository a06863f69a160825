//! The one application state, and the two helpers server functions use to reach it.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::{LeptosOptions, use_context};

use super::{
    auth::{Accounts, limits::RateLimiter},
    chat::ChatService,
    config::Settings,
    embed::Embedder,
    llm::local::LocalModel,
    rag::ingest::IngestService,
    storage::Store,
};
use crate::api::{ApiError, ErrorCode};

/// Shared by every request (cheap to clone).
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos' own options (site root, output name, reload port).
    pub leptos_options: LeptosOptions,
    /// The settings Stoa started with.
    pub settings: Arc<Settings>,
    /// Persistence; SQLite by default.
    pub store: Arc<dyn Store>,
    /// Conversations and answers.
    pub chat: Arc<ChatService>,
    /// The embedded model, when enabled (also reachable through the chat service's router).
    pub local: Option<Arc<LocalModel>>,
    /// The embedding model, when enabled.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Document ingestion (needs the embedding model).
    pub ingest: Option<Arc<IngestService>>,
    /// Users, sessions, API keys.
    pub accounts: Arc<Accounts>,
    /// Per-user and per-address request limits.
    pub limits: Arc<RateLimiter>,
    /// Provider probes and answer leases, stopped at shutdown.
    pub background: crate::server::background::Background,
}

impl AppState {
    /// Document ingestion, or a 503 saying why there is none.
    pub fn ingest(&self) -> Result<&Arc<IngestService>, ApiError> {
        self.ingest.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unavailable,
                "documents need the embedding model, which is disabled ([embedding] enabled = false)",
            )
        })
    }
}

/// The state, from inside a server function.
pub fn state() -> Result<AppState, ApiError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        ApiError::internal()
    })
}

/// The signed-in user of the request a server function serves (set by the auth gate).
pub fn principal() -> Result<super::auth::Principal, ApiError> {
    use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<super::auth::Principal>().cloned())
        .ok_or_else(super::auth::middleware::unauthorized)
}
