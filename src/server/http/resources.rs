//! The resources of the REST API under `/api/v1`: conversations and their messages
//! (a reply streams as server-sent events on request), documents, collections, models and
//! API keys. Every handler takes the [`Principal`] the auth gate established and passes
//! its user to the services, whose queries only see that user's rows: another user's id
//! is a 404 like an id that never existed.

use std::convert::Infallible;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rest::{ApiJson, Created, OptionalJson, RestResult};
use crate::{
    api::{
        ApiError,
        events::ChatEvent,
        types::{
            ChatRequest, ConversationSettings, ConversationSummary, ConversationView, GenerationParams,
            MessageView, ModelList, RegenerateRequest,
        },
    },
    server::{auth::Principal, state::AppState},
};

pub mod documents;
pub mod keys;
pub mod transfer;

/// The `/api/v1` resources, each declared once: its `#[utoipa::path]` gives both the route
/// and its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(
            get_conversation,
            rename_conversation,
            delete_conversation
        ))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(set_collections))
        .routes(routes!(regenerate))
        .routes(routes!(switch_branch))
        .routes(routes!(set_settings))
        .routes(routes!(transfer::export_conversation))
        .routes(routes!(transfer::export_all))
        .routes(routes!(transfer::import))
        .routes(routes!(transfer::search))
        .routes(routes!(documents::list_documents, documents::upload_documents))
        .routes(routes!(documents::get_document, documents::delete_document))
        .routes(routes!(documents::cancel_document))
        .routes(routes!(documents::list_collections))
        .routes(routes!(documents::search_passages))
        .routes(routes!(list_models))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::revoke_key))
}

/// A new conversation; both fields optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewConversation {
    /// A title (1 to 200 characters); by default the first message names it.
    pub title: Option<String>,
}

/// A new title.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// 1 to 200 characters.
    pub title: String,
}

/// A user message to add to a conversation; the reply is generated at once.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// The message (1 to 16,000 characters).
    pub message: String,
    #[serde(default)]
    pub params: GenerationParams,
    /// `provider/model`; by default the conversation's model, or the default one.
    #[serde(default)]
    pub model: Option<String>,
    /// Leave the oldest messages out of the prompt when the conversation no longer fits
    /// the model's window, instead of refusing (400 `context_length_exceeded`).
    #[serde(default)]
    pub trim_history: bool,
    /// Stream the reply as server-sent events (`started`, `answering`, `token`…, `done`)
    /// instead of answering once it is complete.
    #[serde(default)]
    pub stream: bool,
    /// Edit and resend: this question of the conversation gets `message` as a new version
    /// (the old one and its answers stay, as another branch).
    #[serde(default)]
    pub edit_of: Option<String>,
}

/// Answer a question again.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Regenerate {
    pub params: GenerationParams,
    /// `provider/model`; by default the conversation's.
    pub model: Option<String>,
    pub trim_history: bool,
    /// Stream the new answer as server-sent events.
    pub stream: bool,
}

/// The version of a message to show (with the newest branch under it).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchChoice {
    pub message_id: String,
}

/// Both messages of an exchange, as stored once the reply ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Exchange {
    pub user_message: MessageView,
    pub assistant_message: MessageView,
}

/// One server-sent event of a streamed answer, as the stream carries it (documentation
/// only: the events are written as text).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnswerEvent {
    /// The event's name: `started`, `answering`, `token`, `resumed` or `done`.
    pub event: String,
    /// The ChatEvent as JSON; its `type` is the event's name.
    pub data: String,
}

/// The collections a conversation's answers draw on; empty for all documents.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionChoice {
    pub collection_ids: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations",
    responses(
        (status = 200, description = "The caller's conversations, most recently active first", body = [ConversationSummary]),
        super::rest::Unauthorized,
    ))]
