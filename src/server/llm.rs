//! Chat model providers. The chat service talks to a [`ChatProvider`]; the embedded
//! llama.cpp model ([`local::LocalModel`]) is one implementation, OpenAI-compatible HTTP
//! providers are another kind of the same trait.

pub mod local;
mod provider;

pub use provider::{
    ChatProvider, FinishReason, GenerationRequest, LlmError, PromptMessage, ProviderInfo, TokenEvent,
    TokenStream,
};
