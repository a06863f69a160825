//! Stoa's OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions`
//! (JSON, or SSE chunks ending in `[DONE]` with keep-alives and in-stream error events).
//! Handlers only parse, call the chat service and shape the answer.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
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
    api::{ApiError, ErrorCode, error::json_body},
    server::{
        chat::completion::{Answered, Started},
        clock::now_ms,
        llm::{FinishReason, TokenEvent, ToolCallDelta, local::LOCAL_PROVIDER},
        state::AppState,
    },
};

/// `/v1`, each route declared once with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(model))
        // Ids hold a slash (`local/SmolLM2…`) and the official clients do not escape it.
        .route("/v1/models/{id}/{*rest}", axum::routing::get(model_with_slash))
        .routes(routes!(chat_completions))
        .routes(routes!(super::embeddings::create))
        .routes(routes!(super::rerank::rerank))
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

/// Every model `/v1/models` lists, as OpenAI describes a model.
fn model_objects(state: &AppState) -> Vec<Value> {
    let created = now_ms() / 1000;
    state
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
        .collect()
}

/// The available models: chat models `provider/model` with their `context_window`, and the
/// local embedding model marked `type: embedding`.
#[utoipa::path(get, path = "/v1/models", tag = "openai", responses(
    (status = 200, description = "`{\"object\": \"list\", \"data\": [model]}` as OpenAI lists models"),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = OpenAiError),
))]
pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"object": "list", "data": model_objects(&state)}))
}

/// One model of the list (the official clients' `models.retrieve`). Ids hold a slash
/// (`local/SmolLM2-135M-Instruct.Q4_1`), which may be sent escaped (`%2F`) or as it is.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "openai",
    params(("id" = String, Path, min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9._:-]+$",
        description = "A model id as `/v1/models` lists it, e.g. `local/SmolLM2-135M-Instruct.Q4_1` (its slash may be escaped or not)")),
    responses(
        (status = 200, description = "The model object"),
        (status = 404, description = "No such model (`model_not_found`)", body = OpenAiError),
        (status = 401, description = "No valid API key (`invalid_api_key`)", body = OpenAiError),
))]
pub(crate) async fn model(State(state): State<AppState>, Path(id): Path<String>) -> V1Result<Json<Value>> {
    model_objects(&state)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("the model '{id}' does not exist"))
                .with_field("model")
                .into()
        })
}

/// [`model`] for an id written with its slash unescaped: `/v1/models/local/SmolLM2…`.
async fn model_with_slash(
    state: State<AppState>,
    Path((provider, rest)): Path<(String, String)>,
) -> V1Result<Json<Value>> {
    model(state, Path(format!("{provider}/{rest}"))).await
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
    (status = 502, description = "The answer does not have the shape `response_format` asks for, even after a retry, or was cut at `max_tokens` (`invalid_output`); the message names the path", body = OpenAiError),
    (status = 401, description = "No valid API key (`invalid_api_key`)", body = OpenAiError),
    (status = 429, description = "Too many answers started (`rate_limit_exceeded`); see `Retry-After`", body = OpenAiError),
))]
pub(crate) async fn chat_completions(State(state): State<AppState>, body: Bytes) -> V1Result<Response> {
    let req: ChatCompletionRequest = json_body(&body)?;
    let completion = req.to_completion()?;
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    if req.stream {
        let started = state.chat.complete(completion).await?;
        let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
        let sse = Sse::new(sse_events(id, started, include_usage))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
        Ok(sse.into_response())
    } else {
        let answered = state.chat.complete_whole(completion).await?;
        Ok(Json(whole(id, answered)).into_response())
    }
}

