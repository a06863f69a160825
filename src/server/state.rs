//! The one application state, and the two helpers server functions use to reach it.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::{LeptosOptions, use_context};

use super::{chat::ChatService, config::Settings, embed::Embedder, llm::local::LocalModel, storage::Store};
use crate::api::ApiError;

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
}

/// The state, from inside a server function.
pub fn state() -> Result<AppState, ApiError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        ApiError::internal()
    })
}
