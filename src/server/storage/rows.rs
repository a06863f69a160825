//! What the SQLite and PostgreSQL stores share: the columns they select, how a row becomes
//! a record, and how a search's words are picked. Only the SQL around them differs.

use super::{
    StoreError,
    accounts::{ApiKeyRecord, UserRecord},
    documents::{ClaimedDocument, CollectionRecord, DocumentRecord},
    records::{ConversationRecord, MessageRecord, UsageRecord},
};
use crate::api::types::Role;

/// Reading a column of a row, the same way for both databases (integers are 64-bit and
/// floats double precision in both schemas).
pub(super) trait Fields {
    fn string(&self, col: &str) -> Result<String, StoreError>;
    fn opt_string(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn opt_float(&self, col: &str) -> Result<Option<f64>, StoreError>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError>;
}

macro_rules! fields {
    ($row:ty) => {
        impl Fields for $row {
            fn string(&self, col: &str) -> Result<String, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_string(&self, col: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn opt_float(&self, col: &str) -> Result<Option<f64>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
                Ok(sqlx::Row::try_get(self, col)?)
            }
        }
    };
}

fields!(sqlx::sqlite::SqliteRow);
fields!(sqlx::postgres::PgRow);

pub(super) const CONVERSATION_COLUMNS: &str = "id, title, model, active_leaf, system_prompt, temperature, max_tokens, response_schema, created_at, updated_at";

pub(super) const MESSAGE_COLUMNS: &str = "id, conversation_id, parent_id, role, content, status, error, notice, citations, provider, model, \
     prompt_tokens, completion_tokens, ttft_ms, tokens_per_second, duration_ms, trace, temperature, \
     max_tokens, created_at, updated_at";

pub(super) const DOCUMENT_COLUMNS: &str = "id, collection_id, title, file_name, media_type, source, tags, content_hash, \
     size_bytes, status, progress_done, progress_total, error, chunk_count, version, replaces, created_at, updated_at";

/// A collection `c` with the number of its documents (column `n`).
pub(super) const COLLECTION_COLUMNS: &str =
    "c.id, c.name, c.created_at, (SELECT count(*) FROM documents d WHERE d.collection_id = c.id) AS n";

/// A document a worker may take, given the time now (a parameter, `now`): waiting, or
/// held by a lease that ran out.
pub(super) fn claimable(now: &str) -> String {
    format!(
        "upload IS NOT NULL AND (status = 'queued' OR (status IN ('extracting', 'embedding') AND lease_until < {now}))"
    )
}

/// Why an answer stopped when its process did.
pub(super) const INTERRUPTED: &str =
    "status = 'interrupted', error = 'the server stopped while this answer was being written'";

/// A document some worker is processing.
/// A document not yet ready nor failed (queued, or being read by a worker).
pub(super) const UNFINISHED: &str = "status NOT IN ('ready', 'failed')";

pub(super) const HELD: &str = "upload IS NOT NULL AND status IN ('extracting', 'embedding')";

pub(super) const CLAIMED_COLUMNS: &str = "id, user_id, collection_id, file_name, upload, attempts";

pub(super) const USER_COLUMNS: &str =
    "users.id, users.name, users.password_hash, users.role, users.disabled_at, users.created_at";

fn count(row: &impl Fields, col: &str) -> Result<u32, StoreError> {
    Ok(row.int(col)?.clamp(0, u32::MAX as i64) as u32)
}

fn opt_u32(row: &impl Fields, col: &str) -> Result<Option<u32>, StoreError> {
    Ok(row.opt_int(col)?.map(|v| v.clamp(0, u32::MAX as i64) as u32))
}

fn opt_u64(row: &impl Fields, col: &str) -> Result<Option<u64>, StoreError> {
    Ok(row.opt_int(col)?.map(|v| v.max(0) as u64))
}

fn opt_f32(row: &impl Fields, col: &str) -> Result<Option<f32>, StoreError> {
    Ok(row.opt_float(col)?.map(|v| v as f32))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {value}"))
}

pub(super) fn conversation_from_row(row: &impl Fields) -> Result<ConversationRecord, StoreError> {
    Ok(ConversationRecord {
        id: row.string("id")?,
        title: row.string("title")?,
        model: row.opt_string("model")?,
        active_leaf: row.opt_string("active_leaf")?,
        system_prompt: row.opt_string("system_prompt")?,
        temperature: opt_f32(row, "temperature")?,
        max_tokens: opt_u32(row, "max_tokens")?,
        response_schema: row.opt_string("response_schema")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) fn role_from_row(row: &impl Fields) -> Result<Role, StoreError> {
    named(row, "role")
}

/// A column holding one of an enum's names.
fn named<T: std::str::FromStr>(row: &impl Fields, column: &str) -> Result<T, StoreError> {
    let value = row.string(column)?;
    value.parse().map_err(|_| corrupt(column, &value))
}

pub(super) fn message_from_row(row: &impl Fields) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        id: row.string("id")?,
        conversation_id: row.string("conversation_id")?,
        parent_id: row.opt_string("parent_id")?,
        role: role_from_row(row)?,
        content: row.string("content")?,
        status: named(row, "status")?,
        error: row.opt_string("error")?,
        notice: row.opt_string("notice")?,
        citations: match row.opt_string("citations")? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("citations: {e}")))?
            }
            None => Vec::new(),
        },
        usage: UsageRecord {
            provider: row.opt_string("provider")?,
            model: row.opt_string("model")?,
            prompt_tokens: opt_u32(row, "prompt_tokens")?,
            completion_tokens: opt_u32(row, "completion_tokens")?,
            ttft_ms: opt_u64(row, "ttft_ms")?,
            tokens_per_second: opt_f32(row, "tokens_per_second")?,
            duration_ms: opt_u64(row, "duration_ms")?,
        },
        trace: match row.opt_string("trace")? {
            Some(json) => {
                Some(serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("trace: {e}")))?)
            }
            None => None,
        },
        temperature: opt_f32(row, "temperature")?,
        max_tokens: opt_u32(row, "max_tokens")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(super) fn document_from_row(row: &impl Fields) -> Result<DocumentRecord, StoreError> {
    let tags = row.string("tags")?;
    Ok(DocumentRecord {
        id: row.string("id")?,
        collection_id: row.opt_string("collection_id")?,
        title: row.string("title")?,
        file_name: row.string("file_name")?,
        media_type: row.string("media_type")?,
        source: row.opt_string("source")?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
        content_hash: row.string("content_hash")?,
        size_bytes: row.int("size_bytes")?.max(0) as u64,
        status: named(row, "status")?,
        progress_done: count(row, "progress_done")?,
        progress_total: count(row, "progress_total")?,
        error: row.opt_string("error")?,
        chunk_count: count(row, "chunk_count")?,
        version: count(row, "version")?,
        replaces: row.opt_string("replaces")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A collection with the number of its documents in column `n`.
pub(super) fn collection_from_row(row: &impl Fields) -> Result<CollectionRecord, StoreError> {
    Ok(CollectionRecord {
        id: row.string("id")?,
        name: row.string("name")?,
        document_count: count(row, "n")?,
        created_at: row.int("created_at")?,
    })
}

pub(super) fn claimed_from_row(row: &impl Fields) -> Result<ClaimedDocument, StoreError> {
    Ok(ClaimedDocument {
        id: row.string("id")?,
        owner: row.int("user_id")?,
        collection_id: row.opt_string("collection_id")?,
        file_name: row.string("file_name")?,
        upload: row.bytes("upload")?,
        attempts: count(row, "attempts")?,
    })
}

pub(super) fn user_from_row(row: &impl Fields) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.int("id")?,
        name: row.string("name")?,
        password_hash: row.opt_string("password_hash")?,
        admin: row.string("role")? == "admin",
        disabled: row.opt_int("disabled_at")?.is_some(),
        created_at: row.int("created_at")?,
    })
}