pub(crate) async fn list_conversations(
    State(state): State<AppState>,
    who: Principal,
) -> RestResult<Json<Vec<ConversationSummary>>> {
    Ok(Json(state.chat.list_conversations(who.user).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations",
    request_body(content = Option<NewConversation>, description = "Optional: without a body the conversation gets the defaults"),
    responses(
        (status = 201, description = "The new, empty conversation", body = ConversationSummary),
        super::rest::BadRequest, super::rest::Unauthorized,
    ))]
pub(crate) async fn create_conversation(
    State(state): State<AppState>,
    who: Principal,
    OptionalJson(new): OptionalJson<NewConversation>,
) -> RestResult<Created<ConversationSummary>> {
    if let Some(title) = &new.title {
        crate::api::validation::validate_title(title)?;
    }
    let c = state.chat.create_conversation(who.user).await?;
    Ok(Created(match new.title {
        Some(title) => state.chat.rename_conversation(who.user, &c.id, &title).await?,
        None => c,
    }))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation with its messages", body = ConversationView),
        super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<Json<ConversationView>> {
    Ok(Json(state.chat.get_conversation(who.user, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", request_body = Rename,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Renamed", body = ConversationSummary),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn rename_conversation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(rename): ApiJson<Rename>,
) -> RestResult<Json<ConversationSummary>> {
    Ok(Json(
        state
            .chat
            .rename_conversation(who.user, &id, &rename.title)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Deleted (a running answer in it is stopped)"),
        super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn delete_conversation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<StatusCode> {
    state.chat.delete_conversation(who.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Its messages, oldest first", body = [MessageView]),
        super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn list_messages(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> RestResult<Json<Vec<MessageView>>> {
    Ok(Json(state.chat.get_conversation(who.user, &id).await?.messages))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", request_body = PostMessage,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 201, description = "The exchange once the reply ended (`stream: false`)", body = Exchange),
        (status = 200, description = "With `stream: true`: server-sent events `started`, `answering`, `token`… and `done`, \
            each `data` one JSON ChatEvent. Closing the stream stops the answer.", body = AnswerEvent, content_type = "text/event-stream"),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound, super::rest::TooManyRequests, super::rest::Unavailable,
    ))]
pub(crate) async fn post_message(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(post): ApiJson<PostMessage>,
) -> RestResult<Response> {
    let req = ChatRequest {
        conversation_id: id,
        message: post.message,
        params: post.params,
        model: post.model,
        trim_history: post.trim_history,
        edit_of: post.edit_of,
    };
    let events = state.chat.send(who.user, req).await?;
    answer(events, post.stream).await
}

/// An answer as server-sent events, or the exchange once it has ended (201).
async fn answer(
    events: impl futures::Stream<Item = ChatEvent> + Send + 'static,
    stream: bool,
) -> RestResult<Response> {
    if stream {
        let sse = events.map(|event| {
            Ok::<_, Infallible>(
                Event::default()
                    .event(event.name())
                    .data(event.to_line().trim_end()),
            )
        });
        return Ok(Sse::new(sse).keep_alive(KeepAlive::default()).into_response());
    }
    let mut events = std::pin::pin!(events);
    let mut user_message = None;
    while let Some(event) = events.next().await {
        match event {
            ChatEvent::Started { user_message: u, .. } => user_message = Some(*u),
            ChatEvent::Done { message } => {
                if let Some(user_message) = user_message {
                    let exchange = Exchange {
                        user_message,
                        assistant_message: message,
                    };
                    return Ok(Created(exchange).into_response());
                }
            }
            _ => {}
        }
    }
    Err(ApiError::internal().into())
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages/{message_id}/regenerate", tag = "conversations",
    request_body(content = Option<Regenerate>, description = "Optional: without a body, the defaults"),
    params(("id" = String, Path, description = "Conversation id"), ("message_id" = String, Path, description = "The answer to write again")),
    responses(
        (status = 201, description = "The question and its new answer (a new version; the old one stays as another branch)", body = Exchange),
        (status = 200, description = "With `stream: true`: server-sent events as for a new message", body = AnswerEvent, content_type = "text/event-stream"),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound, super::rest::TooManyRequests, super::rest::Unavailable,
    ))]
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    who: Principal,
    Path((id, message_id)): Path<(String, String)>,
    OptionalJson(again): OptionalJson<Regenerate>,
) -> RestResult<Response> {
    let req = RegenerateRequest {
        conversation_id: id,
        message_id,
        params: again.params,
        model: again.model,
        trim_history: again.trim_history,
    };
    let events = state.chat.regenerate(who.user, req).await?;
    answer(events, again.stream).await
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/branch", tag = "conversations", request_body = BranchChoice,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation showing that version (and the newest branch under it)", body = ConversationView),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn switch_branch(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(choice): ApiJson<BranchChoice>,
) -> RestResult<Json<ConversationView>> {
    Ok(Json(
        state
            .chat
            .switch_branch(who.user, &id, &choice.message_id)
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/settings", tag = "conversations", request_body = ConversationSettings,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation's settings as stored", body = ConversationSettings),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(settings): ApiJson<ConversationSettings>,
) -> RestResult<Json<ConversationSettings>> {
    Ok(Json(state.chat.set_settings(who.user, &id, settings).await?))
}

#[utoipa::path(put, path = "/api/v1/conversations/{id}/collections", tag = "conversations", request_body = CollectionChoice,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Its answers draw on these collections from now on"),
        super::rest::BadRequest, super::rest::Unauthorized, super::rest::NotFound,
    ))]
pub(crate) async fn set_collections(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(choice): ApiJson<CollectionChoice>,
) -> RestResult<StatusCode> {
    let chat = &state.chat;
    chat.set_collections(who.user, &id, &choice.collection_ids)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/models", tag = "conversations",
    responses(
        (status = 200, description = "Models of every provider, whether available, and the default", body = ModelList),
        super::rest::Unauthorized,
    ))]
pub(crate) async fn list_models(State(state): State<AppState>, _who: Principal) -> Json<ModelList> {
    Json(state.chat.model_list())
}
