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

/// Dropping the stream cancels the generation promptly.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<TokenEvent, LlmError>> + Send>>;

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    /// Provider name as shown to users, e.g. `local`.
    pub provider: String,
    /// Model name, e.g. `SmolLM2-135M-Instruct.Q4_1`.
    pub model: String,
    /// Tokens of prompt + answer the model can hold.
    pub context_window: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    #[error("the model failed: {0}")]
    Backend(String),
    #[error("the model is unavailable: {0}")]
    Unavailable(String),
}

/// A source of chat completions.
#[async_trait]
pub trait ChatProvider: Send + Sync + 'static {
    /// Who answers, and the size of its context window.
    fn info(&self) -> ProviderInfo;

    /// Prompt tokens the messages take once rendered with the model's chat template,
    /// counted with the model's own tokenizer.
    fn count_prompt_tokens(&self, messages: &[PromptMessage]) -> Result<u32, LlmError>;

    /// Starts generating. Errors that can be known up front (busy, prompt too long) are
    /// returned here, before any token; the stream ends with [`TokenEvent::Done`] or an error.
    /// Nothing is generated until the stream is first polled.
    async fn stream(&self, request: GenerationRequest) -> Result<TokenStream, LlmError>;
}
