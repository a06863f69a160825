//! SQLite implementation of [`Store`]: one file, WAL journal, migrations embedded in the
//! binary and applied at open.

use super::rows::{role_from_row, search_words};
use std::{str::FromStr, time::Duration};

use async_trait::async_trait;

use super::sql_store::MessageSearch;
use sqlx::{
    ConnectOptions, Connection, Row,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};

use super::{records::SearchHitRecord, store::StoreError};
use crate::server::auth::UserId;

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

    /// The transaction of a sign-up: the write lock serialises sign-ups already.
    pub(super) async fn sign_up_tx(&self) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, sqlx::Error> {
        self.write_tx().await
    }
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
impl MessageSearch for SqliteStore {
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
        .fetch_all(self.pool())
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
