//! Any OpenAI-compatible server as a provider, through `async-openai`: OpenAI itself,
//! vLLM, llama.cpp server, Ollama, LM Studio, OpenRouter, or another Stoa.
//!
//! Streams only. Failures before the first token come out as [`LlmError::Unavailable`]
//! (retryable: connection, timeout, 5xx, 429) or [`LlmError::Rejected`] (other 4xx);
//! dropping the stream drops the HTTP response, which closes the upstream connection.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use async_openai::{
    Client,
    config::OpenAIConfig,
    error::OpenAIError,
    types::chat::{
        ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionNamedToolChoice,
        ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
        ChatCompletionRequestMessage, ChatCompletionRequestMessageContentPartImage,
        ChatCompletionRequestMessageContentPartText, ChatCompletionRequestSystemMessage,
        ChatCompletionRequestToolMessage, ChatCompletionRequestUserMessage,
        ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
        ChatCompletionStreamOptions, ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools,
        CreateChatCompletionRequest, CreateChatCompletionStreamResponse, FinishReason as WireFinish,
        FunctionCall, FunctionName, FunctionObject, ImageDetail, ImageUrl, ResponseFormat,
        ResponseFormatJsonSchema, StopConfiguration, ToolChoiceOptions,
    },
};
use async_trait::async_trait;
use futures::{Stream, StreamExt, stream::BoxStream};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::{
    ChatProvider, FinishReason, GenerationOptions, GenerationRequest, LlmError, ModelSpec, OutputFormat,
    PromptMessage, PromptRole, TokenEvent, TokenStream, ToolCallDelta, ToolChoice,
    endpoints::Endpoints,
    tokens::{Counter, known_context_window},
};
use crate::server::config::ProviderSettings;

/// Context window assumed when neither the config, the model's name nor the provider says.
const DEFAULT_CONTEXT_WINDOW: u32 = 8192;

pub struct OpenAiProvider {
    name: String,
    /// `base_url`, then the other `endpoints` serving the same models.
    endpoints: Endpoints,
    /// The HTTP client of every endpoint, for the model listing (read raw to see context sizes).
    http: reqwest::Client,
    api_key: Option<String>,
    configured: Vec<(String, Option<u32>)>,
    models: RwLock<Vec<ModelSpec>>,
    permits: Arc<Semaphore>,
    first_token_timeout: Duration,
    idle_timeout: Duration,
}

impl OpenAiProvider {
    /// Builds the client. The API key is read here from the named environment variable.
    pub fn new(settings: &ProviderSettings) -> Result<Self, String> {
        let Connection {
            http,
            api_key,
            base_url,
            ..
        } = connect(settings)?;
        let urls: Vec<String> = std::iter::once(base_url)
            .chain(settings.endpoints.iter().cloned())
            .collect();
        let configured: Vec<(String, Option<u32>)> = settings
            .models
            .iter()
            .map(|m| (m.id().to_owned(), m.context_window()))
            .collect();
        let models = configured
            .iter()
            .map(|(id, window)| spec(id, *window, None))
            .collect();
        Ok(Self {
            name: settings.name.clone(),
            endpoints: Endpoints::new(&urls, &http, api_key.as_deref()),
            http,
            api_key,
            configured,
            models: RwLock::new(models),
            permits: Arc::new(Semaphore::new(settings.max_concurrent)),
            first_token_timeout: Duration::from_secs(settings.first_token_timeout_secs),
            idle_timeout: Duration::from_secs(settings.idle_timeout_secs),
        })
    }

