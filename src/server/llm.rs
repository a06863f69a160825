//! Chat model providers. The chat service asks the [`router::Router`] for a model; it
//! holds every [`ChatProvider`]: the embedded llama.cpp model ([`local::LocalModel`]) and
//! any number of OpenAI-compatible servers ([`openai::OpenAiProvider`]).

pub mod endpoints;
pub mod local;
pub mod openai;
pub mod options;
mod provider;
pub mod router;
pub mod tokens;

pub use options::{GenerationOptions, OutputFormat, ToolCall, ToolCallDelta, ToolChoice, ToolSpec};
pub use provider::{
    ChatProvider, FinishReason, GenerationRequest, ImagePart, LlmError, ModelSpec, PromptMessage, PromptRole,
    TokenEvent, TokenStream,
};