/// Non-streaming: the whole answer in one `chat.completion` object.
fn whole(id: String, a: Answered) -> Value {
    let w = a.whole;
    let tool_calls: Vec<Value> = w
        .tool_calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": w.content, "refusal": w.refusal});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
        if w.content.is_empty() {
            message["content"] = Value::Null;
        }
    }
    let logprobs = (!w.logprobs.is_empty()).then(|| json!({"content": w.logprobs, "refusal": null}));
    // The provider's own count (it includes what the embedded model adds for tools), else ours.
    let prompt_tokens = if w.prompt_tokens > 0 {
        w.prompt_tokens
    } else {
        a.prompt_tokens
    };
    let mut usage = json!(Usage::new(prompt_tokens, w.completion_tokens));
    if a.grammar || w.retries > 0 {
        usage["stoa"] = json!({"grammar": a.grammar, "retries": w.retries});
    }
    json!({
        "id": id, "object": "chat.completion", "created": now_ms() / 1000, "model": a.model,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs,
                     "finish_reason": w.finish.unwrap_or(FinishReason::Stop).as_str()}],
        "usage": usage,
    })
}

/// One SSE `data:` line.
fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// A tool-call piece as OpenAI streams it: the first piece of a call carries its id, type
/// and name, later ones only more of the arguments.
fn tool_call_delta(d: &ToolCallDelta) -> Value {
    let mut call = json!({"index": d.index, "function": {"arguments": d.arguments}});
    if let Some(id) = &d.id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    if let Some(name) = &d.name {
        call["function"]["name"] = json!(name);
    }
    json!({"tool_calls": [call]})
}

/// Streaming: a role chunk, content (or refusal, or tool-call) chunks, a finish chunk, an
/// optional usage chunk, then `[DONE]`. Log probabilities ride on the content chunk they
/// describe. A failure mid-answer is sent as an `{"error": …}` event and ends the stream
/// (never retried: tokens were already sent). Dropping the response (client gone) drops
/// the token stream, which stops decoding.
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
        grammar,
    } = started;
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let first = data(&chunk(json!({"role": "assistant", "content": ""}), None));
    let mut logprobs: Option<Value> = None;
    let rest = tokens
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .scan(false, move |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let events: Vec<Event> = match item {
                Some(Ok(TokenEvent::Token(t))) => {
                    let mut c = chunk(json!({"content": t}), None);
                    if let Some(l) = logprobs.take() {
                        c["choices"][0]["logprobs"] = l;
                    }
                    vec![data(&c)]
                }
                Some(Ok(TokenEvent::Logprobs(l))) => {
                    logprobs = Some(l);
                    vec![]
                }
                Some(Ok(TokenEvent::Refusal(r))) => vec![data(&chunk(json!({"refusal": r}), None))],
                Some(Ok(TokenEvent::ToolCall(d))) => vec![data(&chunk(tool_call_delta(&d), None))],
                Some(Ok(TokenEvent::Done {
                    prompt_tokens: counted,
                    completion_tokens,
                    finish,
                })) => {
                    *ended = true;
                    let prompt_tokens = if counted > 0 { counted } else { prompt_tokens };
                    let mut last = chunk(json!({}), Some(finish.as_str()));
                    let mut out = vec![data(&last)];
                    if include_usage {
                        last["choices"] = json!([]);
                        last["usage"] = json!(Usage::new(prompt_tokens, completion_tokens));
                        if grammar {
                            last["usage"]["stoa"] = json!({"grammar": true, "retries": 0});
                        }
                        out.push(data(&last));
                    }
                    out.push(Event::default().data("[DONE]"));
                    out
                }
                Some(Err(e)) => {
                    *ended = true;
                    let api: ApiError = crate::server::chat::ChatError::Llm(e).into();
                    vec![data(&error_body(&api).1)]
                }
                None => {
                    *ended = true;
                    let api =
                        ApiError::new(ErrorCode::Internal, "the model's stream ended without finishing");
                    vec![data(&error_body(&api).1)]
                }
            };
            futures::future::ready(Some(futures::stream::iter(events)))
        })
        .flatten();
    futures::stream::once(async move { first }).chain(rest).map(Ok)
}