pub(super) fn key_from_row(row: &impl Fields) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: row.string("id")?,
        user_id: row.int("user_id")?,
        name: row.string("name")?,
        prefix: row.string("prefix")?,
        created_at: row.int("created_at")?,
        last_used_at: row.opt_int("last_used_at")?,
    })
}

/// A write that matched no row (another user's, or none at all) is [`StoreError::NotFound`].
pub(super) fn affected(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A unique-constraint failure is a conflict (a taken name), not a fault.
pub(super) fn conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(e),
    }
}

/// Words too common to say anything about relevance; matching them would rank almost
/// every chunk (and make the search slow on large corpora).
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i",
    "in", "is", "it", "of", "on", "or", "should", "that", "the", "this", "to", "was", "what", "when",
    "where", "which", "who", "why", "will", "with", "you", "my", "me", "we", "our", "your", "there", "their",
    "they",
];

/// The words of a document search, lower-cased: letters and digits only (so no query
/// syntax can get through), longer than one character, stop words dropped, at most 32.
/// Any of them may match; chunks with more of them rank higher.
pub fn keyword_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1 && !STOPWORDS.contains(&w.to_lowercase().as_str()))
        .take(32)
        .map(str::to_lowercase)
        .collect()
}

/// A keyword-search term in more chunks than this share of all of them (and than
/// `COMMON_FROM`) is left out of the query: its BM25 weight is small (ln 19 ≈ 2.9 against ~9
/// for a word in 20 of 100k chunks) but it makes the search visit and rank a large part of the
/// index. On 100k chunks an OR query over such words took 100–300 ms (bench/rag.rs).
const COMMON_SHARE: f64 = 0.05;
/// Below this many chunks for a word nothing is left out: small corpora rank as before.
const COMMON_FROM: u64 = 2_000;

