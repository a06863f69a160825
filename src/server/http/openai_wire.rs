//! OpenAI wire types of `/v1/chat/completions` and `/v1/models`, and their conversion to
//! the service's types. Unknown request fields are ignored, as OpenAI-compatible servers
//! do, so existing clients work unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    api::{ApiError, ErrorCode, validation},
    server::{
        chat::{completion::Completion, structured::check_schema},
        llm::{
            GenerationOptions, ImagePart, OutputFormat, PromptMessage, PromptRole, ToolCall, ToolChoice,
            ToolSpec,
        },
    },
};

/// An OpenAI chat completion request; unknown fields are ignored, as OpenAI-compatible
/// servers do. Every standard field has a defined behaviour (see `docs/openai-api.md`): it is
/// relayed to OpenAI-compatible providers, honoured by the embedded model, or refused with
/// 400 naming it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    #[schema(minimum = 1, maximum = 8192)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 1, maximum = 8192)]
    pub max_completion_tokens: Option<u32>,
    /// Only 1.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    pub stream_options: Option<StreamOptions>,
    /// A string or up to 4 strings; the answer ends before the first one.
    pub stop: Option<WireStop>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// Token id → bias, a whole number from −100 to 100.
    #[schema(schema_with = logit_bias_schema)]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u8>,
    pub user: Option<String>,
    pub response_format: Option<WireResponseFormat>,
    pub tools: Option<Vec<WireTool>>,
    /// `none`, `auto`, `required`, or `{"type": "function", "function": {"name": …}}`.
    pub tool_choice: Option<WireToolChoice>,
    pub parallel_tool_calls: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireStop {
    One(String),
    Many(Vec<String>),
}

/// `stop` as the document states it: the limits the request is checked against.
impl utoipa::PartialSchema for WireStop {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_STOP_CHARS))
        };
        OneOfBuilder::new()
            .item(text())
            .item(
                ArrayBuilder::new()
                    .items(text())
                    .min_items(Some(1))
                    .max_items(Some(MAX_STOP)),
            )
            .into()
    }
}

impl utoipa::ToSchema for WireStop {}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema },
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireJsonSchema {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub schema: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireTool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: WireFunction,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireFunction {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema of the arguments object.
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum WireToolChoice {
    Mode(ToolMode),
    Named {
        /// `function`.
        #[serde(rename = "type")]
        kind: String,
        function: WireFunctionName,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolMode {
    None,
    Auto,
    Required,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireFunctionName {
    pub name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WireMessage {
    pub role: WireRole,
    /// A string, or a list of parts: `{"type": "text", "text": …}`, and in user messages
    /// `{"type": "image_url", "image_url": {"url": …, "detail": …}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub content: Value,
    /// The calls of an assistant message.
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// The call a `tool` message answers.
    pub tool_call_id: Option<String>,
}

/// Who speaks: `developer` is read as `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct WireToolCall {
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: WireFunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct WireFunctionCall {
    pub name: String,
    /// The arguments object as JSON text.
    pub arguments: String,
}

/// Most stop strings a request may give (OpenAI's limit).
const MAX_STOP: usize = 4;
/// Longest stop string, in characters.
const MAX_STOP_CHARS: usize = 200;
/// Most tools a request may offer (OpenAI's limit).
const MAX_TOOLS: usize = 128;

/// The text and images of a message's content.
fn content_of(i: usize, role: PromptRole, content: &Value) -> Result<(String, Vec<ImagePart>), ApiError> {
    let param = || format!("messages[{i}].content");
    let parts = match content {
        Value::String(s) => return Ok((s.clone(), Vec::new())),
        Value::Null => return Ok((String::new(), Vec::new())),
        Value::Array(parts) => parts,
        _ => {
            return Err(ApiError::invalid(
                param(),
                "content must be a string or a list of content parts",
            ));
        }
    };
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        match p.get("type").and_then(Value::as_str) {
            Some("text") => match p.get("text").and_then(Value::as_str) {
                Some(t) => texts.push(t),
                None => {
                    return Err(ApiError::invalid(
                        format!("{}.text", at()),
                        "a text part needs its text",
                    ));
                }
            },
            Some("image_url") if role == PromptRole::User => {
                let image = &p["image_url"];
                let url = image["url"].as_str().or_else(|| image.as_str());
                let Some(url) = url.filter(|u| {
                    u.starts_with("https://") || u.starts_with("http://") || u.starts_with("data:image/")
                }) else {
                    return Err(ApiError::invalid(
                        format!("{}.image_url.url", at()),
                        "an image part needs an http(s) URL or a data:image/… URL",
                    ));
                };
                let detail = image["detail"].as_str().map(str::to_owned);
                if detail
                    .as_deref()
                    .is_some_and(|d| !matches!(d, "auto" | "low" | "high"))
                {
                    return Err(ApiError::invalid(
                        format!("{}.image_url.detail", at()),
                        "detail must be auto, low or high",
                    ));
                }
                images.push(ImagePart {
                    url: url.to_owned(),
                    detail,
                });
            }
            Some("image_url") => {
                return Err(ApiError::invalid(at(), "only user messages may carry images"));
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    at(),
                    format!("content parts of type '{other}' are not supported; use text or image_url"),
                ));
            }
            None => {
                return Err(ApiError::invalid(
                    format!("{}.type", at()),
                    "a content part needs its type",
                ));
            }
        }
    }
    Ok((texts.join("\n"), images))
}

fn message(i: usize, m: &WireMessage) -> Result<PromptMessage, ApiError> {
    let role = match m.role {
        WireRole::System | WireRole::Developer => PromptRole::System,
        WireRole::User => PromptRole::User,
        WireRole::Assistant => PromptRole::Assistant,
        WireRole::Tool => PromptRole::Tool,
    };
    let (content, images) = content_of(i, role, &m.content)?;
    let tool_calls = match (&m.tool_calls, role) {
        (None, _) => Vec::new(),
        (Some(calls), PromptRole::Assistant) => calls
            .iter()
            .map(|c| ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                arguments: c.function.arguments.clone(),
            })
            .collect(),
        (Some(_), _) => {
            return Err(ApiError::invalid(
                format!("messages[{i}].tool_calls"),
                "only assistant messages carry tool_calls",
            ));
        }
    };
    let tool_call_id = match (&m.tool_call_id, role) {
        (Some(id), PromptRole::Tool) => Some(id.clone()),
        (None, PromptRole::Tool) => {
            return Err(ApiError::invalid(
                format!("messages[{i}].tool_call_id"),
                "a tool message names the call it answers in tool_call_id",
            ));
        }
        _ => None,
    };
    Ok(PromptMessage {
        role,
        content,
        tool_calls,
        tool_call_id,
        images,
    })
}

/// A logit bias's bounds.
const LOGIT_BIAS: (f32, f32) = (-100.0, 100.0);

/// `logit_bias` as OpenAPI states it: token ids (digits) to whole numbers in range.
fn logit_bias_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{
        ObjectBuilder, Type,
        schema::{AdditionalProperties, SchemaType},
    };
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some("Token id → bias, a whole number from −100 to 100."))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(utoipa::openapi::RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(LOGIT_BIAS.0))
                .maximum(Some(LOGIT_BIAS.1))
                .into(),
        ))))
        .build()
}

