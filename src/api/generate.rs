//! The founding article's contract, kept as Stoa's simplest endpoint:
//! `POST /api/v1/generate {user_input, max_tokens = 300, response_schema?} -> {answer, data, status}`.

use serde::{Deserialize, Serialize};

use super::{
    ApiError,
    validation::{validate_max_tokens, validate_message},
};

fn default_max_tokens() -> u32 {
    300
}

/// A prompt to answer with the default model. Unknown fields are refused, so a typo such
/// as `max_token` is reported instead of silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    /// The text to answer (1 to 16,000 characters).
    #[cfg_attr(
        feature = "ssr",
        schema(
            min_length = 1,
            max_length = 16000,
            example = "What is the capital of France?"
        )
    )]
    pub user_input: String,
    /// Upper bound on the answer's length in tokens (1 to 8,192).
    #[serde(default = "default_max_tokens")]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 8192, default = 300))]
    pub max_tokens: u32,
    /// A JSON Schema the answer must follow (at most 64 KiB): the answer is then JSON,
    /// validated against it, and returned parsed as `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub response_schema: Option<serde_json::Value>,
}

impl PromptRequest {
    /// The first broken rule, naming the field.
    pub fn check(&self) -> Result<(), ApiError> {
        validate_message(&self.user_input)
            .map_err(|e| ApiError::invalid("user_input", e.message.replace("message", "user_input")))?;
        validate_max_tokens(self.max_tokens).map_err(ApiError::from)?;
        Ok(())
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PromptResponse {
    pub answer: String,
    /// The answer parsed, when `response_schema` was given (it validates against it): any
    /// JSON value the schema allows.
    pub data: Option<serde_json::Value>,
    /// `ok` when the model finished, `max_tokens` when the answer was cut at the limit.
    #[cfg_attr(feature = "ssr", schema(example = "ok"))]
    pub status: String,
}