    /// `GET /models`, raw, so sizes that servers add (`context_window`, vLLM's
    /// `max_model_len`, llama.cpp's `meta.n_ctx_train`) are seen.
    async fn list_models(&self, base_url: &str) -> Result<Vec<(String, Option<u32>)>, LlmError> {
        let mut request = self.http.get(format!("{base_url}/models"));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .timeout(self.first_token_timeout)
            .send()
            .await
            .map_err(|e| LlmError::Unavailable(describe_reqwest(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status.as_u16(), None, "listing models failed"));
        }
        let body: Value = response.json().await.map_err(|e| {
            tracing::warn!(error = %e, "unreadable model list");
            LlmError::Unavailable("the provider's model list could not be read".into())
        })?;
        let listed = body["data"].as_array().cloned().unwrap_or_default();
        Ok(listed
            .iter()
            .filter(|m| is_chat_model(m))
            .filter_map(|m| {
                let id = m["id"].as_str()?.to_owned();
                let window = ["context_window", "max_model_len", "context_length"]
                    .iter()
                    .find_map(|k| m[k].as_u64())
                    .or_else(|| m["meta"]["n_ctx_train"].as_u64())
                    .map(|n| n.min(u32::MAX as u64) as u32);
                Some((id, window))
            })
            .collect())
    }
}

/// The request as async-openai sends it: every option the caller gave, nothing added.
fn wire_request(request: &GenerationRequest) -> CreateChatCompletionRequest {
    let messages = request.messages.iter().map(wire_message).collect();
    let o = &request.options;
    #[allow(deprecated)] // `max_tokens`, `seed` and `user` are what OpenAI-compatible servers read
    CreateChatCompletionRequest {
        model: request.model.clone(),
        messages,
        temperature: Some(request.temperature),
        max_tokens: Some(request.max_tokens),
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            ..Default::default()
        }),
        stop: match o.stop.as_slice() {
            [] => None,
            [one] => Some(StopConfiguration::String(one.clone())),
            many => Some(StopConfiguration::StringArray(many.to_vec())),
        },
        top_p: o.top_p,
        seed: o.seed,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        logit_bias: (!o.logit_bias.is_empty()).then(|| o.logit_bias.clone().into_iter().collect()),
        logprobs: o.logprobs.then_some(true),
        top_logprobs: o.top_logprobs,
        user: o.user.clone(),
        response_format: wire_format(o),
        tools: (!o.tools.is_empty()).then(|| {
            o.tools
                .iter()
                .map(|t| {
                    ChatCompletionTools::Function(ChatCompletionTool {
                        function: FunctionObject {
                            name: t.name.clone(),
                            description: t.description.clone(),
                            parameters: t.parameters.clone(),
                            strict: t.strict,
                        },
                    })
                })
                .collect()
        }),
        tool_choice: match &o.tool_choice {
            ToolChoice::Unset => None,
            ToolChoice::None => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::None)),
            ToolChoice::Auto => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto)),
            ToolChoice::Required => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required)),
            ToolChoice::Function(name) => Some(ChatCompletionToolChoiceOption::Function(
                ChatCompletionNamedToolChoice {
                    function: FunctionName { name: name.clone() },
                },
            )),
        },
        parallel_tool_calls: o.parallel_tool_calls,
        ..Default::default()
    }
}

fn wire_format(o: &GenerationOptions) -> Option<ResponseFormat> {
    match &o.format {
        OutputFormat::Text => None,
        OutputFormat::JsonObject => Some(ResponseFormat::JsonObject),
        OutputFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => Some(ResponseFormat::JsonSchema {
            json_schema: ResponseFormatJsonSchema {
                description: description.clone(),
                name: name.clone(),
                schema: schema.clone(),
                strict: *strict,
            },
        }),
    }
}

/// Model lists mix chat models with embedding, speech and image models and do not say
/// which is which (Stoa's own marks embedding models with `type`); names tell the rest.
fn is_chat_model(m: &Value) -> bool {
    const NOT_CHAT: [&str; 10] = [
        "embed",
        "whisper",
        "tts",
        "dall-e",
        "moderation",
        "transcribe",
        "image",
        "audio",
        "realtime",
        "rerank",
    ];
    let id = m["id"].as_str().unwrap_or_default().to_ascii_lowercase();
    m["type"].as_str().is_none_or(|t| t == "chat") && !NOT_CHAT.iter().any(|n| id.contains(n))
}

/// An async-openai client for a configured provider, with its timeouts and API key.
pub struct Connection {
    pub client: Client<OpenAIConfig>,
    /// The same HTTP client, for requests async-openai does not model.
    pub http: reqwest::Client,
    pub api_key: Option<String>,
    pub base_url: String,
}

