//! Request and response types shared by the UI and the server.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString,
)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The name on the wire and in the database (as serde writes it).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a message stands. An assistant message is `Streaming` while tokens arrive and ends
/// in exactly one of the other states; user messages are always `Complete`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString,
)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MessageStatus {
    /// Tokens are still arriving.
    Streaming,
    /// The model finished (end of turn or the max_tokens limit).
    Complete,
    /// The user pressed Stop or closed the page; the partial answer is kept.
    Stopped,
    /// The provider failed; whatever arrived before is kept, with the reason.
    Failed,
    /// The server went down while answering; found and marked at the next start.
    Interrupted,
}

impl MessageStatus {
    /// The name on the wire and in the database (as serde writes it).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A status that will not change any more.
    pub fn is_final(self) -> bool {
        self != MessageStatus::Streaming
    }
}

/// Sampling parameters of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct GenerationParams {
    /// 0 means greedy (deterministic) decoding.
    pub temperature: f32,
    /// Upper bound on the answer's length in tokens.
    pub max_tokens: u32,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            max_tokens: 512,
        }
    }
}

/// Ask for an answer: a new user message in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChatRequest {
    /// The conversation to continue.
    pub conversation_id: String,
    /// The user's message.
    pub message: String,
    #[serde(default)]
    pub params: GenerationParams,
    /// `provider/model` to answer with; when unset, the conversation's model (or the
    /// default). The conversation remembers the choice.
    #[serde(default)]
    pub model: Option<String>,
    /// When the conversation no longer fits the model's context window, leave its oldest
    /// messages out of the prompt (they stay stored) instead of refusing.
    #[serde(default)]
    pub trim_history: bool,
    /// Edit and resend: this user message of the conversation is replaced by `message` as a
    /// new version (the old one and its answers stay, as another branch).
    #[serde(default)]
    pub edit_of: Option<String>,
}

/// Answer a question again: a new version of an assistant message (the old one stays, as
/// another branch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RegenerateRequest {
    pub conversation_id: String,
    /// The assistant message to answer again.
    pub message_id: String,
    #[serde(default)]
    pub params: GenerationParams,
    /// `provider/model`; by default the conversation's.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub trim_history: bool,
}

/// A conversation's own system prompt and default parameters (unset: Stoa's defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ConversationSettings {
    /// Instructions the model gets before the conversation (at most 8,000 characters).
    pub system_prompt: Option<String>,
    /// 0 to 2.
    pub temperature: Option<f32>,
    /// 1 to 8192.
    pub max_tokens: Option<u32>,
    /// A JSON Schema (at most 64 KiB as JSON): answers are then JSON that follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub response_schema: Option<serde_json::Value>,
}

/// What a conversation list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    /// `provider/model` the conversation answers with, once chosen.
    pub model: Option<String>,
    /// Unix milliseconds of the last message.
    pub updated_at: i64,
}

/// Usage and timing of one assistant answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Usage {
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Time from the request reaching the model to the first token.
    pub ttft_ms: Option<u64>,
    /// Decode speed after the first token.
    pub tokens_per_second: Option<f32>,
    pub duration_ms: u64,
}

/// One message as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub id: String,
    /// The message before it in its branch.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Every version of this message (itself included), oldest first, after a regenerate
    /// or an edit; empty while it is the only one.
    #[serde(default)]
    pub siblings: Vec<String>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    /// Why a message failed, in words meant for the user.
    pub error: Option<String>,
    /// What happened on the way that the user should know (a provider fell back,
    /// old messages were left out of the prompt).
    #[serde(default)]
    pub notice: Option<String>,
    /// Passages of the user's documents the answer was given, numbered as cited.
    #[serde(default)]
    pub citations: Vec<super::documents::Citation>,
    pub usage: Option<Usage>,
    /// How the answer was made (assistant messages).
    #[serde(default)]
    pub trace: Option<Box<super::trace::AnswerTrace>>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A conversation with its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    /// `provider/model` the conversation answers with, once chosen.
    pub model: Option<String>,
    /// Collections its answers may draw on; empty means all documents.
    #[serde(default)]
    pub collections: Vec<String>,
    #[serde(default)]
    pub settings: ConversationSettings,
    /// The branch shown, oldest first.
    pub messages: Vec<MessageView>,
}

/// A model a user can pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    /// `provider/model`.
    pub id: String,
    pub provider: String,
    pub model: String,
    /// Context window in tokens (prompt + answer).
    pub context_window: u32,
    /// Runs inside Stoa (the embedded model).
    pub local: bool,
    /// Its provider answered its last request or health check.
    pub available: bool,
}

/// The models to pick from, and the one new conversations use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelList {
    pub default: Option<String>,
    pub models: Vec<ModelInfo>,
}

/// A piece of a search snippet; `matched` pieces are the words searched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SnippetPart {
    pub text: String,
    pub matched: bool,
}

/// A message that matches a search, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub conversation_id: String,
    pub conversation_title: String,
    pub message_id: String,
    pub role: Role,
    /// The words around the match.
    pub snippet: Vec<SnippetPart>,
    /// Unix milliseconds.
    pub created_at: i64,
}
