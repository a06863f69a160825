//! What a caller may ask of an answer beyond the prompt: sampling, stop strings, the
//! output's shape, tools. Provider-neutral: the OpenAI-compatible provider relays each
//! one, the embedded model honours each one in its sampler chain or by grammar, and a
//! provider that cannot honour one refuses it up front ([`super::LlmError::Unsupported`])
//! instead of dropping it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Everything the chat UI leaves at its default; the OpenAI-compatible API sets the rest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerationOptions {
    /// Up to 4 strings; the answer ends before the first one (which is not sent).
    pub stop: Vec<String>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// Token id (in the provider's tokenizer) → bias from −100 to 100.
    pub logit_bias: BTreeMap<String, i8>,
    pub logprobs: bool,
    pub top_logprobs: Option<u8>,
    /// The end user's id, for the provider's abuse monitoring.
    pub user: Option<String>,
    pub format: OutputFormat,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: Option<bool>,
}

impl GenerationOptions {
    /// The JSON Schema the final answer must satisfy, when one was asked for.
    pub fn answer_schema(&self) -> Option<&Value> {
        match &self.format {
            OutputFormat::JsonSchema { schema, .. } => Some(schema),
            _ => None,
        }
    }

    /// Whether the answer may be a tool call.
    pub fn may_call_tools(&self) -> bool {
        !self.tools.is_empty() && self.tool_choice != ToolChoice::None
    }
}

/// The shape of the answer (`response_format`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that validates against `schema`.
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema of the arguments object.
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ToolChoice {
    /// Not sent: the provider's default (`auto` when tools are given).
    #[default]
    Unset,
    None,
    Auto,
    Required,
    /// This function must be called.
    Function(String),
}

/// A call the model made (or, in a request, made earlier in the conversation).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// A JSON object, as text (exactly as the model wrote it).
    pub arguments: String,
}

/// A piece of a tool call as it streams: the first piece of a call has its `id` and
/// `name`, later pieces add to `arguments`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallDelta {
    /// Which call of the answer (0 for the first).
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}