/// Reads the API key from the named environment variable and builds the clients.
pub fn connect(settings: &ProviderSettings) -> Result<Connection, String> {
    let api_key = match &settings.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            format!(
                "provider '{}': the environment variable {var} (api_key_env) is not set",
                settings.name
            )
        })?),
        None => None,
    };
    let http = super::super::tls::client_builder()
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
        .read_timeout(Duration::from_secs(settings.idle_timeout_secs))
        .build()
        .map_err(|e| format!("provider '{}': {e}", settings.name))?;
    let base_url = settings.base_url.trim_end_matches('/').to_owned();
    let config = OpenAIConfig::new()
        .with_api_base(&base_url)
        .with_api_key(api_key.clone().unwrap_or_default());
    Ok(Connection {
        client: Client::with_config(config).with_http_client(http.clone()),
        http,
        api_key,
        base_url,
    })
}

fn spec(id: &str, configured: Option<u32>, reported: Option<u32>) -> ModelSpec {
    ModelSpec {
        id: id.to_owned(),
        context_window: configured
            .or(reported)
            .or_else(|| known_context_window(id))
            .unwrap_or(DEFAULT_CONTEXT_WINDOW),
    }
}

fn wire_message(m: &PromptMessage) -> ChatCompletionRequestMessage {
    let text = m.content.clone();
    match m.role {
        PromptRole::System => ChatCompletionRequestSystemMessage::from(text).into(),
        PromptRole::User if m.images.is_empty() => ChatCompletionRequestUserMessage::from(text).into(),
        PromptRole::User => {
            let text_part = (!text.is_empty()).then_some(ChatCompletionRequestUserMessageContentPart::Text(
                ChatCompletionRequestMessageContentPartText {
                    text,
                    prompt_cache_breakpoint: None,
                },
            ));
            let images = m.images.iter().map(|image| {
                ChatCompletionRequestUserMessageContentPart::ImageUrl(
                    ChatCompletionRequestMessageContentPartImage {
                        image_url: ImageUrl {
                            url: image.url.clone(),
                            detail: image.detail.as_deref().map(|d| match d {
                                "low" => ImageDetail::Low,
                                "high" => ImageDetail::High,
                                _ => ImageDetail::Auto,
                            }),
                        },
                        prompt_cache_breakpoint: None,
                    },
                )
            });
            ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Array(
                    text_part.into_iter().chain(images).collect(),
                ),
                name: None,
            }
            .into()
        }
        PromptRole::Assistant if m.tool_calls.is_empty() => {
            ChatCompletionRequestAssistantMessage::from(text).into()
        }
        #[allow(deprecated)] // `function_call`, which must be named to build the struct
        PromptRole::Assistant => ChatCompletionRequestAssistantMessage {
            content: (!text.is_empty()).then_some(ChatCompletionRequestAssistantMessageContent::Text(text)),
            tool_calls: Some(
                m.tool_calls
                    .iter()
                    .map(|c| {
                        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                            id: c.id.clone(),
                            function: FunctionCall {
                                name: c.name.clone(),
                                arguments: c.arguments.clone(),
                            },
                        })
                    })
                    .collect(),
            ),
            refusal: None,
            name: None,
            audio: None,
            function_call: None,
        }
        .into(),
        PromptRole::Tool => ChatCompletionRequestToolMessage {
            content: text.into(),
            tool_call_id: m.tool_call_id.clone().unwrap_or_default(),
        }
        .into(),
    }
}

/// What went wrong with a request, in words for the user: never the provider's address
/// (an internal `host:port` is nobody's business but the operator's). The details go
/// to the log.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "the provider did not answer in time"
    } else if e.is_connect() {
        "could not connect to the provider"
    } else {
        "the request to the provider failed"
    };
    // The innermost cause says what happened ("Connection refused"); reqwest's own text
    // repeats the URL. Neither ever holds headers, so no key can leak into the log.
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let url = e
        .url()
        .map(|u| crate::server::config::redact_url(u.as_str()))
        .unwrap_or_default();
    tracing::warn!(%url, cause = %root, "{kind}");
    kind.to_owned()
}

