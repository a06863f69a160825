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
/// Texts one `/v1/rerank` request may score.
pub const MAX_RERANK_TEXTS: usize = 256;
/// Largest JSON Schema an answer may be asked to follow, as JSON text in bytes.
pub const MAX_RESPONSE_SCHEMA_BYTES: usize = 64 * 1024;

/// A rule of the contract, in terms JSON Schema can state: the validators below check
/// these, and the OpenAPI document states the same ones (`maxLength`, `minimum`,
/// `pattern`…), so the documented contract is the enforced one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Up to `max_chars` characters (not bytes); with `non_blank`, at least one that is
    /// not whitespace.
    Text {
        max_chars: usize,
        non_blank: bool,
    },
    Number {
        min: f32,
        max: f32,
    },
    Integer {
        min: u32,
        max: u32,
    },
    /// A list of `min` to `max` items.
    Items {
        min: usize,
        max: usize,
    },
    /// A list of up to `max_items` texts of 1 to `max_chars` characters each.
    TextItems {
        max_items: usize,
        max_chars: usize,
    },
}

pub const MESSAGE: Rule = Rule::Text {
    max_chars: MAX_MESSAGE_CHARS,
    non_blank: true,
};
pub const TITLE: Rule = Rule::Text {
    max_chars: MAX_TITLE_CHARS,
    non_blank: true,
};
pub const SYSTEM_PROMPT: Rule = Rule::Text {
    max_chars: MAX_SYSTEM_PROMPT_CHARS,
    non_blank: false,
};
pub const MODEL_ID: Rule = Rule::Text {
    max_chars: MAX_MODEL_ID_CHARS,
    non_blank: true,
};
pub const TEMPERATURE: Rule = Rule::Number {
    min: TEMPERATURE_RANGE.0,
    max: TEMPERATURE_RANGE.1,
};
pub const MAX_TOKENS: Rule = Rule::Integer {
    min: 1,
    max: MAX_TOKENS_LIMIT,
};
/// Nucleus sampling (`/v1`'s `top_p`).
pub const TOP_P: Rule = Rule::Number { min: 0.0, max: 1.0 };
/// `/v1`'s `presence_penalty` and `frequency_penalty`.
pub const PENALTY: Rule = Rule::Number { min: -2.0, max: 2.0 };
/// `/v1`'s `top_logprobs`.
pub const TOP_LOGPROBS: Rule = Rule::Integer { min: 0, max: 20 };

/// Where each rule applies, as `(schema, property, rule)` of the OpenAPI document.
pub const DOCUMENTED_RULES: &[(&str, &str, Rule)] = &[
    ("PostMessage", "message", MESSAGE),
    ("PostMessage", "model", MODEL_ID),
    ("Regenerate", "model", MODEL_ID),
    ("GenerationParams", "temperature", TEMPERATURE),
    ("GenerationParams", "max_tokens", MAX_TOKENS),
    ("NewConversation", "title", TITLE),
    ("Rename", "title", TITLE),
    ("ConversationSettings", "system_prompt", SYSTEM_PROMPT),
    ("ConversationSettings", "temperature", TEMPERATURE),
    ("ConversationSettings", "max_tokens", MAX_TOKENS),
    ("PromptRequest", "user_input", MESSAGE),
    ("PromptRequest", "max_tokens", MAX_TOKENS),
    ("NewKey", "name", super::accounts::KEY_NAME),
    ("ChatCompletionRequest", "temperature", TEMPERATURE),
    ("ChatCompletionRequest", "max_tokens", MAX_TOKENS),
    ("ChatCompletionRequest", "max_completion_tokens", MAX_TOKENS),
    ("ChatCompletionRequest", "top_p", TOP_P),
    ("ChatCompletionRequest", "presence_penalty", PENALTY),
    ("ChatCompletionRequest", "frequency_penalty", PENALTY),
    ("ChatCompletionRequest", "top_logprobs", TOP_LOGPROBS),
    (
        "DocumentMetadata",
        "title",
        Rule::Text {
            max_chars: super::documents::MAX_DOCUMENT_TITLE_CHARS,
            non_blank: false,
        },
    ),
    (
        "DocumentMetadata",
        "source",
        Rule::Text {
            max_chars: super::documents::MAX_SOURCE_CHARS,
            non_blank: false,
        },
    ),
    (
        "DocumentMetadata",
        "collection",
        Rule::Text {
            max_chars: super::documents::MAX_COLLECTION_NAME_CHARS,
            non_blank: true,
        },
    ),
    (
        "DocumentMetadata",
        "tags",
        Rule::TextItems {
            max_items: super::documents::MAX_TAGS,
            max_chars: super::documents::MAX_TAG_CHARS,
        },
    ),
    ("PassageQuery", "query", MESSAGE),
    ("RerankRequest", "query", MESSAGE),
    (
        "RerankRequest",
        "documents",
        Rule::Items {
            min: 1,
            max: MAX_RERANK_TEXTS,
        },
    ),
    (
        "RerankRequest",
        "texts",
        Rule::Items {
            min: 1,
            max: MAX_RERANK_TEXTS,
        },
    ),
    (
        "PassageQuery",
        "limit",
        Rule::Integer {
            min: 1,
            max: super::documents::MAX_PASSAGES,
        },
    ),
    (
        "ChatCompletionRequest",
        "messages",
        Rule::Items {
            min: 1,
            max: usize::MAX,
        },
    ),
    (
        "ExportFile",
        "stoa_export",
        Rule::Integer {
            min: super::export::EXPORT_VERSION,
            max: super::export::EXPORT_VERSION,
        },
    ),
    ("ExportedConversation", "title", TITLE),
    // Not the number of conversations or messages: the same schema describes exports,
    // which may hold more than one import takes.
    (
        "ExportedMessage",
        "content",
        Rule::Text {
            max_chars: super::export::MAX_IMPORT_MESSAGE_CHARS,
            non_blank: false,
        },
    ),
    (
        "ExportedMessage",
        "id",
        Rule::Text {
            max_chars: MAX_MODEL_ID_CHARS,
            non_blank: true,
        },
    ),
];

