//! Storage-shaped records.

use crate::api::{
    documents::Citation,
    trace::AnswerTrace,
    types::{MessageStatus, Role},
};

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRecord {
    pub id: String,
    pub title: String,
    /// `provider/model` chosen for the conversation.
    pub model: Option<String>,
    /// The last message of the branch shown (and continued).
    pub active_leaf: Option<String>,
    pub system_prompt: Option<String>,
    /// Defaults of new messages in this conversation.
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// A JSON Schema (as text) the answers must follow.
    pub response_schema: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Usage and timing columns of an assistant message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRecord {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub ttft_ms: Option<u64>,
    pub tokens_per_second: Option<f32>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: String,
    pub conversation_id: String,
    /// The message before it in its branch (none for the first).
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub citations: Vec<Citation>,
    pub usage: UsageRecord,
    pub trace: Option<AnswerTrace>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: String,
    pub conversation_id: String,
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Sources handed to the model (answers only).
    pub citations: Vec<Citation>,
    pub now_ms: i64,
}

/// The writes that start a turn, made together or not at all (`Store::start_turn`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTurn {
    /// The question, unless it is stored already (regenerating reuses it).
    pub question: Option<NewMessage>,
    /// A title for a conversation still untitled.
    pub title: Option<String>,
    /// The `provider/model` the conversation now answers with, if it changed.
    pub model: Option<String>,
    /// The answer, streaming.
    pub answer: NewMessage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageFinish {
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub notice: Option<String>,
    pub usage: UsageRecord,
    pub trace: Option<AnswerTrace>,
    pub now_ms: i64,
}

/// A conversation's own settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationSettingsRecord {
    pub system_prompt: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub response_schema: Option<String>,
}

impl From<crate::api::types::ConversationSettings> for ConversationSettingsRecord {
    fn from(s: crate::api::types::ConversationSettings) -> Self {
        Self {
            system_prompt: s.system_prompt,
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            response_schema: s.response_schema.map(|v| v.to_string()),
        }
    }
}

impl ConversationRecord {
    /// Its settings, as the API shows them.
    pub fn settings(&self) -> crate::api::types::ConversationSettings {
        crate::api::types::ConversationSettings {
            system_prompt: self.system_prompt.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            response_schema: self
                .response_schema
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

/// A message found by full-text search; `snippet` marks matches with \u{2} … \u{3}.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHitRecord {
    pub conversation_id: String,
    pub conversation_title: String,
    pub message_id: String,
    pub role: Role,
    pub snippet: String,
    pub created_at: i64,
}

/// A conversation brought in from an export, with its new ids already given.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedConversation {
    pub id: String,
    pub title: String,
    pub model: Option<String>,
    pub settings: ConversationSettingsRecord,
    pub active_leaf: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Parents before children.
    pub messages: Vec<ImportedMessage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedMessage {
    pub id: String,
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub created_at: i64,
}