/// An error status from the provider: the status and, when the provider names one, its
/// error code (`model_not_found`, `invalid_api_key`…), which are identifiers; its message
/// text may carry anything, so it goes to the log only.
fn status_error(status: u16, code: Option<&str>, message: &str) -> LlmError {
    tracing::warn!(status, code, message = %message.chars().take(2000).collect::<String>(), "the provider answered with an error");
    let code = code
        .filter(|c| {
            c.len() <= 64
                && c.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let text = format!("the provider answered HTTP {status}{code}");
    if status == 429 || status == 408 || status >= 500 {
        LlmError::Unavailable(text)
    } else {
        LlmError::Rejected(text)
    }
}

pub fn map_error(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::Reqwest(e) => LlmError::Unavailable(describe_reqwest(&e)),
        OpenAIError::ApiError(api) => status_error(
            api.status_code.as_u16(),
            api.api_error.code.as_deref(),
            &api.api_error.message,
        ),
        OpenAIError::StreamError(e) => {
            tracing::warn!(error = %e, "the provider's answer stream broke");
            LlmError::Unavailable("the provider's answer stream broke off".into())
        }
        OpenAIError::JSONDeserialize(e, _) => {
            tracing::warn!(error = %e, "unreadable answer from the provider");
            LlmError::Backend("the provider's answer could not be read".into())
        }
        other => {
            tracing::warn!(error = %other, "the provider request failed");
            LlmError::Backend("the request to the provider failed".into())
        }
    }
}

/// State of one answer's stream while chunks are mapped to [`TokenEvent`]s.
#[derive(Default)]
struct Progress {
    pieces: u32,
    finish: Option<FinishReason>,
    usage: Option<(u32, u32)>,
    ended: bool,
}

impl Progress {
    /// Takes one chunk in: its usage and finish reason are kept, what it carries for the
    /// caller returned in order (log probabilities, text, refusal, tool-call pieces).
    fn absorb(&mut self, chunk: CreateChatCompletionStreamResponse) -> Vec<TokenEvent> {
        if let Some(u) = &chunk.usage {
            self.usage = Some((u.prompt_tokens, u.completion_tokens));
        }
        let mut events = Vec::new();
        // Only the first choice: Stoa asks for n = 1.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(logprobs) = choice.logprobs.and_then(|l| serde_json::to_value(l).ok()) {
                events.push(TokenEvent::Logprobs(logprobs));
            }
            let delta = choice.delta;
            if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
                self.pieces += 1;
                events.push(TokenEvent::Token(t));
            }
            if let Some(r) = delta.refusal.filter(|r| !r.is_empty()) {
                events.push(TokenEvent::Refusal(r));
            }
            for call in delta.tool_calls.unwrap_or_default() {
                let function = call.function.unwrap_or_default();
                events.push(TokenEvent::ToolCall(ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name: function.name,
                    arguments: function.arguments.unwrap_or_default(),
                }));
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(match f {
                    WireFinish::Length => FinishReason::Length,
                    WireFinish::ToolCalls | WireFinish::FunctionCall => FinishReason::ToolCalls,
                    WireFinish::ContentFilter => FinishReason::ContentFilter,
                    WireFinish::Stop => FinishReason::Stop,
                });
            }
        }
        events
    }

    /// What the end of the stream (`[DONE]` or the end of the body) means: finished only
    /// if a finish reason came; otherwise the connection was cut mid-answer.
    fn end(&self) -> Result<TokenEvent, LlmError> {
        match self.finish {
            Some(finish) => {
                let (prompt_tokens, completion_tokens) = self.usage.unwrap_or((0, self.pieces));
                Ok(TokenEvent::Done {
                    prompt_tokens,
                    completion_tokens,
                    finish,
                })
            }
            None => Err(LlmError::Unavailable(
                "the provider closed the stream before the answer was finished".into(),
            )),
        }
    }
}

