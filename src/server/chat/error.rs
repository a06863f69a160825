use crate::{
    api::{ApiError, ErrorCode},
    server::{
        llm::LlmError,
        rag::{rerank::RerankError, retrieve::RetrieveError},
        storage::StoreError,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A rule of the contract is broken: the contract's own error, with the field named.
    #[error("{0}")]
    Invalid(ApiError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No such model (the router's message says which ids exist).
    #[error("{0}")]
    UnknownModel(String),
    #[error("no model is available")]
    NoModel,
    #[error("documents need the embedding model, which is disabled ([embedding] enabled = false)")]
    DocumentsDisabled,
    #[error(transparent)]
    Retrieval(#[from] RetrieveError),
    #[error(transparent)]
    Rerank(#[from] RerankError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        ChatError::Store(e)
    }
}

/// The single mapping from service errors to what callers see. Storage faults are
/// logged here with their details and reach the caller only as "internal error".
impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(api) => api,
            ChatError::NotFound(what) => ApiError::not_found(what),
            ChatError::UnknownModel(message) => {
                ApiError::new(ErrorCode::NotFound, message).with_field("model")
            }
            e @ ChatError::NoModel => ApiError::invalid("model", e.to_string()),
            e @ ChatError::DocumentsDisabled => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            ChatError::Rerank(e @ RerankError::Unavailable(_)) => {
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
            ChatError::Rerank(e @ RerankError::Malformed(_)) => {
                tracing::warn!(error = %e, "the re-ranker answered something unusable");
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
            ChatError::Retrieval(e) => {
                tracing::error!(error = %e, "retrieval failed");
                ApiError::internal()
            }
            ChatError::Llm(LlmError::Busy) => ApiError::new(ErrorCode::Busy, LlmError::Busy.to_string()),
            ChatError::Llm(LlmError::ContextOverflow {
                prompt_tokens,
                max_tokens,
                context_window,
            }) => {
                // Blame the prompt when it alone does not fit, otherwise max_tokens.
                let (field, hint) = if prompt_tokens >= context_window {
                    ("message", "shorten the message or start a new chat")
                } else {
                    (
                        "max_tokens",
                        "lower max_tokens, shorten the message or start a new chat",
                    )
                };
                ApiError::new(
                    ErrorCode::ContextLengthExceeded,
                    format!(
                        "the prompt takes {prompt_tokens} tokens and max_tokens asks for {max_tokens} more, \
                         but the model's context window holds {context_window} tokens: {hint}"
                    ),
                )
                .with_field(field)
            }
            ChatError::Llm(e @ LlmError::Unavailable(_)) => {
                tracing::warn!(error = %e, "no provider could answer");
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
            ChatError::Llm(e @ LlmError::Rejected(_)) => {
                tracing::warn!(error = %e, "a provider rejected the request");
                ApiError::new(ErrorCode::UpstreamRejected, e.to_string())
            }
            ChatError::Llm(LlmError::Unsupported { param, reason }) => ApiError::invalid(param, reason),
            ChatError::Llm(e @ LlmError::InvalidOutput { .. }) => {
                tracing::warn!(error = %e, "an answer did not match its schema");
                ApiError::new(ErrorCode::InvalidOutput, e.to_string())
            }
            ChatError::Llm(other @ (LlmError::Template(_) | LlmError::Backend(_))) => {
                tracing::error!(error = %other, "model error");
                ApiError::new(
                    ErrorCode::Internal,
                    "the model could not answer; the server log has the details",
                )
            }
            ChatError::Store(StoreError::NotFound) => ApiError::not_found("record"),
            ChatError::Store(other) => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal()
            }
        }
    }
}
