use async_trait::async_trait;

use crate::server::auth::UserId;

use super::records::{
    ConversationRecord, ConversationSettingsRecord, ImportedConversation, MessageFinish, MessageRecord,
    NewMessage, NewTurn, SearchHitRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique value (a user name) is taken.
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// How long an answer being written stays its process's without a renewal; the chat
/// service renews the leases of its running answers every third of that.
pub const ANSWER_LEASE_MS: i64 = 30_000;

/// Everything the services persist. Object-safe, so an `Arc<dyn Store>` is SQLite or
/// PostgreSQL without the services noticing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates an empty conversation of `owner`.
    ///
    /// Every method taking an `owner` only sees that user's rows: another user's id is
    /// [`StoreError::NotFound`].
    async fn create_conversation(
        &self,
        owner: UserId,
        id: &str,
        title: &str,
        now_ms: i64,
    ) -> Result<ConversationRecord, StoreError>;

    /// Conversations, most recently active first.
    async fn list_conversations(
        &self,
        owner: UserId,
        limit: u32,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    async fn get_conversation(&self, owner: UserId, id: &str) -> Result<ConversationRecord, StoreError>;

    async fn rename_conversation(&self, owner: UserId, id: &str, title: &str) -> Result<(), StoreError>;

    /// Moves a conversation to the trash (`trashed`), or back out of it. A trashed
    /// conversation is invisible to every other method.
    async fn trash_conversation(
        &self,
        owner: UserId,
        id: &str,
        trashed: bool,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Deletes for good, with their messages, conversations trashed before `before_ms`.
    async fn purge_trash(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Remembers the `provider/model` a conversation answers with.
    async fn set_conversation_model(&self, owner: UserId, id: &str, model: &str) -> Result<(), StoreError>;

    /// Shows the branch ending at `leaf` (a message of the conversation).
    async fn set_active_leaf(&self, owner: UserId, id: &str, leaf: &str) -> Result<(), StoreError>;

    /// Sets a conversation's system prompt and default parameters.
    async fn set_conversation_settings(
        &self,
        owner: UserId,
        id: &str,
        settings: &ConversationSettingsRecord,
    ) -> Result<(), StoreError>;

    /// A conversation's messages of every branch, oldest first.
    async fn list_messages(
        &self,
        owner: UserId,
        conversation_id: &str,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// Stores a message, makes it the conversation's shown leaf and bumps its activity time.
    async fn insert_message(&self, message: NewMessage) -> Result<MessageRecord, StoreError>;

    /// Starts a turn of `owner`'s conversation in one transaction: the question (if new),
    /// the title and model (if given), the streaming answer. Either all are stored or none,
    /// so a failure never leaves a question without its answer. Returns the stored question
    /// (when it was new) and the answer.
    async fn start_turn(
        &self,
        owner: UserId,
        turn: NewTurn,
    ) -> Result<(Option<MessageRecord>, MessageRecord), StoreError>;

    /// One of `owner`'s messages (in a conversation not in the trash).
    async fn get_message(&self, owner: UserId, id: &str) -> Result<MessageRecord, StoreError>;

    /// Saves the text of a message that is still streaming. False when the answer should
    /// end: someone asked another process to stop it, or it is no longer streaming (its
    /// conversation was deleted, or it was marked interrupted).
    async fn update_message_content(&self, id: &str, content: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Asks the process writing `owner`'s answer to stop it (it checks when it saves the
    /// text or renews the lease). False when the answer is not streaming or not theirs.
    async fn request_stop(&self, owner: UserId, id: &str) -> Result<bool, StoreError>;

    /// Saves the final text, status, usage and timings of a message.
    async fn finish_message(&self, id: &str, finish: MessageFinish) -> Result<MessageRecord, StoreError>;

    /// Marks every message still `streaming` as `interrupted` (after a crash, when this is
    /// the only process on the database). Returns how many were marked.
    async fn interrupt_streaming(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Extends the leases of answers this process is writing; returns those of them
    /// someone asked to stop (see [`Store::request_stop`]).
    async fn renew_answers(&self, ids: &[String], lease_until_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Marks `streaming` answers whose lease ran out (their process died) as `interrupted`;
    /// answers other live processes are writing are left alone.
    async fn interrupt_abandoned(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Marks these answers, if still `streaming`, as `interrupted` (this process's, at shutdown).
    async fn interrupt_answers(&self, ids: &[String], now_ms: i64) -> Result<u64, StoreError>;

    /// `owner`'s messages (not in the trash, not still streaming) matching all the words
    /// of `query` (the last one as a prefix), best first.
    async fn search_messages(
        &self,
        owner: UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHitRecord>, StoreError>;

    /// Stores an imported conversation of `owner` with all its messages, in one transaction.
    async fn import_conversation(
        &self,
        owner: UserId,
        conversation: ImportedConversation,
    ) -> Result<ConversationRecord, StoreError>;

    /// Whether the database answers (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flushes and closes connections; called once at shutdown.
    async fn close(&self);
}
