//! PostgreSQL implementation of [`Store`] (with pgvector for chunk embeddings): migrations
//! embedded in the binary and applied at open. It behaves as the SQLite one does; full-text
//! search uses generated `tsvector` columns (see the migration) in place of FTS5.

use super::rows::{
    CONVERSATION_COLUMNS, INTERRUPTED, MESSAGE_COLUMNS, conversation_from_row, message_from_row,
    role_from_row, search_words,
};
use std::ops::Range;

use async_trait::async_trait;
use sqlx::{
    Row,
    postgres::{PgPool, PgPoolOptions, PgQueryResult},
};

use super::{
    records::{
        ConversationRecord, ConversationSettingsRecord, ImportedConversation, MessageFinish, MessageRecord,
        NewMessage, SearchHitRecord,
    },
    store::{ANSWER_LEASE_MS, Store, StoreError},
};
use crate::{api::types::MessageStatus, server::auth::UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/server/storage/migrations/postgres");

/// Connections kept open; PostgreSQL serves each in its own process.
const MAX_CONNECTIONS: u32 = 10;

/// Tokens around the matches in a search snippet (as FTS5's `snippet(…, 16)`).
const SNIPPET_TOKENS: usize = 16;

pub struct PgStore {
    pool: PgPool,
    /// Embedding sizes whose HNSW index this store has made sure of.
    pub(super) hnsw_dims: std::sync::Mutex<Vec<usize>>,
    /// Below this many chunks in the database, vector search compares with every chunk
    /// (exact, and fast at that size) instead of walking the HNSW index (approximate).
    pub(super) exact_below: std::sync::atomic::AtomicU64,
}

impl PgStore {
    /// Makes vector search use the HNSW index from `chunks` chunks on (tests).
    #[cfg(test)]
    pub fn search_exactly_below(&self, chunks: u64) {
        self.exact_below
            .store(chunks, std::sync::atomic::Ordering::Relaxed);
    }

    /// Connects to the database at `url` (which must exist) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // Vector search settings, once per connection rather than per query: iterative
            // index scans (so owner and collection filters still yield k neighbours) and a
            // wider candidate list than pgvector's default 40 (better recall for k = 20).
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for setting in [
                        "SET hnsw.iterative_scan = relaxed_order",
                        "SET hnsw.ef_search = 100",
                        // A plan for each search's own words: a generic plan of a prepared
                        // keyword search cannot tell common words from rare ones and scans
                        // serially (1.6x slower at 100k chunks).
                        "SET plan_cache_mode = force_custom_plan",
                    ] {
                        sqlx::Executor::execute(&mut *conn, setting).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            hnsw_dims: std::sync::Mutex::default(),
            exact_below: std::sync::atomic::AtomicU64::new(super::postgres_documents::EXACT_BELOW),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
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
            "UPDATE conversations SET {column} = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL"
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
pub(super) fn affected(done: PgQueryResult) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The words as a `tsquery` that cannot be a syntax error (words are letters and digits
/// only): every word must match, the last one as a prefix (results appear while typing).
fn search_expression(words: &[String]) -> Option<String> {
    let (last, rest) = words.split_last()?;
    let mut terms = rest.to_vec();
    terms.push(format!("{last}:*"));
    Some(terms.join(" & "))
}

/// Byte ranges of the words of `text`, as FTS5's `unicode61` tokenizer cuts them: runs of
/// letters and digits.
fn token_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push(s..text.len());
    }
    spans
}

/// Byte ranges of `text` that `marked` marks: `marked` is `text` with its ASCII punctuation
/// blanked (character for character, see `stoa_search_text` in the migration) and matches
/// between \u{2} and \u{3}, as `ts_headline` returns it.
fn marked_ranges(text: &str, marked: &str) -> Vec<Range<usize>> {
    let mut offsets = text.char_indices().map(|(i, _)| i).chain([text.len()]);
    let mut at = offsets.next().unwrap_or(0);
    let mut open = None;
    let mut ranges = Vec::new();
    for c in marked.chars() {
        match c {
            '\u{2}' => open = Some(at),
            '\u{3}' => ranges.extend(open.take().map(|start| start..at)),
            _ => at = offsets.next().unwrap_or(text.len()),
        }
    }
    ranges
}

/// The query word a matched token stands for (the one sharing its longest prefix), so a
/// word found again scores less, as FTS5 scores a phrase seen again.
fn phrase_of(token: &str, words: &[String]) -> usize {
    let token = token.to_lowercase();
    let shared = |w: &String| token.chars().zip(w.chars()).take_while(|(a, b)| a == b).count();
    (0..words.len())
        .max_by_key(|&i| (shared(&words[i]), std::cmp::Reverse(i)))
        .unwrap_or(0)
}

/// The tokens that begin a sentence: the first, and any after `.` or `:` and a space.
fn sentence_starts(text: &str, tokens: &[Range<usize>]) -> Vec<usize> {
    (0..tokens.len())
        .filter(|&i| {
            let before = &text[..tokens[i].start];
            let trimmed = before.trim_end_matches([' ', '\t', '\n', '\r']);
            i == 0 || (trimmed.len() < before.len() && (trimmed.ends_with('.') || trimmed.ends_with(':')))
        })
        .collect()
}

/// FTS5's score of the window of [`SNIPPET_TOKENS`] from `start`: 1000 for each query word
/// in it, 1 for each repetition. Also the start that centres its matches. `hits` are in
/// token order, so the window's are found by binary search: a message with a hundred
/// thousand matches costs n log n, not n².
fn window_score(hits: &[(usize, usize)], start: usize, n_tokens: usize, phrases: usize) -> (u64, usize) {
    let mut seen = vec![false; phrases];
    let (mut score, mut first, mut last) = (0, None, 0);
    let from = hits.partition_point(|(at, _)| *at < start);
    let to = hits.partition_point(|(at, _)| *at < start + SNIPPET_TOKENS);
    for &(at, phrase) in &hits[from..to.max(from)] {
        score += if seen[phrase] { 1 } else { 1000 };
        seen[phrase] = true;
        first.get_or_insert(at);
        last = at + 1;
    }
    let first = first.unwrap_or(start);
    let centred = first as i64 - (SNIPPET_TOKENS as i64 - (last as i64 - first as i64)) / 2;
    let centred = centred.min(n_tokens as i64 - SNIPPET_TOKENS as i64).max(0);
    (score, centred as usize)
}

/// The first token of the snippet, chosen as FTS5's `snippet()` does: the best scoring
/// window around a match, or from the start of its sentence (preferred a little).
fn snippet_start(hits: &[(usize, usize)], sentences: &[usize], n_tokens: usize, phrases: usize) -> usize {
    let (mut best_score, mut best_start) = (0, 0);
    for &(at, _) in hits {
        let (score, centred) = window_score(hits, at, n_tokens, phrases);
        if score > best_score {
            (best_score, best_start) = (score, centred);
        }
        if n_tokens > SNIPPET_TOKENS {
            let before = sentences.partition_point(|&s| s <= at);
            let sentence = before.checked_sub(1).map_or(0, |i| sentences[i]);
            if sentence < at {
                let bonus = if sentence == 0 { 120 } else { 100 };
                let score = window_score(hits, sentence, n_tokens, phrases).0 + bonus;
                if score > best_score {
                    (best_score, best_start) = (score, sentence);
                }
            }
        }
    }
    best_start
}

/// The part of `text` around its best matches, with matches between \u{2} and \u{3} and
/// `…` where text was left out: what SQLite's `snippet(messages_fts, 0, char(2), char(3),
/// '…', 16)` returns. `marked` is the `ts_headline` of the whole text (see [`marked_ranges`]).
fn snippet(text: &str, marked: &str, words: &[String]) -> String {
    let marks = marked_ranges(text, marked);
    let tokens = token_spans(text);
    let hits: Vec<(usize, usize)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            let next = marks.partition_point(|m| m.end <= t.start);
            marks.get(next).is_some_and(|m| m.start <= t.start)
        })
        .map(|(i, t)| (i, phrase_of(&text[t.clone()], words)))
        .collect();
    let start = snippet_start(
        &hits,
        &sentence_starts(text, &tokens),
        tokens.len(),
        words.len().max(1),
    );
    let end = start + SNIPPET_TOKENS - 1;
    let mut out = String::new();
    let mut at = 0;
    if start > 0 {
        out.push('…');
        at = tokens[start].start;
    }
    for &(i, _) in hits.iter().filter(|(i, _)| (start..=end).contains(i)) {
        out.push_str(&text[at..tokens[i].start]);
        out.push('\u{2}');
        out.push_str(&text[tokens[i].clone()]);
        out.push('\u{3}');
        at = tokens[i].end;
    }
    if end + 1 >= tokens.len() {
        out.push_str(&text[at..]);
    } else {
        out.push_str(&text[at..tokens[end].end]);
        out.push('…');
    }
    out
}

