//! PostgreSQL implementation of [`Store`] (with pgvector for chunk embeddings): migrations
//! embedded in the binary and applied at open. It behaves as the SQLite one does; full-text
//! search uses generated `tsvector` columns (see the migration) in place of FTS5.

use super::rows::{role_from_row, search_words};
use std::ops::Range;

use async_trait::async_trait;

use super::sql_store::MessageSearch;
use sqlx::{
    Row,
    postgres::{PgPool, PgPoolOptions},
};

use super::{records::SearchHitRecord, store::StoreError};
use crate::server::auth::UserId;

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

    /// A transaction that writes (row locks are taken by the statements themselves).
    pub(super) async fn write_tx(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// The transaction of a sign-up, holding the lock that makes sign-ups take turns (reads
    /// go on): two first accounts would otherwise both take over user 1.
    pub(super) async fn sign_up_tx(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
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
impl MessageSearch for PgStore {
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
        .fetch_all(self.pool())
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
