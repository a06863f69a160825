//! Conversations as files: export one or all as Markdown (the branch shown) or JSON (every
//! branch), and import the JSON back (as new conversations; nothing existing is touched).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::{MultipartData, MultipartFormData};

use super::{
    error::ApiError,
    types::{ConversationSettings, ConversationSummary, MessageStatus, Role},
};

/// The format version written in `stoa_export`.
pub const EXPORT_VERSION: u32 = 1;
/// Most conversations one import may hold.
pub const MAX_IMPORT_CONVERSATIONS: usize = 1_000;
/// Most messages one imported conversation may hold.
pub const MAX_IMPORT_MESSAGES: usize = 20_000;
/// Longest imported message, in characters.
pub const MAX_IMPORT_MESSAGE_CHARS: usize = 200_000;

/// A JSON export: `{"stoa_export": 1, "conversations": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ExportFile {
    /// The format version (1).
    pub stoa_export: u32,
    /// Unix milliseconds.
    #[serde(default)]
    pub exported_at: i64,
    pub conversations: Vec<ExportedConversation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ExportedConversation {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub settings: ConversationSettings,
    /// The last message of the branch shown.
    #[serde(default)]
    pub active_leaf: Option<String>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    /// Every message of every branch, oldest first.
    pub messages: Vec<ExportedMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ExportedMessage {
    pub id: String,
    /// The message before it in its branch (an `id` of the same conversation).
    #[serde(default)]
    pub parent_id: Option<String>,
    pub role: Role,
    pub content: String,
    pub status: MessageStatus,
    #[serde(default)]
    pub error: Option<String>,
    /// `provider/model` that wrote an answer.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub created_at: i64,
}

impl ExportFile {
    /// Everything an import must hold, each rule naming the field at fault.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.stoa_export != EXPORT_VERSION {
            return Err(ApiError::invalid(
                "stoa_export",
                format!(
                    "this is a Stoa export of version {}; version {EXPORT_VERSION} can be imported",
                    self.stoa_export
                ),
            ));
        }
        if self.conversations.is_empty() || self.conversations.len() > MAX_IMPORT_CONVERSATIONS {
            return Err(ApiError::invalid(
                "conversations",
                format!(
                    "an import holds 1 to {MAX_IMPORT_CONVERSATIONS} conversations (got {})",
                    self.conversations.len()
                ),
            ));
        }
        for (i, c) in self.conversations.iter().enumerate() {
            let at = format!("conversations[{i}]");
            super::validation::validate_title(&c.title)
                .map_err(|e| ApiError::invalid(format!("{at}.title"), e.message))?;
            c.settings.check().map_err(|e| {
                e.clone()
                    .with_field(format!("{at}.settings.{}", e.field.unwrap_or_default()))
            })?;
            if c.messages.len() > MAX_IMPORT_MESSAGES {
                return Err(ApiError::invalid(
                    format!("{at}.messages"),
                    format!(
                        "a conversation holds at most {MAX_IMPORT_MESSAGES} messages (got {})",
                        c.messages.len()
                    ),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for (j, m) in c.messages.iter().enumerate() {
                let at = format!("{at}.messages[{j}]");
                let n = m.content.chars().count();
                if n > MAX_IMPORT_MESSAGE_CHARS {
                    return Err(ApiError::invalid(
                        format!("{at}.content"),
                        format!("a message is at most {MAX_IMPORT_MESSAGE_CHARS} characters (got {n})"),
                    ));
                }
                if m.id.trim().is_empty() || !seen.insert(m.id.as_str()) {
                    return Err(ApiError::invalid(
                        format!("{at}.id"),
                        "message ids must be present and unique",
                    ));
                }
                // Parents come first (exports are oldest first), so a tree has no cycle.
                if let Some(p) = &m.parent_id
                    && !seen.contains(p.as_str())
                {
                    return Err(ApiError::invalid(
                        format!("{at}.parent_id"),
                        format!("parent '{p}' is not an earlier message of this conversation"),
                    ));
                }
            }
            if let Some(leaf) = &c.active_leaf
                && !seen.contains(leaf.as_str())
            {
                return Err(ApiError::invalid(
                    format!("{at}.active_leaf"),
                    format!("'{leaf}' is not a message of this conversation"),
                ));
            }
        }
        Ok(())
    }
}

/// The shown branch of each conversation as Markdown.
pub fn to_markdown(file: &ExportFile) -> String {
    let mut out = String::new();
    for c in &file.conversations {
        out.push_str(&format!("# {}\n\n", c.title));
        if let Some(p) = &c.settings.system_prompt {
            out.push_str(&format!("> System prompt: {}\n\n", p.replace('\n', "\n> ")));
        }
        let leaf = c
            .active_leaf
            .clone()
            .or_else(|| c.messages.last().map(|m| m.id.clone()));
        let mut path = Vec::new();
        let mut next = leaf;
        while let Some(id) = next {
            let Some(m) = c.messages.iter().find(|m| m.id == id) else {
                break;
            };
            path.push(m);
            next = m.parent_id.clone();
            if path.len() > c.messages.len() {
                break;
            }
        }
        for m in path.into_iter().rev() {
            let who = match m.role {
                Role::User => "You".to_owned(),
                Role::Assistant => match &m.model {
                    Some(model) => format!("Stoa ({model})"),
                    None => "Stoa".to_owned(),
                },
                Role::System => "System".to_owned(),
            };
            out.push_str(&format!("**{who}:**\n\n{}\n\n", m.content.trim_end()));
        }
        out.push_str("---\n\n");
    }
    out
}

/// Imports conversations from a JSON export (multipart field `file`): new conversations,
/// with new ids, every branch kept. Returns them.
#[server(endpoint = "conversations/import", input = MultipartFormData, client = super::csrf::CsrfClient)]
pub async fn import_conversations(data: MultipartData) -> Result<Vec<ConversationSummary>, ApiError> {
    use crate::server::state::{principal, state};
    let mut multipart = data
        .into_inner()
        .ok_or_else(|| ApiError::invalid("file", "the request is not multipart/form-data"))?;
    let mut bytes = Vec::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::invalid("file", format!("unreadable upload: {e}")))?
    {
        if field.name() == Some("file") {
            while let Some(piece) = field
                .chunk()
                .await
                .map_err(|e| ApiError::invalid("file", format!("unreadable upload: {e}")))?
            {
                bytes.extend_from_slice(&piece);
            }
        }
    }
    if bytes.is_empty() {
        return Err(ApiError::invalid("file", "no file was uploaded"));
    }
    let file = parse_export(bytes).await?;
    state()?
        .chat
        .import(principal()?.user, file)
        .await
        .map_err(ApiError::from)
}

/// Reads an export file. Tens of megabytes of JSON are parsed on a blocking thread, not
/// on one the other requests are served from (the body limit bounds the size).
#[cfg(feature = "ssr")]
pub async fn parse_export(bytes: impl AsRef<[u8]> + Send + 'static) -> Result<ExportFile, ApiError> {
    tokio::task::spawn_blocking(move || super::error::json_body(bytes.as_ref()))
        .await
        .map_err(|_| ApiError::internal())?
}
