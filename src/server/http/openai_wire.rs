//! OpenAI wire types of `/v1/chat/completions` and `/v1/models`, and their conversion to
//! the service's types. Unknown request fields are ignored, as OpenAI-compatible servers
//! do, so existing clients work unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    api::{ApiError, ErrorCode, types::Role},
    server::{chat::completion::Completion, llm::PromptMessage},
};

/// An OpenAI chat completion request; unknown fields are ignored, as OpenAI-compatible
/// servers do.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub n: Option<u32>,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// A string, or a list of `{"type": "text", "text": …}` parts.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub content: Value,
}

fn text_of(i: usize, content: &Value) -> Result<String, ApiError> {
    let param = || format!("messages[{i}].content");
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => Ok(t),
                    _ => Err(ApiError::invalid(
                        param(),
                        "only text content parts are supported",
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        _ => Err(ApiError::invalid(
            param(),
            "content must be a string or a list of text parts",
        )),
    }
}

impl ChatCompletionRequest {
    pub fn to_completion(&self) -> Result<Completion, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let role = match m.role.as_str() {
                    "system" | "developer" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    other => {
                        return Err(ApiError::invalid(
                            format!("messages[{i}].role"),
                            format!(
                                "role '{other}' is not supported; use system, developer, user or assistant"
                            ),
                        ));
                    }
                };
                Ok(PromptMessage {
                    role,
                    content: text_of(i, &m.content)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Completion {
            model: self.model.clone(),
            messages,
            temperature: self.temperature,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
        })
    }
}

/// The error object of the OpenAI-compatible API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, e.g. `messages[0].content`.
    pub param: Option<String>,
    /// e.g. `model_not_found`, `context_length_exceeded`, `provider_unavailable`.
    pub code: Option<String>,
}

/// `{"error": {...}}` as OpenAI sends it, with the HTTP status for it.
pub fn error_body(e: &ApiError) -> (u16, Value) {
    let (kind, code) = match e.code {
        ErrorCode::InvalidInput | ErrorCode::PayloadTooLarge => ("invalid_request_error", None),
        ErrorCode::ContextLengthExceeded => ("invalid_request_error", Some("context_length_exceeded")),
        ErrorCode::NotFound if e.field.as_deref() == Some("model") => {
            ("invalid_request_error", Some("model_not_found"))
        }
        ErrorCode::NotFound => ("invalid_request_error", None),
        ErrorCode::Unauthorized => ("invalid_request_error", Some("invalid_api_key")),
        ErrorCode::Forbidden => ("invalid_request_error", Some("forbidden")),
        ErrorCode::RateLimited => ("requests", Some("rate_limit_exceeded")),
        ErrorCode::Busy => ("server_error", Some("overloaded")),
        ErrorCode::Unavailable => ("server_error", Some("provider_unavailable")),
        ErrorCode::UpstreamRejected => ("server_error", Some("upstream_rejected")),
        ErrorCode::Transport | ErrorCode::Internal => ("server_error", None),
    };
    // The chat UI's field is "message"; the API's is "messages".
    let param = e
        .field
        .as_deref()
        .map(|f| if f == "message" { "messages" } else { f });
    let body = OpenAiError {
        error: OpenAiErrorDetail {
            message: e.message.clone(),
            kind: kind.to_owned(),
            param: param.map(str::to_owned),
            code: code.map(str::to_owned),
        },
    };
    (e.status(), serde_json::to_value(body).unwrap_or_default())
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Completion, ApiError> {
        serde_json::from_value::<ChatCompletionRequest>(v)
            .unwrap()
            .to_completion()
    }

    #[test]
    fn accepts_string_and_text_part_content_and_ignores_unknown_fields() {
        let c = parse(json!({
            "model": "m", "user": "x", "max_completion_tokens": 5,
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ]
        }))
        .unwrap();
        assert_eq!(c.messages[0].role, Role::System);
        assert_eq!(c.messages[1].content, "a\nb");
        assert_eq!(c.max_tokens, Some(5));
    }

    #[test]
    fn names_the_offending_parameter() {
        let e = parse(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("messages[0].role"));
        let e = parse(json!({"model": "m", "n": 2, "messages": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("n"));
        let (status, body) = error_body(&ApiError::invalid("message", "too long"));
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
