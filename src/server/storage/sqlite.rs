//! SQLite implementation of [`Store`]: one file, WAL journal, migrations embedded in the
//! binary and applied at open.

use super::rows::{
    CONVERSATION_COLUMNS, INTERRUPTED, MESSAGE_COLUMNS, conversation_from_row, message_from_row,
    role_from_row, search_words,
};
use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    ConnectOptions, Connection, Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
        SqliteSynchronous,
    },
};

use super::{
    records::{
        ConversationRecord, ConversationSettingsRecord, ImportedConversation, MessageFinish, MessageRecord,
        NewMessage, SearchHitRecord,
    },
    store::{ANSWER_LEASE_MS, Store, StoreError},
};
use crate::{api::types::MessageStatus, server::auth::UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/storage/migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: durable across application crashes, fast commits.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // Migrations run on their own connection with foreign keys off, as SQLite asks for
        // schema changes that rebuild a table; every reference is checked afterwards.
        let mut conn = options.clone().foreign_keys(false).connect().await?;
        MIGRATOR.run(&mut conn).await?;
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await?;
        if !broken.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "{} rows reference missing rows after migrating",
                broken.len()
            )));
        }
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// An online, consistent copy of the whole database into a new file at `target`
    /// (`VACUUM INTO`: readers and writers go on meanwhile). Refuses to overwrite a file.
    pub async fn backup_to(&self, target: &std::path::Path) -> Result<(), StoreError> {
        if target.exists() {
            return Err(StoreError::Conflict);
        }
        sqlx::query("VACUUM INTO ?")
            .bind(target.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction that takes the write lock at once (`BEGIN IMMEDIATE`): a deferred one
    /// that reads and then writes can fail at once with SQLITE_BUSY when another writer
    /// committed in between, where this one waits (busy timeout) like any write.
    pub(super) async fn write_tx(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Sets one column of a conversation (`column` is a name from this file, never input).
    async fn update_conversation(
        &self,
        owner: UserId,
        column: &str,
        id: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE conversations SET {column} = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL"
        );
        let done = sqlx::query(&sql)
            .bind(value)
            .bind(id)
            .bind(owner.get())
            .execute(&self.pool)
            .await?;
        affected(done)
    }
}

/// A write that matched no row (another user's, or none at all) is [`StoreError::NotFound`].
pub(super) fn affected(done: SqliteQueryResult) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The words of a search as an FTS5 expression that cannot be a syntax error: every word
/// must match, the last one as a prefix (results appear while typing).
fn search_expression(query: &str) -> Option<String> {
    let words = search_words(query);
    let (last, rest) = words.split_last()?;
    let quoted = rest
        .iter()
        .map(|w| format!("\"{w}\""))
        .chain([format!("\"{last}\"*")]);
    Some(quoted.collect::<Vec<_>>().join(" AND "))
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_conversation(
        &self,
        owner: UserId,
        id: &str,
        title: &str,
        now_ms: i64,
    ) -> Result<ConversationRecord, StoreError> {
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(owner.get())
        .bind(title)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(ConversationRecord {
            id: id.to_owned(),
            title: title.to_owned(),
            model: None,
            active_leaf: None,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
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
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = ? AND deleted_at IS NULL \
             ORDER BY updated_at DESC, id DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.get())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    async fn get_conversation(&self, owner: UserId, id: &str) -> Result<ConversationRecord, StoreError> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND user_id = ? AND deleted_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(owner.get())
            .fetch_optional(&self.pool)
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
            "UPDATE conversations SET active_leaf = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL \
             AND EXISTS (SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?)",
        )
        .bind(leaf)
        .bind(id)
        .bind(owner.get())
        .bind(leaf)
        .bind(id)
        .execute(&self.pool)
        .await?;
        affected(done)
    }

    async fn set_conversation_settings(
        &self,
        owner: UserId,
        id: &str,
        settings: &ConversationSettingsRecord,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET system_prompt = ?, temperature = ?, max_tokens = ? \
             WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
        )
        .bind(&settings.system_prompt)
        .bind(settings.temperature.map(f64::from))
        .bind(settings.max_tokens.map(i64::from))
        .bind(id)
        .bind(owner.get())
        .execute(&self.pool)
        .await?;
        affected(done)
    }

    async fn trash_conversation(
        &self,
        owner: UserId,
        id: &str,
        trashed: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE conversations SET deleted_at = ? WHERE id = ? AND user_id = ? AND (deleted_at IS NULL) = ?",
        )
        .bind(trashed.then_some(now_ms))
        .bind(id)
        .bind(owner.get())
        .bind(trashed)
                .execute(&self.pool)
                .await?;
        affected(done)
    }

    async fn purge_trash(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_messages(
        &self,
        owner: UserId,
        conversation_id: &str,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? \
             AND conversation_id IN (SELECT id FROM conversations WHERE user_id = ?) ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(owner.get())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn insert_message(&self, m: NewMessage) -> Result<MessageRecord, StoreError> {
        let mut tx = self.write_tx().await?;
        let touched = sqlx::query("UPDATE conversations SET updated_at = ?, active_leaf = ? WHERE id = ?")
            .bind(m.now_ms)
            .bind(&m.id)
            .bind(&m.conversation_id)
            .execute(&mut *tx)
            .await?;
        affected(touched)?;
        let sql = format!(
            "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, provider, model, \
             temperature, max_tokens, citations, created_at, updated_at, lease_until) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {MESSAGE_COLUMNS}"
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
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        message_from_row(&row)
    }

    async fn get_message(&self, owner: UserId, id: &str) -> Result<MessageRecord, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ? AND conversation_id IN \
             (SELECT id FROM conversations WHERE user_id = ? AND deleted_at IS NULL)"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(owner.get())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        message_from_row(&row)
    }

    async fn update_message_content(&self, id: &str, content: &str, now_ms: i64) -> Result<bool, StoreError> {
        let stop: Option<bool> = sqlx::query_scalar(
            "UPDATE messages SET content = ?, updated_at = ? WHERE id = ? AND status = 'streaming' \
             RETURNING stop_requested <> 0",
        )
        .bind(content)
        .bind(now_ms)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(stop == Some(false))
    }

    async fn request_stop(&self, owner: UserId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE messages SET stop_requested = 1 WHERE id = ? AND status = 'streaming' \
             AND conversation_id IN (SELECT id FROM conversations WHERE user_id = ?)",
        )
        .bind(id)
        .bind(owner.get())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn finish_message(&self, id: &str, f: MessageFinish) -> Result<MessageRecord, StoreError> {
        let sql = format!(
            "UPDATE messages SET content = ?, status = ?, error = ?, notice = ?, provider = COALESCE(?, provider), \
             model = COALESCE(?, model), prompt_tokens = ?, completion_tokens = ?, ttft_ms = ?, \
             tokens_per_second = ?, duration_ms = ?, updated_at = ? WHERE id = ? RETURNING {MESSAGE_COLUMNS}"
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
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        message_from_row(&row)
    }

    async fn interrupt_streaming(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE messages SET {INTERRUPTED}, updated_at = ? WHERE status = 'streaming'"
        ))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn renew_answers(&self, ids: &[String], lease_until_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut stop = Vec::new();
        for id in ids {
            let asked: Option<bool> = sqlx::query_scalar(
                "UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'streaming' \
                 RETURNING stop_requested <> 0",
            )
            .bind(lease_until_ms)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if asked == Some(true) {
                stop.push(id.clone());
            }
        }
        Ok(stop)
    }

    async fn interrupt_abandoned(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE messages SET {INTERRUPTED}, updated_at = ? \
             WHERE status = 'streaming' AND (lease_until IS NULL OR lease_until < ?)"
        ))
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn interrupt_answers(&self, ids: &[String], now_ms: i64) -> Result<u64, StoreError> {
        let mut marked = 0;
        for id in ids {
            let done = sqlx::query(&format!(
                "UPDATE messages SET {INTERRUPTED}, updated_at = ? WHERE id = ? AND status = 'streaming'"
            ))
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
            marked += done.rows_affected();
        }
        Ok(marked)
    }

    async fn search_messages(
        &self,
        owner: UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHitRecord>, StoreError> {
        let Some(expression) = search_expression(query) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, \
             snippet(messages_fts, 0, char(2), char(3), '…', 16) AS snippet \
             FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
             JOIN conversations c ON c.id = m.conversation_id \
             WHERE messages_fts MATCH ? AND c.user_id = ? AND c.deleted_at IS NULL \
             ORDER BY rank LIMIT ?",
        )
        .bind(expression)
        .bind(owner.get())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SearchHitRecord {
                    message_id: row.try_get("id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    conversation_title: row.try_get("title")?,
                    role: role_from_row(row)?,
                    snippet: row.try_get("snippet")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn import_conversation(
        &self,
        owner: UserId,
        c: ImportedConversation,
    ) -> Result<ConversationRecord, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, model, active_leaf, system_prompt, temperature, \
             max_tokens, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(owner.get())
        .bind(&c.title)
        .bind(&c.model)
        .bind(&c.active_leaf)
        .bind(&c.settings.system_prompt)
        .bind(c.settings.temperature.map(f64::from))
        .bind(c.settings.max_tokens.map(i64::from))
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await?;
        for m in &c.messages {
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, error, provider, model, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(m.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_conversation(owner, &c.id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        // Closing the last connection checkpoints the WAL into the main file.
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn searches_become_safe_fts_expressions() {
        assert_eq!(
            super::search_expression("Dragon \"knight\" (NOT) fi").as_deref(),
            Some("\"dragon\" AND \"knight\" AND \"not\" AND \"fi\"*")
        );
        assert_eq!(super::search_expression(" ?! "), None);
    }
}
