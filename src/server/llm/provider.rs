use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use super::options::{GenerationOptions, ToolCall, ToolCallDelta};
use crate::api::types::Role;

/// Who speaks in a prompt: the chat's roles, and tool results (OpenAI-compatible API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum PromptRole {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering the assistant's call `tool_call_id`.
    Tool,
}

impl PromptRole {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl From<Role> for PromptRole {
    fn from(r: Role) -> Self {
        match r {
            Role::System => PromptRole::System,
            Role::User => PromptRole::User,
            Role::Assistant => PromptRole::Assistant,
        }
    }
}

/// One message of a prompt, in the order the model should read them.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessage {
    pub role: PromptRole,
    pub content: String,
    /// Calls an assistant message made.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// Images of a user message: `https://` or `data:` URLs, each with its `detail`.
    pub images: Vec<ImagePart>,
}

impl PromptMessage {
    /// A message of plain text.
    pub fn text(role: impl Into<PromptRole>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
}

/// An image content part.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePart {
    pub url: String,
    /// `auto`, `low` or `high`, when given.
    pub detail: Option<String>,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The provider's own name of the model (without the `provider/` prefix).
    pub model: String,
    pub messages: Vec<PromptMessage>,
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub max_tokens: u32,
    pub options: GenerationOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
    /// The answer is one or more tool calls.
    ToolCalls,
    /// The provider's content filter stopped the answer.
    ContentFilter,
}

impl FinishReason {
    /// The name OpenAI's API gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// An item of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// The next piece of text (whole UTF-8 characters only).
    Token(String),
    /// A piece of a tool call.
    ToolCall(ToolCallDelta),
    /// A piece of the model's refusal to answer (providers with safety refusals).
    Refusal(String),
    /// Log probabilities of the tokens of the next `Token`, in OpenAI's `logprobs` shape.
    Logprobs(serde_json::Value),
    /// Generation ended normally; always the last item.
    Done {
        prompt_tokens: u32,
        completion_tokens: u32,
        finish: FinishReason,
    },
}

/// Dropping the stream cancels the generation promptly (local decoding stops, the
/// upstream HTTP connection is closed).
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<TokenEvent, LlmError>> + Send>>;

/// A model a provider serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The provider's name for it, e.g. `SmolLM2-135M-Instruct.Q4_1` or `gpt-4o-mini`.
    pub id: String,
    /// Tokens of prompt + answer the model can hold.
    pub context_window: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum LlmError {
    #[error("the model is busy with other requests; try again in a moment")]
    Busy,
    #[error(
        "the conversation needs {prompt_tokens} prompt tokens plus max_tokens {max_tokens}, \
         more than the model's context window of {context_window} tokens"
    )]
    ContextOverflow {
        prompt_tokens: u32,
        max_tokens: u32,
        context_window: u32,
    },
    #[error("could not build the prompt: {0}")]
    Template(String),
    /// The model failed while answering.
    #[error("the model failed: {0}")]
    Backend(String),
    /// Could not get an answer started: connection refused, timeout, HTTP 5xx or 429,
    /// model not loaded. Worth retrying or asking another provider.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (HTTP 4xx other than 429: bad key, unknown
    /// model, invalid parameter). Retrying will not help.
    #[error("the provider rejected the request: {0}")]
    Rejected(String),
    /// A parameter this model cannot honour (images for a text-only model) or cannot
    /// read (a schema its grammar compiler refuses); refused before any token is spent.
    #[error("{param}: {reason}")]
    Unsupported { param: String, reason: String },
    /// The answer does not have the shape that was asked for.
    #[error("the answer does not match the requested schema: {reason}")]
    InvalidOutput {
        reason: String,
        /// The answer was cut at `max_tokens`: asking again with the same limit will not help.
        cut: bool,
    },
}

impl LlmError {
    pub fn unsupported(param: impl Into<String>, reason: impl Into<String>) -> Self {
        LlmError::Unsupported {
            param: param.into(),
            reason: reason.into(),
        }
    }

    /// Failures another attempt (or another provider) may not have.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LlmError::Busy | LlmError::Unavailable(_))
    }
}

/// A source of chat completions: the embedded model, or an OpenAI-compatible server.
#[async_trait]
pub trait ChatProvider: Send + Sync + 'static {
    /// Unique name, the `provider` in model ids `provider/model`.
    fn name(&self) -> &str;

    /// Whether it runs in this process.
    fn is_local(&self) -> bool;

    /// The models it serves right now; the first is its default.
    fn models(&self) -> Vec<ModelSpec>;

    /// Prompt tokens the messages take for `model`: the model's own tokenizer where it is
    /// known, otherwise an estimate that errs on the high side.
    fn count_prompt_tokens(&self, model: &str, messages: &[PromptMessage]) -> Result<u32, LlmError>;

    /// Starts generating. Errors that can be known without I/O (busy, prompt too long) are
    /// returned here; everything else comes out of the stream, which ends with
    /// [`TokenEvent::Done`] or an error. Nothing happens until the stream is first polled.
    async fn stream(&self, request: GenerationRequest) -> Result<TokenStream, LlmError>;

    /// Checks the provider is reachable (and refreshes its model list where it is
    /// discovered). The local model is always ready.
    async fn probe(&self) -> Result<(), LlmError> {
        Ok(())
    }
}
