//! Conversations as a list: create, list, read, rename, delete (to the trash) and
//! restore, and which document collections a conversation may draw on.

use super::{
    ChatError, branches, prompt,
    service::{ChatService, new_id, not_found, now_ms},
    views,
};
use crate::{
    api::{
        ApiError, ErrorCode,
        types::{
            ConversationSettings, ConversationSummary, ConversationView, MessageStatus, SearchHit,
            SnippetPart,
        },
        validation::validate_title,
    },
    server::auth::UserId,
};

/// Conversations shown in the sidebar.
const LIST_LIMIT: u32 = 200;
/// Search results returned at most.
const SEARCH_LIMIT: u32 = 50;
/// Longest search, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

impl ChatService {
    /// Limits a conversation's answers to these collections (empty: all documents).
    pub async fn set_collections(
        &self,
        owner: UserId,
        conversation_id: &str,
        collection_ids: &[String],
    ) -> Result<(), ChatError> {
        let rag = self.rag.as_ref().ok_or_else(|| {
            ChatError::Invalid(ApiError::invalid("collection_ids", "documents are not enabled"))
        })?;
        self.store
            .get_conversation(owner, conversation_id)
            .await
            .map_err(not_found("conversation"))?;
        let known = rag.documents.list_collections(owner).await?;
        if let Some(unknown) = collection_ids
            .iter()
            .find(|id| !known.iter().any(|c| &c.id == *id))
        {
            return Err(ChatError::Invalid(
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("collection '{unknown}' does not exist"),
                )
                .with_field("collection_ids"),
            ));
        }
        rag.documents
            .set_conversation_collections(conversation_id, collection_ids)
            .await?;
        Ok(())
    }

    pub async fn create_conversation(&self, owner: UserId) -> Result<ConversationSummary, ChatError> {
        let record = self
            .store
            .create_conversation(owner, &new_id(), prompt::UNTITLED, now_ms())
            .await?;
        Ok(views::summary(record))
    }

    pub async fn list_conversations(&self, owner: UserId) -> Result<Vec<ConversationSummary>, ChatError> {
        let records = self.store.list_conversations(owner, LIST_LIMIT).await?;
        Ok(records.into_iter().map(views::summary).collect())
    }

    pub async fn get_conversation(&self, owner: UserId, id: &str) -> Result<ConversationView, ChatError> {
        let conversation = self
            .store
            .get_conversation(owner, id)
            .await
            .map_err(not_found("conversation"))?;
        let all = self.store.list_messages(owner, id).await?;
        let collections = match &self.rag {
            Some(rag) => rag.documents.conversation_collections(id).await?,
            None => Vec::new(),
        };
        Ok(ConversationView {
            messages: branches::shown(&conversation, &all),
            settings: conversation.settings(),
            id: conversation.id,
            title: conversation.title,
            model: conversation.model,
            collections,
        })
    }

    /// `owner`'s messages matching every word of `query`, best first.
    pub async fn search(&self, owner: UserId, query: &str) -> Result<Vec<SearchHit>, ChatError> {
        let n = query.chars().count();
        if n > MAX_SEARCH_CHARS {
            return Err(ChatError::Invalid(ApiError::invalid(
                "query",
                format!("a search is at most {MAX_SEARCH_CHARS} characters (got {n})"),
            )));
        }
        let hits = self.store.search_messages(owner, query, SEARCH_LIMIT).await?;
        Ok(hits
            .into_iter()
            .map(|h| SearchHit {
                snippet: snippet_parts(&h.snippet),
                conversation_id: h.conversation_id,
                conversation_title: h.conversation_title,
                message_id: h.message_id,
                role: h.role,
                created_at: h.created_at,
            })
            .collect())
    }

    /// Shows another version of a message (and the newest branch under it).
    pub async fn switch_branch(
        &self,
        owner: UserId,
        id: &str,
        message_id: &str,
    ) -> Result<ConversationView, ChatError> {
        let all = self.store.list_messages(owner, id).await?;
        if !all.iter().any(|m| m.id == message_id) {
            return Err(ChatError::NotFound("message"));
        }
        let leaf = branches::latest_leaf(&all, message_id);
        self.store
            .set_active_leaf(owner, id, &leaf)
            .await
            .map_err(not_found("conversation"))?;
        self.get_conversation(owner, id).await
    }

    /// Sets a conversation's system prompt and default parameters.
    pub async fn set_settings(
        &self,
        owner: UserId,
        id: &str,
        settings: ConversationSettings,
    ) -> Result<ConversationSettings, ChatError> {
        settings.check().map_err(ChatError::Invalid)?;
        let settings = ConversationSettings {
            system_prompt: settings.system_prompt.filter(|p| !p.trim().is_empty()),
            ..settings
        };
        if let Some(schema) = &settings.response_schema {
            super::structured::check_schema("response_schema", schema).map_err(ChatError::Invalid)?;
        }
        self.store
            .set_conversation_settings(owner, id, &settings.clone().into())
            .await
            .map_err(not_found("conversation"))?;
        Ok(settings)
    }

    /// Renames a conversation (1 to 200 characters, trimmed).
    pub async fn rename_conversation(
        &self,
        owner: UserId,
        id: &str,
        title: &str,
    ) -> Result<ConversationSummary, ChatError> {
        validate_title(title).map_err(|e| ChatError::Invalid(e.into()))?;
        let title = title.trim();
        self.store
            .rename_conversation(owner, id, title)
            .await
            .map_err(not_found("conversation"))?;
        self.summary_of(owner, id).await
    }

    async fn summary_of(&self, owner: UserId, id: &str) -> Result<ConversationSummary, ChatError> {
        let record = self
            .store
            .get_conversation(owner, id)
            .await
            .map_err(not_found("conversation"))?;
        Ok(views::summary(record))
    }

    /// Moves a conversation to the trash, from which [`Self::restore_conversation`] brings
    /// it back until it is purged. A running answer in it is stopped.
    pub async fn delete_conversation(&self, owner: UserId, id: &str) -> Result<(), ChatError> {
        for m in self.store.list_messages(owner, id).await? {
            if m.status == MessageStatus::Streaming {
                self.stop(owner, &m.id).await?;
            }
        }
        self.store
            .trash_conversation(owner, id, true, now_ms())
            .await
            .map_err(not_found("conversation"))
    }

    pub async fn restore_conversation(
        &self,
        owner: UserId,
        id: &str,
    ) -> Result<ConversationSummary, ChatError> {
        self.store
            .trash_conversation(owner, id, false, now_ms())
            .await
            .map_err(not_found("deleted conversation"))?;
        self.summary_of(owner, id).await
    }
}

/// A snippet with matches between \u{2} and \u{3} as plain and matched parts.
fn snippet_parts(snippet: &str) -> Vec<SnippetPart> {
    let mut parts = Vec::new();
    let mut rest = snippet;
    while let Some(start) = rest.find('\u{2}') {
        if start > 0 {
            parts.push(SnippetPart {
                text: rest[..start].to_owned(),
                matched: false,
            });
        }
        let after = &rest[start + 1..];
        let end = after.find('\u{3}').unwrap_or(after.len());
        parts.push(SnippetPart {
            text: after[..end].to_owned(),
            matched: true,
        });
        rest = after.get(end + 1..).unwrap_or("");
    }
    if !rest.is_empty() {
        parts.push(SnippetPart {
            text: rest.to_owned(),
            matched: false,
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    #[test]
    fn snippets_split_into_matched_and_plain_parts() {
        let parts = super::snippet_parts("…a \u{2}dragon\u{3} and a \u{2}knight\u{3}");
        let shown: Vec<(bool, &str)> = parts.iter().map(|p| (p.matched, p.text.as_str())).collect();
        assert_eq!(
            shown,
            [
                (false, "…a "),
                (true, "dragon"),
                (false, " and a "),
                (true, "knight")
            ]
        );
    }
}
