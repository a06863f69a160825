//! Stateless completions for the OpenAI-compatible API: the caller sends the whole
//! conversation, nothing is stored. Same rules as the chat: validated, counted against the
//! context window and queued (or "busy") before any token is generated.

use futures::StreamExt;
use serde_json::Value;

use super::{ChatError, service::ChatService, structured::Expected};
use crate::{
    api::{
        ApiError,
        validation::{MAX_MESSAGE_CHARS, validate_max_tokens, validate_temperature},
    },
    server::llm::{
        FinishReason, GenerationOptions, GenerationRequest, LlmError, PromptMessage, TokenEvent, TokenStream,
        ToolCall, router::Primed,
    },
};

/// Longest single message the API accepts, in characters (the context window usually
/// binds first).
pub const MAX_API_MESSAGE_CHARS: usize = 4 * MAX_MESSAGE_CHARS;
/// Answer length when the caller does not say.
const DEFAULT_MAX_TOKENS: u32 = 512;

#[derive(Debug, Clone)]
pub struct Completion {
    pub model: String,
    pub messages: Vec<PromptMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub options: GenerationOptions,
}

impl Completion {
    /// A one-message question with the defaults.
    pub fn question(model: String, text: String, max_tokens: u32) -> Self {
        Self {
            model,
            messages: vec![PromptMessage::text(crate::api::types::Role::User, text)],
            temperature: Some(crate::api::types::GenerationParams::default().temperature),
            max_tokens: Some(max_tokens),
            options: GenerationOptions::default(),
        }
    }
}

/// A started completion.
pub struct Started {
    pub model: String,
    pub prompt_tokens: u32,
    /// When JSON was asked for, the stream ends with [`LlmError::InvalidOutput`] instead of
    /// `Done` if the answer does not have the shape.
    pub tokens: TokenStream,
    /// Whether the output was constrained by a grammar (the embedded model).
    pub grammar: bool,
}

/// A whole answer with what produced it.
pub struct Answered {
    pub model: String,
    pub prompt_tokens: u32,
    pub grammar: bool,
    pub whole: Whole,
}

/// An answer read to its end.
#[derive(Debug, Default)]
pub struct Whole {
    pub content: String,
    pub refusal: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// OpenAI's `logprobs.content` entries, in order.
    pub logprobs: Vec<Value>,
    /// The prompt's tokens as the provider counted them (0 when it did not say).
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish: Option<FinishReason>,
    /// The answer parsed, when JSON was asked for.
    pub data: Option<Value>,
    /// Answers thrown away because they broke the schema.
    pub retries: u32,
}

impl Whole {
    fn absorb(&mut self, event: TokenEvent) {
        match event {
            TokenEvent::Token(t) => self.content.push_str(&t),
            TokenEvent::Refusal(r) => self.refusal.get_or_insert_with(String::new).push_str(&r),
            TokenEvent::Logprobs(v) => self
                .logprobs
                .extend(v["content"].as_array().cloned().unwrap_or_default()),
            TokenEvent::ToolCall(d) => {
                let i = d.index as usize;
                if self.tool_calls.len() <= i {
                    self.tool_calls.resize_with(i + 1, || ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut self.tool_calls[i];
                if let Some(id) = d.id {
                    call.id = id;
                }
                if let Some(name) = d.name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&d.arguments);
            }
            TokenEvent::Done {
                prompt_tokens,
                completion_tokens,
                finish,
            } => {
                self.prompt_tokens = prompt_tokens;
                self.completion_tokens = completion_tokens;
                self.finish = Some(finish);
            }
        }
    }
}

impl Started {
    /// Reads the answer to its end, for callers that do not stream.
    pub async fn collect(mut self) -> Result<Whole, ChatError> {
        let mut whole = Whole::default();
        while let Some(item) = self.tokens.next().await {
            whole.absorb(item?);
            if whole.finish.is_some() {
                return Ok(whole);
            }
        }
        Err(LlmError::Backend("the model's stream ended without finishing".into()).into())
    }
}

/// The stream, with the answer checked against `expected` when it ends: a tool call is
/// not checked (its arguments follow the tool's schema), anything else must parse and
/// validate, or the stream ends with [`LlmError::InvalidOutput`] naming the path.
fn checked(tokens: TokenStream, expected: Option<Expected>, provider: String, grammar: bool) -> TokenStream {
    let Some(expected) = expected else {
        return tokens;
    };
    let counted = move |valid: bool| crate::server::metrics::structured_answer(&provider, grammar, valid);
    let mut text = String::new();
    Box::pin(tokens.map(move |item| match item {
        Ok(TokenEvent::Token(t)) => {
            text.push_str(&t);
            Ok(TokenEvent::Token(t))
        }
        Ok(done @ TokenEvent::Done { finish, .. }) if finish != FinishReason::ToolCalls => {
            let checked = expected.check(&text);
            counted(checked.is_ok());
            match checked {
                Ok(_) => Ok(done),
                Err(path) if finish == FinishReason::Length => Err(LlmError::InvalidOutput {
                    reason: format!("the answer was cut at max_tokens before its JSON was complete; raise max_tokens ({path})"),
                    cut: true,
                }),
                Err(reason) => Err(LlmError::InvalidOutput { reason, cut: false }),
            }
        }
        other => other,
    }))
}

impl ChatService {
    /// Resolves, validates, counts and opens the answer: on success the first token has
    /// arrived (so failures before it, after retries and fallbacks, are plain HTTP errors).
    pub async fn complete(&self, c: Completion) -> Result<Started, ChatError> {
        let primary = self.router().resolve(&c.model).map_err(ChatError::UnknownModel)?;
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
        let expected = Expected::of(&c.options);
        let request = GenerationRequest {
            model: primary.model.id.clone(),
            messages: c.messages,
            temperature,
            max_tokens,
            options: c.options,
        };
        let structured = expected.is_some() || request.options.may_call_tools();
        let chain = self.router().chain(primary);
        let primed = Primed {
            prompt_tokens,
            stream: None,
        };
        let opened = self.router().open(&chain, &request, primed).await?;
        let grammar = structured && opened.target.provider().is_local();
        let provider = opened.target.provider_name().to_owned();
        Ok(Started {
            model: opened.target.id(),
            prompt_tokens: opened.prompt_tokens,
            tokens: checked(opened.tokens, expected, provider, grammar),
            grammar,
        })
    }

    /// The whole answer, not streamed. When JSON was asked for and the answer does not
    /// have the shape, it is asked once more (nothing was sent yet); a second failure is
    /// [`LlmError::InvalidOutput`] naming the path.
    pub async fn complete_whole(&self, c: Completion) -> Result<Answered, ChatError> {
        let expected = Expected::of(&c.options);
        let mut retries = 0;
        loop {
            let started = self.complete(c.clone()).await?;
            let (model, prompt_tokens, grammar) =
                (started.model.clone(), started.prompt_tokens, started.grammar);
            match started.collect().await {
                Ok(mut whole) => {
                    whole.retries = retries;
                    if let Some(expected) = &expected
                        && whole.finish != Some(FinishReason::ToolCalls)
                    {
                        whole.data = expected.check(&whole.content).ok();
                    }
                    return Ok(Answered {
                        model,
                        prompt_tokens,
                        grammar,
                        whole,
                    });
                }
                Err(ChatError::Llm(LlmError::InvalidOutput { reason, cut: false })) if retries == 0 => {
                    tracing::info!(%reason, %model, "the answer broke its schema; asking once more");
                    retries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
