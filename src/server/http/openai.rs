//! Stoa's OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions`
//! (JSON, or SSE chunks ending in `[DONE]` with keep-alives and in-stream error events).
//! Handlers only parse, call the chat service and shape the answer.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::openai_wire::{ChatCompletionRequest, OpenAiError, Usage, error_body};
use crate::{
    api::{ApiError, ErrorCode},
    server::{
        chat::completion::Started,
        clock::now_ms,
        llm::{FinishReason, TokenEvent, local::LOCAL_PROVIDER},
        state::AppState,
    },
};

/// `/v1`, each route declared once with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(chat_completions))
        .routes(routes!(super::embeddings::create))
}

/// A `/v1` handler's failure: the contract's [`ApiError`] in OpenAI's error shape. Every
/// service error converts into it, so handlers use `?`.
#[derive(Debug)]
pub struct V1Error(pub ApiError);

impl<E: Into<ApiError>> From<E> for V1Error {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

pub type V1Result<T> = Result<T, V1Error>;

pub(super) fn error_response(e: ApiError) -> Response {
    let (status, body) = error_body(&e);
    let mut res = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response();
    super::set_retry_after(&e, res.headers_mut());
    res
}

/// The JSON body, or a 400 saying why it is not one (never axum's plain-text rejection).
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidInput, format!("invalid JSON body: {e}")))
}

/// The available models: chat models `provider/model` with their `context_window`, and the
/// local embedding model marked `type: embedding`.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses(
    (status = 200, description = "`{\"object\": \"list\", \"data\": [model]}` as OpenAI lists models"),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = OpenAiError),
))]
pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = now_ms() / 1000;
    let data: Vec<Value> = state
        .chat
        .model_list()
        .models
        .into_iter()
        .filter(|m| m.available)
        .map(|m| {
            json!({"id": m.id, "object": "model", "created": created, "owned_by": m.provider,
                   "context_window": m.context_window})
        })
        .chain(state.embedder.iter().map(|e| {
            json!({"id": format!("{LOCAL_PROVIDER}/{}", e.model()), "object": "model", "created": created,
                   "owned_by": LOCAL_PROVIDER, "type": "embedding", "dimensions": e.dimensions()})
        }))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// A chat completion through the same providers, fallbacks and validation as the chat.
/// With `stream: true`: server-sent `chat.completion.chunk` events, a usage chunk when
/// `stream_options.include_usage`, then `data: [DONE]`; a failure mid-answer arrives as an
/// `{"error": …}` event.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatCompletionRequest, responses(
    (status = 200, description = "A `chat.completion` object, or an SSE stream (`text/event-stream`)"),
    (status = 400, description = "A parameter is invalid; `param` names it", body = OpenAiError),
    (status = 404, description = "Unknown model (`model_not_found`)", body = OpenAiError),
    (status = 503, description = "Busy, or no provider could start an answer; see `Retry-After`", body = OpenAiError),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = OpenAiError),
    (status = 429, description = "Too many answers started (`rate_limit_exceeded`); see `Retry-After`", body = OpenAiError),
))]
pub(crate) async fn chat_completions(State(state): State<AppState>, body: Bytes) -> V1Result<Response> {
    let req: ChatCompletionRequest = parse_body(&body)?;
    let started = state.chat.complete(req.to_completion()?).await?;
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    if req.stream {
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let sse = Sse::new(sse_events(id, started, include_usage))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
        Ok(sse.into_response())
    } else {
        Ok(whole(id, started).await?.into_response())
    }
}

/// Non-streaming: the whole answer in one `chat.completion` object.
async fn whole(id: String, started: Started) -> V1Result<Json<Value>> {
    let (model, prompt_tokens) = (started.model.clone(), started.prompt_tokens);
    let w = started.collect().await?;
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": now_ms() / 1000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": w.content},
                     "finish_reason": finish_reason(w.finish)}],
        "usage": Usage::new(prompt_tokens, w.completion_tokens),
    })))
}

/// Streaming: a role chunk, content chunks, a finish chunk, an optional usage chunk,
/// then `[DONE]`. A failure mid-answer is sent as an `{"error": …}` event and ends the
/// stream (never retried: tokens were already sent). Dropping the response (client gone)
/// drops the token stream, which stops decoding.
fn sse_events(
    id: String,
    started: Started,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let created = now_ms() / 1000;
    let Started {
        model,
        prompt_tokens,
        tokens,
    } = started;
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let first = Event::default().data(chunk(json!({"role": "assistant", "content": ""}), None).to_string());
    let rest = tokens
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .scan(false, move |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let events: Vec<Event> = match item {
                Some(Ok(TokenEvent::Token(t))) => {
                    vec![Event::default().data(chunk(json!({"content": t}), None).to_string())]
                }
                Some(Ok(TokenEvent::Done {
                    completion_tokens,
                    finish,
                    ..
                })) => {
                    *ended = true;
                    let mut last = chunk(json!({}), Some(finish_reason(finish)));
                    let mut out = vec![Event::default().data(last.to_string())];
                    if include_usage {
                        last["choices"] = json!([]);
                        last["usage"] = json!(Usage::new(prompt_tokens, completion_tokens));
                        out.push(Event::default().data(last.to_string()));
                    }
                    out.push(Event::default().data("[DONE]"));
                    out
                }
                Some(Err(e)) => {
                    *ended = true;
                    let api: ApiError = crate::server::chat::ChatError::Llm(e).into();
                    vec![Event::default().data(error_body(&api).1.to_string())]
                }
                None => {
                    *ended = true;
                    let api =
                        ApiError::new(ErrorCode::Internal, "the model's stream ended without finishing");
                    vec![Event::default().data(error_body(&api).1.to_string())]
                }
            };
            futures::future::ready(Some(futures::stream::iter(events)))
        })
        .flatten();
    futures::stream::once(async move { first }).chain(rest).map(Ok)
}
