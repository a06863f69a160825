use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::api::types::Role;

/// One message of a prompt, in the order the model should read them.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessage {
    pub role: Role,
    pub content: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` or the context window was reached.
    Length,
}

/// An item of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// The next piece of text (whole UTF-8 characters only).
    Token(String),
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
}

impl LlmError {
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
