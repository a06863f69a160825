//! Server functions over conversations.

use leptos::prelude::*;
use server_fn::codec::Json;

use super::{
    error::ApiError,
    types::{ConversationSummary, ConversationView, ModelList},
};

/// Conversations, most recently active first.
#[server(endpoint = "conversations/list", input = Json, client = super::csrf::CsrfClient)]
pub async fn list_conversations() -> Result<Vec<ConversationSummary>, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .list_conversations(principal()?.user)
        .await
        .map_err(ApiError::from)
}

/// A new, empty conversation.
#[server(endpoint = "conversations/create", input = Json, client = super::csrf::CsrfClient)]
pub async fn create_conversation() -> Result<ConversationSummary, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .create_conversation(principal()?.user)
        .await
        .map_err(ApiError::from)
}

/// One conversation with all its messages.
#[server(endpoint = "conversations/get", input = Json, client = super::csrf::CsrfClient)]
pub async fn get_conversation(id: String) -> Result<ConversationView, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .get_conversation(principal()?.user, &id)
        .await
        .map_err(ApiError::from)
}

/// Models of every provider (available or not) and the default one.
#[server(endpoint = "models/list", input = Json, client = super::csrf::CsrfClient)]
pub async fn list_models() -> Result<ModelList, ApiError> {
    use crate::server::state::state;
    Ok(state()?.chat.model_list())
}

/// Renames a conversation (1 to 200 characters).
#[server(endpoint = "conversations/rename", input = Json, client = super::csrf::CsrfClient)]
pub async fn rename_conversation(id: String, title: String) -> Result<ConversationSummary, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .rename_conversation(principal()?.user, &id, &title)
        .await
        .map_err(ApiError::from)
}

/// Deletes a conversation; [`restore_conversation`] undoes it for a while.
#[server(endpoint = "conversations/delete", input = Json, client = super::csrf::CsrfClient)]
pub async fn delete_conversation(id: String) -> Result<(), ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .delete_conversation(principal()?.user, &id)
        .await
        .map_err(ApiError::from)
}

/// Undoes a delete.
#[server(endpoint = "conversations/restore", input = Json, client = super::csrf::CsrfClient)]
pub async fn restore_conversation(id: String) -> Result<ConversationSummary, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .restore_conversation(principal()?.user, &id)
        .await
        .map_err(ApiError::from)
}

/// Shows another version of a message (and the newest branch under it); returns the
/// conversation as now shown.
#[server(endpoint = "conversations/branch", input = Json, client = super::csrf::CsrfClient)]
pub async fn switch_branch(id: String, message_id: String) -> Result<ConversationView, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .switch_branch(principal()?.user, &id, &message_id)
        .await
        .map_err(ApiError::from)
}

/// Sets a conversation's system prompt and default parameters.
#[server(endpoint = "conversations/settings", input = Json, client = super::csrf::CsrfClient)]
pub async fn set_conversation_settings(
    id: String,
    settings: super::types::ConversationSettings,
) -> Result<super::types::ConversationSettings, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .set_settings(principal()?.user, &id, settings)
        .await
        .map_err(ApiError::from)
}

/// The signed-in user's messages matching every word of `query` (the last as a prefix),
/// best first, with the matching words marked.
#[server(endpoint = "conversations/search", input = Json, client = super::csrf::CsrfClient)]
pub async fn search_messages(query: String) -> Result<Vec<super::types::SearchHit>, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .search(principal()?.user, &query)
        .await
        .map_err(ApiError::from)
}