#[async_trait]
impl Store for PgStore {
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
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE user_id = $1 AND deleted_at IS NULL \
             ORDER BY updated_at DESC, id DESC LIMIT $2"
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
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
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
            "UPDATE conversations SET active_leaf = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL \
             AND EXISTS (SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2)",
        )
        .bind(leaf)
        .bind(id)
        .bind(owner.get())
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
            "UPDATE conversations SET system_prompt = $1, temperature = $2, max_tokens = $3 \
             WHERE id = $4 AND user_id = $5 AND deleted_at IS NULL",
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
            "UPDATE conversations SET deleted_at = $1 WHERE id = $2 AND user_id = $3 AND (deleted_at IS NULL) = $4",
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
        let done = sqlx::query("DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at < $1")
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
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 \
             AND conversation_id IN (SELECT id FROM conversations WHERE user_id = $2) ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(conversation_id)
            .bind(owner.get())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn insert_message(&self, m: NewMessage) -> Result<MessageRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE conversations SET updated_at = $1, active_leaf = $2 WHERE id = $3")
            .bind(m.now_ms)
            .bind(&m.id)
            .bind(&m.conversation_id)
            .execute(&mut *tx)
            .await?;
        affected(touched)?;
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
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        message_from_row(&row)
    }

    async fn get_message(&self, owner: UserId, id: &str) -> Result<MessageRecord, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id IN \
             (SELECT id FROM conversations WHERE user_id = $2 AND deleted_at IS NULL)"
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
            "UPDATE messages SET content = $1, updated_at = $2 WHERE id = $3 AND status = 'streaming' \
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
            "UPDATE messages SET stop_requested = 1 WHERE id = $1 AND status = 'streaming' \
             AND conversation_id IN (SELECT id FROM conversations WHERE user_id = $2)",
        )
        .bind(id)
        .bind(owner.get())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn finish_message(&self, id: &str, f: MessageFinish) -> Result<MessageRecord, StoreError> {
        let sql = format!(
            "UPDATE messages SET content = $1, status = $2, error = $3, notice = $4, \
             provider = COALESCE($5, provider), model = COALESCE($6, model), prompt_tokens = $7, \
             completion_tokens = $8, ttft_ms = $9, tokens_per_second = $10, duration_ms = $11, updated_at = $12 \
             WHERE id = $13 RETURNING {MESSAGE_COLUMNS}"
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
            "UPDATE messages SET {INTERRUPTED}, updated_at = $1 WHERE status = 'streaming'"
        ))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn renew_answers(&self, ids: &[String], lease_until_ms: i64) -> Result<Vec<String>, StoreError> {
        let stop = sqlx::query_scalar(
            "WITH renewed AS (UPDATE messages SET lease_until = $1 WHERE id = ANY($2) \
             AND status = 'streaming' RETURNING id, stop_requested) \
             SELECT id FROM renewed WHERE stop_requested <> 0",
        )
        .bind(lease_until_ms)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(stop)
    }

    async fn interrupt_abandoned(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE messages SET {INTERRUPTED}, updated_at = $1 \
             WHERE status = 'streaming' AND (lease_until IS NULL OR lease_until < $1)"
        ))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn interrupt_answers(&self, ids: &[String], now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE messages SET {INTERRUPTED}, updated_at = $1 WHERE id = ANY($2) AND status = 'streaming'"
        ))
        .bind(now_ms)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn search_messages(
        &self,
        owner: UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHitRecord>, StoreError> {
        let words = search_words(query);
        let Some(expression) = search_expression(&words) else {
            return Ok(Vec::new());
        };
        // The hits first, then their text with every match marked (only for those kept);
        // the snippet around the best matches is cut from it here, as FTS5 cuts it.
        let rows = sqlx::query(
            "SELECT h.id, h.conversation_id, h.title, h.role, h.created_at, h.content, \
             ts_headline('stoa_english', stoa_search_text(h.content), h.q, \
             'HighlightAll=true, StartSel=' || chr(2) || ', StopSel=' || chr(3)) AS marked \
             FROM (SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, m.content, q, \
             ts_rank_cd(m.search, q, 1) AS rank \
             FROM messages m JOIN conversations c ON c.id = m.conversation_id, \
             to_tsquery('stoa_english', $1) q \
             WHERE m.search @@ q AND m.status <> 'streaming' AND c.user_id = $2 AND c.deleted_at IS NULL \
             ORDER BY rank DESC, m.id LIMIT $3) h \
             ORDER BY h.rank DESC, h.id",
        )
        .bind(expression)
        .bind(owner.get())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        // Cutting snippets out of long messages is CPU work: not on the async threads.
        tokio::task::spawn_blocking(move || {
            rows.iter()
                .map(|row| {
                    let content: String = row.try_get("content")?;
                    let marked: String = row.try_get("marked")?;
                    Ok(SearchHitRecord {
                        message_id: row.try_get("id")?,
                        conversation_id: row.try_get("conversation_id")?,
                        conversation_title: row.try_get("title")?,
                        role: role_from_row(row)?,
                        snippet: snippet(&content, &marked, &words),
                        created_at: row.try_get("created_at")?,
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("cutting search snippets failed: {e}")))?
    }

    async fn import_conversation(
        &self,
        owner: UserId,
        c: ImportedConversation,
    ) -> Result<ConversationRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO conversations (id, user_id, title, model, active_leaf, system_prompt, temperature, \
             max_tokens, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(query: &str) -> Vec<String> {
        search_words(query)
    }

    #[test]
    fn searches_become_safe_tsqueries() {
        assert_eq!(
            search_expression(&words("Dragon \"knight\" (NOT) fi")).as_deref(),
            Some("dragon & knight & not & fi:*")
        );
        assert_eq!(search_expression(&words(" ?! ")), None);
    }

    #[test]
    fn short_texts_are_whole_snippets() {
        let text = "Tell me about the zeppelin hangar.";
        let marked = "Tell me about the \u{2}zeppelin\u{3} \u{2}hangar\u{3} ";
        assert_eq!(
            snippet(text, marked, &words("zeppelin hang")),
            "Tell me about the \u{2}zeppelin\u{3} \u{2}hangar\u{3}."
        );
    }

    #[test]
    fn long_texts_are_cut_around_their_matches() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen \
                    fifteen sixteen seventeen eighteen nineteen twenty dragon twentytwo twentythree \
                    twentyfour twentyfive twentysix twentyseven twentyeight twentynine thirty thirtyone \
                    thirtytwo thirtythree thirtyfour";
        let marked = text.replace("dragon", "\u{2}dragon\u{3}");
        let cut = snippet(text, &marked, &words("drag"));
        assert!(cut.starts_with("…"), "{cut}");
        assert!(cut.ends_with("…"), "{cut}");
        assert!(cut.contains("\u{2}dragon\u{3}"), "{cut}");
        assert_eq!(token_spans(&cut).len(), SNIPPET_TOKENS, "{cut}");
    }

    #[test]
    fn a_sentence_start_is_preferred() {
        let text = "Filler words come first here and keep going on and on for a while now. \
                    The dragon sleeps in its cave under the mountain for many long years until woken.";
        let marked = text.replace("dragon", "\u{2}dragon\u{3}");
        let cut = snippet(text, &marked, &words("dragon"));
        assert!(cut.starts_with("…The \u{2}dragon\u{3} sleeps"), "{cut}");
    }

    #[test]
    fn a_message_with_a_hundred_thousand_matches_gets_its_snippet() {
        // Quadratic in the matches, this took hours; n log n, a blink.
        let text = "spam ".repeat(100_000);
        let marked = "\u{2}spam\u{3} ".repeat(100_000);
        let cut = snippet(&text, &marked, &words("spam"));
        assert!(cut.starts_with("\u{2}spam\u{3}"), "{cut}");
        assert_eq!(token_spans(&cut).len(), SNIPPET_TOKENS, "{cut}");
    }

    #[test]
    fn marks_map_back_onto_punctuated_text() {
        let text = "see zeppelin.com/x, or a@zeppelin — ok";
        let marked = "see \u{2}zeppelin\u{3} com x  or a \u{2}zeppelin\u{3} — ok";
        assert_eq!(marked_ranges(text, marked), vec![4..12, 25..33]);
    }
}
