//! Server functions of the chat: send a message and stream the answer; stop an answer.

use leptos::prelude::*;
use server_fn::codec::{Json, StreamingText, TextStream};

use super::{error::ApiError, types::ChatRequest};

/// Stores the user message, then streams the answer as newline-delimited
/// [`ChatEvent`](super::events::ChatEvent)s. Invalid requests are rejected before any token
/// is spent, with the offending field named.
#[server(endpoint = "chat/send", input = Json, output = StreamingText, client = super::csrf::CsrfClient)]
pub async fn send_message(req: ChatRequest) -> Result<TextStream<ApiError>, ApiError> {
    use crate::server::state::{principal, state};
    use futures::StreamExt;

    // The page may reload while the answer is written: it goes on, and the page
    // re-attaches with `watch_answer`. Stop ends it.
    let events = state()?
        .chat
        .send_detached(principal()?.user, req)
        .await
        .map_err(ApiError::from)?;
    Ok(TextStream::new(events.map(|event| Ok(event.to_line()))))
}

/// Re-attaches to an answer still being written (after a reload, or from another tab):
/// a `resumed` event with the answer so far, then its tokens and `done`. Not found when
/// the answer has ended meanwhile (the page then reads the stored message).
#[server(endpoint = "chat/watch", input = Json, output = StreamingText, client = super::csrf::CsrfClient)]
pub async fn watch_answer(message_id: String) -> Result<TextStream<ApiError>, ApiError> {
    use crate::server::state::{principal, state};
    use futures::StreamExt;

    let events = state()?
        .chat
        .watch(principal()?.user, &message_id)
        .await
        .map_err(ApiError::from)?;
    Ok(TextStream::new(events.map(|event| Ok(event.to_line()))))
}

/// Stops a running answer. The partial answer is kept with status `stopped`.
/// Returns false when that answer had already ended.
#[server(endpoint = "chat/stop", input = Json, client = super::csrf::CsrfClient)]
pub async fn stop_generation(message_id: String) -> Result<bool, ApiError> {
    use crate::server::state::{principal, state};
    state()?
        .chat
        .stop(principal()?.user, &message_id)
        .await
        .map_err(ApiError::from)
}

/// Sends a message from the plain HTML form, for browsers without JavaScript: waits for
/// the whole answer, then redirects to the conversation (creating it first when
/// `conversation_id` is empty). A rejected message redirects back with `error` and
/// `field` in the query, which the page shows next to the field. With JavaScript the page
/// streams through [`send_message`] instead.
#[server(endpoint = "chat/send_form", client = super::csrf::CsrfClient)]
pub async fn send_form(
    conversation_id: Option<String>,
    message: String,
    temperature: Option<String>,
    max_tokens: Option<String>,
    model: Option<String>,
    trim_history: Option<String>,
) -> Result<(), ApiError> {
    use crate::server::{
        chat::ChatForm,
        state::{principal, state},
    };
    let form = ChatForm {
        conversation_id,
        message,
        temperature,
        max_tokens,
        model,
        trim_history: trim_history.is_some(),
    };
    let outcome = state()?.chat.answer_form(principal()?.user, form).await;
    leptos_axum::redirect(&outcome.location());
    Ok(())
}

/// Answers a question again as a new version of an assistant message (the old one stays,
/// as another branch); streams like [`send_message`].
#[server(endpoint = "chat/regenerate", input = Json, output = StreamingText, client = super::csrf::CsrfClient)]
pub async fn regenerate_answer(
    req: super::types::RegenerateRequest,
) -> Result<TextStream<ApiError>, ApiError> {
    use crate::server::state::{principal, state};
    use futures::StreamExt;

    let events = state()?
        .chat
        .regenerate(principal()?.user, req)
        .await
        .map_err(ApiError::from)?;
    Ok(TextStream::new(events.map(|event| Ok(event.to_line()))))
}
