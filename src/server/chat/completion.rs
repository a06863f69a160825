//! Stateless completions for the OpenAI-compatible API: the caller sends the whole
//! conversation, nothing is stored. Same rules as the chat: validated, counted against the
//! context window and queued (or "busy") before any token is generated.

use futures::StreamExt;

use super::{ChatError, service::ChatService};
use crate::{
    api::{
        ApiError,
        validation::{MAX_MESSAGE_CHARS, validate_max_tokens, validate_temperature},
    },
    server::llm::{
        FinishReason, GenerationRequest, LlmError, PromptMessage, TokenEvent, TokenStream, router::Primed,
    },
};

/// Longest single message the API accepts, in characters (the context window usually
/// binds first).
pub const MAX_API_MESSAGE_CHARS: usize = 4 * MAX_MESSAGE_CHARS;
/// Answer length when the caller does not say.
const DEFAULT_MAX_TOKENS: u32 = 512;

#[derive(Debug)]
pub struct Completion {
    pub model: String,
    pub messages: Vec<PromptMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// A started completion.
pub struct Started {
    pub model: String,
    pub prompt_tokens: u32,
    pub tokens: TokenStream,
}

/// An answer read to its end.
pub struct Whole {
    pub content: String,
    pub completion_tokens: u32,
    pub finish: FinishReason,
}

impl Started {
    /// Reads the answer to its end, for callers that do not stream.
    pub async fn collect(mut self) -> Result<Whole, ChatError> {
        let mut content = String::new();
        while let Some(item) = self.tokens.next().await {
            match item? {
                TokenEvent::Token(t) => content.push_str(&t),
                TokenEvent::Done {
                    completion_tokens,
                    finish,
                    ..
                } => {
                    return Ok(Whole {
                        content,
                        completion_tokens,
                        finish,
                    });
                }
            }
        }
        Err(LlmError::Backend("the model's stream ended without finishing".into()).into())
    }
}

impl ChatService {
    /// Resolves, validates, counts and opens the answer: on success the first token has
    /// arrived (so failures before it, after retries and fallbacks, are plain HTTP errors).
    pub async fn complete(&self, c: Completion) -> Result<Started, ChatError> {
        let primary = self.router().resolve(&c.model).map_err(|message| {
            ChatError::Invalid(ApiError::new(crate::api::ErrorCode::NotFound, message).with_field("model"))
        })?;
        if c.messages.is_empty() {
            return Err(ChatError::Invalid(ApiError::invalid(
                "messages",
                "messages must not be empty",
            )));
        }
        for (i, m) in c.messages.iter().enumerate() {
            let chars = m.content.chars().count();
            if chars > MAX_API_MESSAGE_CHARS {
                return Err(ChatError::Invalid(ApiError::invalid(
                    format!("messages[{i}].content"),
                    format!("message is {chars} characters long; the limit is {MAX_API_MESSAGE_CHARS}"),
                )));
            }
        }
        let temperature = c.temperature.unwrap_or(1.0);
        validate_temperature(temperature).map_err(|e| ChatError::Invalid(e.into()))?;
        if let Some(n) = c.max_tokens {
            validate_max_tokens(n).map_err(|e| ChatError::Invalid(e.into()))?;
        }
        let prompt_tokens = primary.count_prompt_tokens(&c.messages)?;
        let room = primary.model.context_window.saturating_sub(prompt_tokens);
        let max_tokens = match c.max_tokens {
            Some(n) => n,
            None => DEFAULT_MAX_TOKENS.min(room).max(1),
        };
        primary.check_fits(prompt_tokens, max_tokens)?;
        let request = GenerationRequest {
            model: primary.model.id.clone(),
            messages: c.messages,
            temperature,
            max_tokens,
        };
        let chain = self.router().chain(primary);
        let primed = Primed {
            prompt_tokens,
            stream: None,
        };
        let opened = self.router().open(&chain, &request, primed).await?;
        Ok(Started {
            model: opened.target.id(),
            prompt_tokens: opened.prompt_tokens,
            tokens: opened.tokens,
        })
    }
}