fn check_range(param: &str, value: Option<f32>, (low, high): (f32, f32)) -> Result<(), ApiError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(ApiError::invalid(
            param,
            format!("{param} must be between {low} and {high}"),
        )),
        _ => Ok(()),
    }
}

fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Completion {
            model: self.model.clone(),
            messages,
            temperature: self.temperature,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            options: self.options()?,
        })
    }

    fn options(&self) -> Result<GenerationOptions, ApiError> {
        check_range("top_p", self.top_p, validation::TOP_P.range())?;
        check_range(
            "presence_penalty",
            self.presence_penalty,
            validation::PENALTY.range(),
        )?;
        check_range(
            "frequency_penalty",
            self.frequency_penalty,
            validation::PENALTY.range(),
        )?;
        let logprobs = self.logprobs.unwrap_or(false);
        if let Some(n) = self.top_logprobs {
            let (_, max) = validation::TOP_LOGPROBS.range();
            if f32::from(n) > max {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    format!("top_logprobs must be between 0 and {max}"),
                ));
            }
            if !logprobs {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "top_logprobs needs logprobs: true",
                ));
            }
        }
        let tools = self.tools()?;
        Ok(GenerationOptions {
            stop: self.stop()?,
            top_p: self.top_p,
            seed: self.seed,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            logit_bias: self.logit_bias()?,
            logprobs,
            top_logprobs: self.top_logprobs,
            user: self.user.clone(),
            format: self.format()?,
            tool_choice: self.tool_choice(&tools)?,
            tools,
            parallel_tool_calls: self.parallel_tool_calls,
        })
    }

    fn stop(&self) -> Result<Vec<String>, ApiError> {
        let stop = match &self.stop {
            None => Vec::new(),
            Some(WireStop::One(s)) => vec![s.clone()],
            Some(WireStop::Many(v)) => v.clone(),
        };
        if stop.len() > MAX_STOP {
            return Err(ApiError::invalid(
                "stop",
                format!("at most {MAX_STOP} stop strings"),
            ));
        }
        if stop
            .iter()
            .any(|s| s.is_empty() || s.chars().count() > MAX_STOP_CHARS)
        {
            return Err(ApiError::invalid(
                "stop",
                format!("each stop string has 1 to {MAX_STOP_CHARS} characters"),
            ));
        }
        Ok(stop)
    }

    fn logit_bias(&self) -> Result<BTreeMap<String, i8>, ApiError> {
        let Some(bias) = &self.logit_bias else {
            return Ok(BTreeMap::new());
        };
        bias.iter()
            .map(|(token, b)| {
                if token.parse::<u32>().is_err() {
                    return Err(ApiError::invalid(
                        format!("logit_bias.{token}"),
                        "logit_bias keys are token ids",
                    ));
                }
                // Whole numbers, as OpenAI's API defines them: a fractional bias would be
                // rounded on the way to the provider, so it is refused instead.
                if !(LOGIT_BIAS.0..=LOGIT_BIAS.1).contains(b) || b.fract() != 0.0 {
                    return Err(ApiError::invalid(
                        format!("logit_bias.{token}"),
                        "a bias is a whole number between -100 and 100",
                    ));
                }
                Ok((token.clone(), *b as i8))
            })
            .collect()
    }

    fn format(&self) -> Result<OutputFormat, ApiError> {
        Ok(match &self.response_format {
            None | Some(WireResponseFormat::Text) => OutputFormat::Text,
            Some(WireResponseFormat::JsonObject) => OutputFormat::JsonObject,
            Some(WireResponseFormat::JsonSchema { json_schema: s }) => {
                if !is_identifier(&s.name) {
                    return Err(ApiError::invalid(
                        "response_format.json_schema.name",
                        "the name has 1 to 64 letters, digits, _ or -",
                    ));
                }
                let schema = s.schema.clone().unwrap_or_else(|| serde_json::json!({}));
                check_schema("response_format.json_schema.schema", &schema)?;
                OutputFormat::JsonSchema {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    schema,
                    strict: s.strict,
                }
            }
        })
    }

    fn tools(&self) -> Result<Vec<ToolSpec>, ApiError> {
        let tools = self.tools.as_deref().unwrap_or_default();
        if tools.len() > MAX_TOOLS {
            return Err(ApiError::invalid("tools", format!("at most {MAX_TOOLS} tools")));
        }
        tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.kind != "function" {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].type"),
                        "only function tools are supported",
                    ));
                }
                let f = &t.function;
                if !is_identifier(&f.name) {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].function.name"),
                        "the name has 1 to 64 letters, digits, _ or -",
                    ));
                }
                if tools[..i].iter().any(|o| o.function.name == f.name) {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].function.name"),
                        format!("two tools are named '{}'", f.name),
                    ));
                }
                if let Some(p) = &f.parameters {
                    check_schema(&format!("tools[{i}].function.parameters"), p)?;
                }
                Ok(ToolSpec {
                    name: f.name.clone(),
                    description: f.description.clone(),
                    parameters: f.parameters.clone(),
                    strict: f.strict,
                })
            })
            .collect()
    }

    fn tool_choice(&self, tools: &[ToolSpec]) -> Result<ToolChoice, ApiError> {
        let choice = match &self.tool_choice {
            None => return Ok(ToolChoice::Unset),
            Some(WireToolChoice::Mode(mode)) => match mode {
                ToolMode::None => ToolChoice::None,
                ToolMode::Auto => ToolChoice::Auto,
                ToolMode::Required => ToolChoice::Required,
            },
            Some(WireToolChoice::Named { kind, function }) => {
                if kind != "function" || !tools.iter().any(|t| t.name == function.name) {
                    return Err(ApiError::invalid(
                        "tool_choice.function.name",
                        "tool_choice must name one of the given tools",
                    ));
                }
                ToolChoice::Function(function.name.clone())
            }
        };
        if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
            return Err(ApiError::invalid("tool_choice", "tool_choice needs tools"));
        }
        Ok(choice)
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
        ErrorCode::InvalidOutput => ("server_error", Some("invalid_output")),
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
        assert_eq!(c.messages[0].role, PromptRole::System);
        assert_eq!(c.messages[1].content, "a\nb");
        assert_eq!(c.max_tokens, Some(5));
    }

    /// `logit_bias` is documented as it is checked, and a fractional bias is refused
    /// rather than rounded on its way to the provider.
    #[test]
    fn logit_bias_is_documented_and_checked_alike() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ChatCompletionRequest::schema()).unwrap();
        let bias = &schema["properties"]["logit_bias"];
        assert_eq!(bias["additionalProperties"]["type"], "integer");
        assert_eq!(bias["additionalProperties"]["minimum"], f64::from(LOGIT_BIAS.0));
        assert_eq!(bias["additionalProperties"]["maximum"], f64::from(LOGIT_BIAS.1));
        assert_eq!(bias["propertyNames"]["pattern"], "^[0-9]+$");
        let e = parse(
            json!({"model": "m", "logit_bias": {"7": 1.5}, "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("logit_bias.7"));
        assert!(parse(json!({"model": "m", "logit_bias": {"7": -100}, "messages": [{"role": "user", "content": "x"}]})).is_ok());
    }

    #[test]
    fn names_the_offending_parameter() {
        let e = crate::api::error::json_body::<ChatCompletionRequest>(
            br#"{"model": "m", "messages": [{"role": "function", "content": "x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("messages[0].role"));
        let e = parse(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("messages[0].tool_call_id"));
        let e = parse(json!({"model": "m", "n": 2, "messages": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("n"));
        let (status, body) = error_body(&ApiError::invalid("message", "too long"));
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "messages");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