/// The terms worth searching for, given in how many of `total` chunks each one occurs
/// (`None`: not known, kept): the common ones are left out, unless every term is common,
/// then the rarest one stays, so a query never matches nothing because its words are frequent.
pub(super) fn selective_terms<T: Clone>(terms: &[(T, Option<u64>)], total: u64) -> Vec<T> {
    let limit = ((total as f64 * COMMON_SHARE) as u64).max(COMMON_FROM);
    let kept: Vec<T> = terms
        .iter()
        .filter(|(_, df)| df.is_none_or(|df| df <= limit))
        .map(|(t, _)| t.clone())
        .collect();
    if !kept.is_empty() {
        return kept;
    }
    terms
        .iter()
        .min_by_key(|(_, df)| df.unwrap_or(0))
        .map(|(t, _)| vec![t.clone()])
        .unwrap_or_default()
}

/// The words of a message search, lower-cased, letters and digits only, at most 16: every
/// one must match, the last as a prefix (results appear while typing).
pub(super) fn search_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::selective_terms;

    #[test]
    fn common_terms_are_left_out_of_large_corpora_only() {
        let terms = [("rare", Some(20)), ("common", Some(30_000)), ("new", None)];
        assert_eq!(selective_terms(&terms, 100_000), ["rare", "new"]);
        // In 10k chunks no word is "common" enough to matter (the 2,000 floor).
        let small = [("rare", Some(2)), ("common", Some(1_900))];
        assert_eq!(selective_terms(&small, 10_000), ["rare", "common"]);
        // Only common words: the rarest of them is searched.
        let frequent = [("a", Some(60_000)), ("b", Some(40_000)), ("c", Some(90_000))];
        assert_eq!(selective_terms(&frequent, 100_000), ["b"]);
        assert!(selective_terms::<&str>(&[], 100).is_empty());
    }
}
