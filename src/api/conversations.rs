//! Server functions over conversations.

use leptos::prelude::*;
use server_fn::codec::Json;

use super::{
    error::ApiError,
    types::{ConversationSummary, ConversationView, ModelInfo},
};

/// Conversations, most recently active first.
#[server(endpoint = "conversations/list", input = Json)]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, ApiError> {
    use crate::server::state::state;
    state()?.chat.list_conversations().await.map_err(ApiError::from)
}

/// A new, empty conversation.
#[server(endpoint = "conversations/create", input = Json)]
pub async fn create_conversation() -> Result<ConversationSummary, ApiError> {
    use crate::server::state::state;
    state()?.chat.create_conversation().await.map_err(ApiError::from)
}

/// One conversation with all its messages.
#[server(endpoint = "conversations/get", input = Json)]
pub async fn get_conversation(id: String) -> Result<ConversationView, ApiError> {
    use crate::server::state::state;
    state()?.chat.get_conversation(&id).await.map_err(ApiError::from)
}

/// The model that answers, with its context window.
#[server(endpoint = "models/current", input = Json)]
pub async fn current_model() -> Result<ModelInfo, ApiError> {
    use crate::server::state::state;
    Ok(state()?.chat.model_info())
}
