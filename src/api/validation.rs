//! Validation rules of the contract. The browser runs them for instant feedback and the
//! server runs them again as the authority, before any token is spent.

use super::{
    error::ApiError,
    types::{ChatRequest, GenerationParams},
};

/// Longest user message, in characters (not bytes).
pub const MAX_MESSAGE_CHARS: usize = 16_000;
/// Smallest and largest sampling temperature.
pub const TEMPERATURE_RANGE: (f32, f32) = (0.0, 2.0);
/// Largest answer length one request may ask for. The model's context window may allow less.
pub const MAX_TOKENS_LIMIT: u32 = 8_192;
/// Longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest conversation system prompt, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 8_000;
/// Largest JSON Schema an answer may be asked to follow, as JSON text in bytes.
pub const MAX_RESPONSE_SCHEMA_BYTES: usize = 64 * 1024;

/// A rule broken by one field: the field's name and a message that names the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

/// A conversation title: 1 to 200 characters once trimmed.
pub fn validate_title(title: &str) -> Result<(), FieldError> {
    let n = title.trim().chars().count();
    if n == 0 || n > MAX_TITLE_CHARS {
        return Err(FieldError {
            field: "title",
            message: format!("a title is 1 to {MAX_TITLE_CHARS} characters (got {n})"),
        });
    }
    Ok(())
}

pub fn validate_message(message: &str) -> Result<(), FieldError> {
    if message.trim().is_empty() {
        return Err(FieldError {
            field: "message",
            message: "message must not be empty".into(),
        });
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(FieldError {
            field: "message",
            message: format!(
                "message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS} characters"
            ),
        });
    }
    Ok(())
}

pub fn validate_temperature(t: f32) -> Result<(), FieldError> {
    let (lo, hi) = TEMPERATURE_RANGE;
    if !t.is_finite() || !(lo..=hi).contains(&t) {
        return Err(FieldError {
            field: "temperature",
            message: format!("temperature must be between {lo} and {hi}"),
        });
    }
    Ok(())
}

pub fn validate_max_tokens(n: u32) -> Result<(), FieldError> {
    if !(1..=MAX_TOKENS_LIMIT).contains(&n) {
        return Err(FieldError {
            field: "max_tokens",
            message: format!("max_tokens must be between 1 and {MAX_TOKENS_LIMIT}"),
        });
    }
    Ok(())
}

/// A conversation's response schema: a JSON object of at most 64 KiB. (The server also
/// checks it is a usable JSON Schema.)
pub fn validate_response_schema(text: &str) -> Result<(), FieldError> {
    let error = |message: String| FieldError {
        field: "response_schema",
        message,
    };
    if text.len() > MAX_RESPONSE_SCHEMA_BYTES {
        return Err(error(format!(
            "the schema is {} bytes; the limit is {MAX_RESPONSE_SCHEMA_BYTES}",
            text.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => Ok(()),
        Ok(_) => Err(error("a JSON Schema is a JSON object".into())),
        Err(e) => Err(error(format!("not JSON: {e}"))),
    }
}

/// Longest model id (`provider/model`) accepted.
pub const MAX_MODEL_ID_CHARS: usize = 200;

pub fn validate_model_id(id: &str) -> Result<(), FieldError> {
    if id.trim().is_empty() || id.chars().count() > MAX_MODEL_ID_CHARS {
        return Err(FieldError {
            field: "model",
            message: format!("model must be a model id of 1 to {MAX_MODEL_ID_CHARS} characters"),
        });
    }
    Ok(())
}

impl GenerationParams {
    /// Every broken rule, in field order.
    pub fn validate(&self) -> Vec<FieldError> {
        [
            validate_temperature(self.temperature),
            validate_max_tokens(self.max_tokens),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect()
    }
}

impl super::types::ConversationSettings {
    /// Every broken rule, in field order.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(p) = &self.system_prompt {
            let n = p.chars().count();
            if n > MAX_SYSTEM_PROMPT_CHARS {
                errors.push(FieldError {
                    field: "system_prompt",
                    message: format!(
                        "system_prompt is {n} characters long; the limit is {MAX_SYSTEM_PROMPT_CHARS} characters"
                    ),
                });
            }
        }
        errors.extend(self.temperature.and_then(|t| validate_temperature(t).err()));
        errors.extend(self.max_tokens.and_then(|n| validate_max_tokens(n).err()));
        errors.extend(
            self.response_schema
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .and_then(|s| validate_response_schema(s).err()),
        );
        errors
    }

    pub fn check(&self) -> Result<(), ApiError> {
        match self.validate().into_iter().next() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl super::types::RegenerateRequest {
    pub fn check(&self) -> Result<(), ApiError> {
        let mut errors = self.params.validate();
        errors.extend(self.model.as_deref().and_then(|m| validate_model_id(m).err()));
        match errors.into_iter().next() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl ChatRequest {
    /// Every broken rule, in field order. Empty means valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors: Vec<FieldError> = validate_message(&self.message).err().into_iter().collect();
        errors.extend(self.params.validate());
        errors.extend(self.model.as_deref().and_then(|m| validate_model_id(m).err()));
        errors
    }

    /// The first broken rule as an [`ApiError`], for the server side.
    pub fn check(&self) -> Result<(), ApiError> {
        match self.validate().into_iter().next() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(message: &str) -> ChatRequest {
        ChatRequest {
            conversation_id: "c".into(),
            message: message.into(),
            params: GenerationParams::default(),
            model: None,
            trim_history: false,
            edit_of: None,
        }
    }

    #[test]
    fn accepts_a_normal_request() {
        assert!(request("What is the capital of France?").validate().is_empty());
    }

    #[test]
    fn rejects_empty_and_blank_messages() {
        for m in ["", "   \n\t"] {
            let errors = request(m).validate();
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].field, "message");
            assert!(errors[0].message.contains("empty"));
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        // 16,000 multi-byte characters are within the limit even though they are 48,000 bytes.
        let ok = "€".repeat(MAX_MESSAGE_CHARS);
        assert!(validate_message(&ok).is_ok());
        let err = validate_message(&"€".repeat(MAX_MESSAGE_CHARS + 1)).unwrap_err();
        assert_eq!(err.field, "message");
        assert!(err.message.contains("16000 characters"), "{}", err.message);
    }

    #[test]
    fn rejects_out_of_range_parameters_naming_the_field_and_limit() {
        let mut r = request("hi");
        r.params.temperature = 2.5;
        r.params.max_tokens = 0;
        let errors = r.validate();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "temperature");
        assert!(errors[0].message.contains("between 0 and 2"));
        assert_eq!(errors[1].field, "max_tokens");
        assert!(errors[1].message.contains("8192"));

        r.params.temperature = f32::NAN;
        r.params.max_tokens = MAX_TOKENS_LIMIT;
        assert_eq!(r.validate()[0].field, "temperature");
        assert_eq!(r.validate().len(), 1);
    }

    #[test]
    fn check_returns_the_first_error_as_an_api_error() {
        let err = request("").check().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("message"));
        assert_eq!(err.code, crate::api::ErrorCode::InvalidInput);
    }
}
