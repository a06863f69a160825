//! Server functions of the chat: send a message and stream the answer; stop an answer.

use leptos::prelude::*;
use server_fn::codec::{Json, StreamingText, TextStream};

use super::{error::ApiError, types::ChatRequest};

/// Stores the user message, then streams the answer as newline-delimited
/// [`ChatEvent`](super::events::ChatEvent)s. Invalid requests are rejected before any token
/// is spent, with the offending field named.
#[server(endpoint = "chat/send", input = Json, output = StreamingText)]
pub async fn send_message(req: ChatRequest) -> Result<TextStream<ApiError>, ApiError> {
    use crate::server::state::state;
    use futures::StreamExt;

    let events = state()?.chat.send(req).await.map_err(ApiError::from)?;
    Ok(TextStream::new(events.map(|event| Ok(event.to_line()))))
}

/// Stops a running answer. The partial answer is kept with status `stopped`.
/// Returns false when that answer had already ended.
#[server(endpoint = "chat/stop", input = Json)]
pub async fn stop_generation(message_id: String) -> Result<bool, ApiError> {
    use crate::server::state::state;
    Ok(state()?.chat.stop(&message_id))
}
