//! [`Store`], written once for both databases: the same SQL (`$N` placeholders, which
//! SQLite reads too) instantiated for [`SqliteStore`] and [`PgStore`]. What genuinely
//! differs, message search (FTS5 or `tsvector`), is each backend's [`MessageSearch`]; a
//! list of ids is bound as each store's `list` and matched with its `in_list`.

use async_trait::async_trait;

use super::{
    postgres::PgStore,
    records::{
        ConversationRecord, ConversationSettingsRecord, ImportedConversation, MessageFinish, MessageRecord,
        NewMessage, NewTurn, SearchHitRecord,
    },
    rows::{
        CONVERSATION_COLUMNS, INTERRUPTED, MESSAGE_COLUMNS, affected, conversation_from_row, message_from_row,
    },
    sqlite::SqliteStore,
    store::{ANSWER_LEASE_MS, Store, StoreError},
};
use crate::{api::types::MessageStatus, server::auth::UserId};

/// Message search, which each backend does with its own full-text index.
#[async_trait]
pub(super) trait MessageSearch {
    /// Messages with every word of `query` (the last as a prefix), best first, each with a
    /// snippet whose matches sit between \u{2} and \u{3}.
    async fn search_messages(
        &self,
        owner: UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHitRecord>, StoreError>;
}

macro_rules! store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Sets one column of a conversation (`column` is a name from this file, never input).
            async fn update_conversation(
                &self,
                owner: UserId,
                column: &str,
                id: &str,
                value: &str,
            ) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                Self::update_conversation_in(&mut tx, owner, column, id, value).await?;
                Ok(tx.commit().await?)
            }

            async fn update_conversation_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                owner: UserId,
                column: &str,
                id: &str,
                value: &str,
            ) -> Result<(), StoreError> {
                let sql = format!(
                    "UPDATE conversations SET {column} = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL"
                );
                let done = sqlx::query(&sql)
                    .bind(value)
                    .bind(id)
                    .bind(owner.get())
                    .execute(&mut **tx)
                    .await?;
                affected(done.rows_affected())
            }

            /// Stores `m` and makes it its conversation's shown leaf, inside `tx`.
            async fn insert_message_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                m: &NewMessage,
            ) -> Result<MessageRecord, StoreError> {
                let touched = sqlx::query("UPDATE conversations SET updated_at = $1, active_leaf = $2 WHERE id = $3")
                    .bind(m.now_ms)
                    .bind(&m.id)
                    .bind(&m.conversation_id)
                    .execute(&mut **tx)
                    .await?;
                affected(touched.rows_affected())?;
                let sql = format!(
                    "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, provider, model, \
                     temperature, max_tokens, citations, created_at, updated_at, lease_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {MESSAGE_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(&m.id)
                    .bind(&m.conversation_id)
                    .bind(&m.parent_id)
                    .bind(m.role.as_str())
                    .bind(&m.content)
                    .bind(m.status.as_str())
                    .bind(&m.provider)
                    .bind(&m.model)
                    .bind(m.temperature.map(f64::from))
                    .bind(m.max_tokens.map(i64::from))
                    .bind((!m.citations.is_empty()).then(|| serde_json::to_string(&m.citations).unwrap_or_default()))
                    .bind(m.now_ms)
                    .bind(m.now_ms)
                    .bind((m.status == MessageStatus::Streaming).then_some(m.now_ms + ANSWER_LEASE_MS))
                    .fetch_one(&mut **tx)
                    .await?;
                message_from_row(&row)
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn create_conversation(
                &self,
                owner: UserId,
                id: &str,
                title: &str,
                now_ms: i64,
            ) -> Result<ConversationRecord, StoreError> {
                sqlx::query(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(owner.get())
                .bind(title)
                .bind(now_ms)
                .bind(now_ms)
                .execute(self.pool())
                .await?;
                Ok(ConversationRecord {
                    id: id.to_owned(),
                    title: title.to_owned(),
                    model: None,
                    active_leaf: None,
                    system_prompt: None,
                    temperature: None,
                    max_tokens: None,
                    response_schema: None,
                    created_at: now_ms,
                    updated_at: now_ms,
                })
            }

            async fn list_conversations(
                &self,
                owner: UserId,
                limit: u32,
            ) -> Result<Vec<ConversationRecord>, StoreError> {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 AND deleted_at IS NULL \
                     ORDER BY updated_at DESC, id DESC LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(owner.get())
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(conversation_from_row).collect()
            }

            async fn get_conversation(&self, owner: UserId, id: &str) -> Result<ConversationRecord, StoreError> {
                let sql = format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(owner.get())
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                conversation_from_row(&row)
            }

            async fn rename_conversation(&self, owner: UserId, id: &str, title: &str) -> Result<(), StoreError> {
                self.update_conversation(owner, "title", id, title).await
            }

            async fn set_conversation_model(&self, owner: UserId, id: &str, model: &str) -> Result<(), StoreError> {
                self.update_conversation(owner, "model", id, model).await
            }

            async fn set_active_leaf(&self, owner: UserId, id: &str, leaf: &str) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE conversations SET active_leaf = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL \
                     AND EXISTS (SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2)",
                )
                .bind(leaf)
                .bind(id)
                .bind(owner.get())
                .execute(self.pool())
                .await?;
                affected(done.rows_affected())
            }

            async fn set_conversation_settings(
                &self,
                owner: UserId,
                id: &str,
                settings: &ConversationSettingsRecord,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE conversations SET system_prompt = $1, temperature = $2, max_tokens = $3, \
                     response_schema = $4 WHERE id = $5 AND user_id = $6 AND deleted_at IS NULL",
                )
                .bind(&settings.system_prompt)
                .bind(settings.temperature.map(f64::from))
                .bind(settings.max_tokens.map(i64::from))
                .bind(&settings.response_schema)
                .bind(id)
                .bind(owner.get())
                .execute(self.pool())
                .await?;
                affected(done.rows_affected())
            }

            async fn trash_conversation(
                &self,
                owner: UserId,
                id: &str,
                trashed: bool,
                now_ms: i64,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE conversations SET deleted_at = $1 WHERE id = $2 AND user_id = $3 AND (deleted_at IS NULL) = $4",
                )
                .bind(trashed.then_some(now_ms))
                .bind(id)
                .bind(owner.get())
                .bind(trashed)
                .execute(self.pool())
                .await?;
                affected(done.rows_affected())
            }

            async fn purge_trash(&self, before_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at < $1")
                    .bind(before_ms)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn list_messages(
                &self,
                owner: UserId,
                conversation_id: &str,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 \
                     AND conversation_id IN (SELECT id FROM conversations WHERE user_id = $2) ORDER BY created_at, id"
                );
                let rows = sqlx::query(&sql)
                    .bind(conversation_id)
                    .bind(owner.get())
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(message_from_row).collect()
            }

            async fn insert_message(&self, m: NewMessage) -> Result<MessageRecord, StoreError> {
                let mut tx = self.write_tx().await?;
                let stored = Self::insert_message_in(&mut tx, &m).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn start_turn(
                &self,
                owner: UserId,
                turn: NewTurn,
            ) -> Result<(Option<MessageRecord>, MessageRecord), StoreError> {
                let conversation = &turn.answer.conversation_id;
                let mut tx = self.write_tx().await?;
                let question = match &turn.question {
                    Some(q) => Some(Self::insert_message_in(&mut tx, q).await?),
                    None => None,
                };
                for (column, value) in [("title", &turn.title), ("model", &turn.model)] {
                    if let Some(value) = value {
                        Self::update_conversation_in(&mut tx, owner, column, conversation, value).await?;
                    }
                }
                let answer = Self::insert_message_in(&mut tx, &turn.answer).await?;
                tx.commit().await?;
                Ok((question, answer))
            }

            async fn get_message(&self, owner: UserId, id: &str) -> Result<MessageRecord, StoreError> {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id IN \
                     (SELECT id FROM conversations WHERE user_id = $2 AND deleted_at IS NULL)"
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(owner.get())
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                message_from_row(&row)
            }

            async fn update_message_content(&self, id: &str, content: &str, now_ms: i64) -> Result<bool, StoreError> {
                let stop: Option<bool> = sqlx::query_scalar(
                    "UPDATE messages SET content = $1, updated_at = $2 WHERE id = $3 AND status = 'streaming' \
                     RETURNING stop_requested <> 0",
                )
                .bind(content)
                .bind(now_ms)
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
                Ok(stop == Some(false))
            }

            async fn request_stop(&self, owner: UserId, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE messages SET stop_requested = 1 WHERE id = $1 AND status = 'streaming' \
                     AND conversation_id IN (SELECT id FROM conversations WHERE user_id = $2)",
                )
                .bind(id)
                .bind(owner.get())
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn finish_message(&self, id: &str, f: MessageFinish) -> Result<MessageRecord, StoreError> {
                let sql = format!(
                    "UPDATE messages SET content = $1, status = $2, error = $3, notice = $4, \
                     provider = COALESCE($5, provider), model = COALESCE($6, model), prompt_tokens = $7, \
                     completion_tokens = $8, ttft_ms = $9, tokens_per_second = $10, duration_ms = $11, updated_at = $12, \
                     trace = $14 WHERE id = $13 RETURNING {MESSAGE_COLUMNS}"
                );
                let row = sqlx::query(&sql)
                    .bind(&f.content)
                    .bind(f.status.as_str())
                    .bind(&f.error)
                    .bind(&f.notice)
                    .bind(&f.usage.provider)
                    .bind(&f.usage.model)
                    .bind(f.usage.prompt_tokens.map(i64::from))
                    .bind(f.usage.completion_tokens.map(i64::from))
                    .bind(f.usage.ttft_ms.map(|v| v as i64))
                    .bind(f.usage.tokens_per_second.map(f64::from))
                    .bind(f.usage.duration_ms.map(|v| v as i64))
                    .bind(f.now_ms)
                    .bind(id)
                    .bind(f.trace.as_ref().map(|t| serde_json::to_string(t).unwrap_or_default()))
                    .fetch_optional(self.pool())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                message_from_row(&row)
            }

            async fn interrupt_streaming(&self, now_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(&format!(
                    "UPDATE messages SET {INTERRUPTED}, updated_at = $1 WHERE status = 'streaming'"
                ))
                .bind(now_ms)
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected())
            }

            async fn renew_answers(
                &self,
                ids: &[String],
                lease_until_ms: i64,
            ) -> Result<Vec<String>, StoreError> {
                let sql = format!(
                    "UPDATE messages SET lease_until = $1 WHERE {} AND status = 'streaming' \
                     RETURNING id, stop_requested <> 0 AS stop",
                    <$store>::in_list("id", 2)
                );
                let renewed: Vec<(String, bool)> = sqlx::query_as(&sql)
                    .bind(lease_until_ms)
                    .bind(<$store>::list(ids))
                    .fetch_all(self.pool())
                    .await?;
                Ok(renewed.into_iter().filter(|r| r.1).map(|r| r.0).collect())
            }

            async fn interrupt_abandoned(&self, now_ms: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(&format!(
                    "UPDATE messages SET {INTERRUPTED}, updated_at = $1 \
                     WHERE status = 'streaming' AND (lease_until IS NULL OR lease_until < $1)"
                ))
                .bind(now_ms)
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected())
            }

            async fn interrupt_answers(&self, ids: &[String], now_ms: i64) -> Result<u64, StoreError> {
                let sql = format!(
                    "UPDATE messages SET {INTERRUPTED}, updated_at = $1 WHERE {} AND status = 'streaming'",
                    <$store>::in_list("id", 2)
                );
                let done = sqlx::query(&sql)
                    .bind(now_ms)
                    .bind(<$store>::list(ids))
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn search_messages(
                &self,
                owner: UserId,
                query: &str,
                limit: u32,
            ) -> Result<Vec<SearchHitRecord>, StoreError> {
                MessageSearch::search_messages(self, owner, query, limit).await
            }

            async fn import_conversation(
                &self,
                owner: UserId,
                c: ImportedConversation,
            ) -> Result<ConversationRecord, StoreError> {
                let mut tx = self.write_tx().await?;
                sqlx::query(
                    "INSERT INTO conversations (id, user_id, title, model, active_leaf, system_prompt, temperature, \
                     max_tokens, response_schema, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&c.id)
                .bind(owner.get())
                .bind(&c.title)
                .bind(&c.model)
                .bind(&c.active_leaf)
                .bind(&c.settings.system_prompt)
                .bind(c.settings.temperature.map(f64::from))
                .bind(c.settings.max_tokens.map(i64::from))
                .bind(&c.settings.response_schema)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(&mut *tx)
                .await?;
                for m in &c.messages {
                    sqlx::query(
                        "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, error, provider, \
                         model, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                    )
                    .bind(&m.id)
                    .bind(&c.id)
                    .bind(&m.parent_id)
                    .bind(m.role.as_str())
                    .bind(&m.content)
                    .bind(m.status.as_str())
                    .bind(&m.error)
                    .bind(&m.provider)
                    .bind(&m.model)
                    .bind(m.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.get_conversation(owner, &c.id).await
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(self.pool()).await?;
                Ok(())
            }

            async fn close(&self) {
                // On SQLite closing the last connection checkpoints the WAL into the main file.
                self.pool().close().await;
            }
        }
    };
}

store!(SqliteStore, sqlx::Sqlite);
store!(PgStore, sqlx::Postgres);