/// An answer's chunks as token events, ending with `Done` or an error; a provider silent
/// for `idle` is an error.
fn token_events<S>(chunks: S, idle: Duration) -> BoxStream<'static, Result<TokenEvent, LlmError>>
where
    S: Stream<Item = Result<CreateChatCompletionStreamResponse, OpenAIError>> + Send + Unpin + 'static,
{
    futures::stream::unfold(
        (chunks, Progress::default(), std::collections::VecDeque::new()),
        move |(mut chunks, mut p, mut ready)| async move {
            if let Some(event) = ready.pop_front() {
                return Some((Ok(event), (chunks, p, ready)));
            }
            if p.ended {
                return None;
            }
            let item = loop {
                match tokio::time::timeout(idle, chunks.next()).await {
                    Err(_) => {
                        break Err(LlmError::Unavailable(format!(
                            "the provider went silent for {}s",
                            idle.as_secs()
                        )));
                    }
                    Ok(None) => break p.end(),
                    Ok(Some(Err(e))) => break Err(map_error(e)),
                    Ok(Some(Ok(chunk))) => {
                        ready.extend(p.absorb(chunk));
                        if let Some(event) = ready.pop_front() {
                            return Some((Ok(event), (chunks, p, ready)));
                        }
                    }
                }
            };
            // An error or the end: nothing follows.
            p.ended = true;
            Some((item, (chunks, p, ready)))
        },
    )
    .boxed()
}

#[async_trait]
impl ChatProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_local(&self) -> bool {
        false
    }

    fn models(&self) -> Vec<ModelSpec> {
        self.models.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn count_prompt_tokens(&self, model: &str, messages: &[PromptMessage]) -> Result<u32, LlmError> {
        Ok(Counter::for_model(model).count(messages))
    }

    async fn stream(&self, request: GenerationRequest) -> Result<TokenStream, LlmError> {
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| LlmError::Busy)?;
        let wire = wire_request(&request);
        // Counted in flight on its endpoint as long as the stream lives.
        let endpoint = self.endpoints.pick();
        let client = endpoint.client.clone();
        let first_token_timeout = self.first_token_timeout;
        let idle = self.idle_timeout;
        // Lazy: the request goes out on the first poll, after the caller stored what it must.
        let opened = futures::stream::once(async move {
            let started = tokio::time::timeout(first_token_timeout, client.chat().create_stream(wire)).await;
            match started {
                Err(_) => Err(LlmError::Unavailable(format!(
                    "no answer within {}s",
                    first_token_timeout.as_secs()
                ))),
                Ok(Err(e)) => Err(map_error(e)),
                Ok(Ok(chunks)) => Ok(chunks),
            }
        });
        let mut answered = false;
        let tokens = opened
            .map(move |opened| match opened {
                Ok(chunks) => token_events(chunks, idle),
                Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
            })
            .flatten()
            // The first item says how the endpoint did: a token (or the end) means it answered,
            // an error that it failed before answering. The permit and the endpoint's
            // in-flight count live as long as the stream.
            .map(move |item| {
                if !answered {
                    endpoint.record(item.as_ref().map(|_| ()));
                    answered = true;
                }
                let _held = &permit;
                item
            });
        Ok(Box::pin(tokens))
    }

    async fn probe(&self) -> Result<(), LlmError> {
        let results = futures::future::join_all(self.endpoints.all().iter().map(|e| async move {
            let listed = self.list_models(&e.base_url).await;
            e.record(listed.as_ref().map(|_| ()));
            listed
        }))
        .await;
        let mut first_error = None;
        let mut answered = None;
        for result in results {
            match result {
                Ok(listed) if answered.is_none() => answered = Some(listed),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let listed = match (answered, first_error) {
            (Some(listed), _) => listed,
            (None, Some(e)) => return Err(e),
            (None, None) => Vec::new(),
        };
        let models: Vec<ModelSpec> = if self.configured.is_empty() {
            listed.iter().map(|(id, w)| spec(id, None, *w)).collect()
        } else {
            self.configured
                .iter()
                .map(|(id, window)| {
                    let reported = listed.iter().find(|(l, _)| l == id).and_then(|(_, w)| *w);
                    spec(id, *window, reported)
                })
                .collect()
        };
        if let Ok(mut current) = self.models.write() {
            *current = models;
        }
        Ok(())
    }
}
