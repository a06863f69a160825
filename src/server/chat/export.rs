//! Export (JSON with every branch, or Markdown of the branch shown) and import of JSON
//! exports as new conversations.

use std::collections::HashMap;

use super::{
    ChatError,
    service::{ChatService, new_id, not_found, now_ms},
    views,
};
use crate::{
    api::{
        export::{EXPORT_VERSION, ExportFile, ExportedConversation, ExportedMessage},
        types::{ConversationSummary, MessageStatus},
    },
    server::{
        auth::UserId,
        storage::{ConversationRecord, ImportedConversation, ImportedMessage},
    },
};

/// Conversations in one "export all" at most.
const EXPORT_ALL_LIMIT: u32 = 100_000;

impl ChatService {
    /// One of `owner`'s conversations, or all of them (`None`), every branch included.
    pub async fn export(&self, owner: UserId, id: Option<&str>) -> Result<ExportFile, ChatError> {
        let conversations: Vec<ConversationRecord> = match id {
            Some(id) => vec![
                self.store
                    .get_conversation(owner, id)
                    .await
                    .map_err(not_found("conversation"))?,
            ],
            None => self.store.list_conversations(owner, EXPORT_ALL_LIMIT).await?,
        };
        let mut exported = Vec::with_capacity(conversations.len());
        for c in conversations {
            let messages = self.store.list_messages(owner, &c.id).await?;
            exported.push(ExportedConversation {
                messages: messages
                    .into_iter()
                    .map(|m| ExportedMessage {
                        model: match (&m.usage.provider, &m.usage.model) {
                            (Some(p), Some(model)) => Some(format!("{p}/{model}")),
                            _ => None,
                        },
                        id: m.id,
                        parent_id: m.parent_id,
                        role: m.role,
                        content: m.content,
                        status: m.status,
                        error: m.error,
                        created_at: m.created_at,
                    })
                    .collect(),
                settings: c.settings(),
                id: c.id,
                title: c.title,
                model: c.model,
                active_leaf: c.active_leaf,
                created_at: c.created_at,
                updated_at: c.updated_at,
            });
        }
        Ok(ExportFile {
            stoa_export: EXPORT_VERSION,
            exported_at: now_ms(),
            conversations: exported,
        })
    }

    /// Stores the conversations of an export as new ones of `owner` (new ids; branches,
    /// settings and the shown branch kept). Checked whole before anything is stored.
    pub async fn import(
        &self,
        owner: UserId,
        file: ExportFile,
    ) -> Result<Vec<ConversationSummary>, ChatError> {
        file.check().map_err(ChatError::Invalid)?;
        let now = now_ms();
        let mut imported = Vec::with_capacity(file.conversations.len());
        for c in file.conversations {
            let ids: HashMap<String, String> = c.messages.iter().map(|m| (m.id.clone(), new_id())).collect();
            let new = |old: &Option<String>| old.as_ref().and_then(|id| ids.get(id).cloned());
            let record = ImportedConversation {
                id: new_id(),
                title: c.title.trim().to_owned(),
                model: c.model,
                settings: c.settings.into(),
                active_leaf: new(&c.active_leaf),
                created_at: if c.created_at > 0 { c.created_at } else { now },
                updated_at: if c.updated_at > 0 { c.updated_at } else { now },
                messages: c
                    .messages
                    .iter()
                    .map(|m| {
                        let (provider, model) = match m.model.as_deref().and_then(|id| id.split_once('/')) {
                            Some((p, model)) => (Some(p.to_owned()), Some(model.to_owned())),
                            None => (None, m.model.clone()),
                        };
                        ImportedMessage {
                            id: ids[&m.id].clone(),
                            parent_id: new(&m.parent_id),
                            role: m.role,
                            content: m.content.clone(),
                            // Nothing imported is still being written.
                            status: if m.status == MessageStatus::Streaming {
                                MessageStatus::Interrupted
                            } else {
                                m.status
                            },
                            error: m.error.clone(),
                            provider,
                            model,
                            created_at: if m.created_at > 0 { m.created_at } else { now },
                        }
                    })
                    .collect(),
            };
            let stored = self.store.import_conversation(owner, record).await?;
            imported.push(views::summary(stored));
        }
        tracing::info!(
            user = owner.get(),
            conversations = imported.len(),
            "conversations imported"
        );
        Ok(imported)
    }
}