impl Rule {
    /// A number rule's bounds (`(min, max)`); the whole range of `f32` for other rules.
    pub fn range(self) -> (f32, f32) {
        match self {
            Rule::Number { min, max } => (min, max),
            Rule::Integer { min, max } => (min as f32, max as f32),
            _ => (f32::MIN, f32::MAX),
        }
    }

    /// Checks `text` against a text rule; `what` names it in the message.
    pub fn check_text(self, field: &'static str, what: &str, text: &str) -> Result<(), FieldError> {
        let Rule::Text { max_chars, non_blank } = self else {
            return Ok(());
        };
        if non_blank && text.trim().is_empty() {
            return Err(FieldError {
                field,
                message: format!("{what} must not be empty"),
            });
        }
        let n = text.chars().count();
        if n > max_chars {
            return Err(FieldError {
                field,
                message: format!("{what} is {n} characters long; the limit is {max_chars} characters"),
            });
        }
        Ok(())
    }
}

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

/// A conversation title: 1 to 200 characters, not all whitespace (stored trimmed).
pub fn validate_title(title: &str) -> Result<(), FieldError> {
    TITLE.check_text("title", "a title", title)
}

pub fn validate_message(message: &str) -> Result<(), FieldError> {
    MESSAGE.check_text("message", "message", message)
}

/// `v` with at most `places` decimals (0 to 3), trailing zeros dropped: `0.7`, `2`, `12.5`.
/// Written with integer arithmetic because the code that formats floats (`{}` on an `f32`)
/// adds some 19 KB to the browser's bundle, and these are the only floats it shows.
pub fn decimal(v: f64, places: u32) -> String {
    let places = places.min(3);
    let scale = 10i64.pow(places);
    let scaled = (v * scale as f64).round() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let (whole, mut frac) = (scaled.abs() / scale, scaled.abs() % scale);
    let mut digits = places as usize;
    while digits > 0 && frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    if digits == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac:0digits$}")
    }
}

pub fn validate_temperature(t: f32) -> Result<(), FieldError> {
    let Rule::Number { min: lo, max: hi } = TEMPERATURE else {
        unreachable!("TEMPERATURE is a number rule")
    };
    if !t.is_finite() || !(lo..=hi).contains(&t) {
        return Err(FieldError {
            field: "temperature",
            message: format!(
                "temperature must be between {} and {}",
                decimal(f64::from(lo), 2),
                decimal(f64::from(hi), 2)
            ),
        });
    }
    Ok(())
}

pub fn validate_max_tokens(n: u32) -> Result<(), FieldError> {
    let Rule::Integer { min, max } = MAX_TOKENS else {
        unreachable!("MAX_TOKENS is an integer rule")
    };
    if !(min..=max).contains(&n) {
        return Err(FieldError {
            field: "max_tokens",
            message: format!("max_tokens must be between {min} and {max}"),
        });
    }
    Ok(())
}

/// A conversation's response schema: a JSON object of at most 64 KiB. (The server also
/// checks it is a usable JSON Schema.)
pub fn validate_response_schema(schema: &serde_json::Value) -> Result<(), FieldError> {
    let error = |message: String| FieldError {
        field: "response_schema",
        message,
    };
    if !schema.is_object() {
        return Err(error("a JSON Schema is a JSON object".into()));
    }
    let size = schema.to_string().len();
    if size > MAX_RESPONSE_SCHEMA_BYTES {
        return Err(error(format!(
            "the schema is {size} bytes; the limit is {MAX_RESPONSE_SCHEMA_BYTES}"
        )));
    }
    Ok(())
}

/// Longest model id (`provider/model`) accepted.
pub const MAX_MODEL_ID_CHARS: usize = 200;

pub fn validate_model_id(id: &str) -> Result<(), FieldError> {
    MODEL_ID.check_text("model", "model", id)
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
        errors.extend(self.system_prompt.as_deref().and_then(|p| {
            SYSTEM_PROMPT
                .check_text("system_prompt", "system_prompt", p)
                .err()
        }));
        errors.extend(self.temperature.and_then(|t| validate_temperature(t).err()));
        errors.extend(self.max_tokens.and_then(|n| validate_max_tokens(n).err()));
        errors.extend(
            self.response_schema
                .as_ref()
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

    #[test]
    fn decimals_are_written_without_float_formatting() {
        assert_eq!(decimal(0.7, 2), "0.7");
        assert_eq!(decimal(2.0, 2), "2");
        assert_eq!(decimal(0.0, 1), "0");
        assert_eq!(decimal(12.25, 1), "12.3");
        assert_eq!(decimal(1.05, 2), "1.05");
        assert_eq!(decimal(-0.5, 2), "-0.5");
        assert_eq!(decimal(1536.0 / 1024.0, 1), "1.5");
        assert_eq!(decimal(f64::from(0.7f32), 2), "0.7");
    }

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
