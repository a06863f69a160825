//! Persistence. Services see only the [`Store`], [`DocumentStore`] and [`AccountStore`]
//! traits; [`sqlite::SqliteStore`] and [`postgres::PgStore`] (PostgreSQL with pgvector) each
//! implement all three, with the same behaviour, and [`open`] picks one by the URL. The SQL
//! the two share is written once (`sql_store`, `sql_accounts`, `sql_documents`), instantiated
//! for each; what differs (full-text and vector search, queue claims, lists of ids) is each
//! backend's dialect, in its own file. Records
//! here are storage-shaped; the API types are built from them at the edge.

pub mod accounts;
pub mod buckets;
pub mod documents;
pub mod migrate;
pub mod postgres;
mod postgres_documents;
pub mod records;
mod rows;
mod sql_accounts;
mod sql_documents;
mod sql_store;
pub mod sqlite;
mod sqlite_documents;
mod store;

pub use accounts::AccountStore;
pub use documents::DocumentStore;
pub use records::{
    ConversationRecord, ConversationSettingsRecord, ImportedConversation, ImportedMessage, MessageFinish,
    MessageRecord, NewMessage, NewTurn, SearchHitRecord,
};
pub use rows::keyword_terms;
pub use store::{ANSWER_LEASE_MS, Store, StoreError};

/// The three stores of one database, chosen by the URL's scheme (`sqlite://…` or `postgres://…`).
pub struct Stores {
    pub store: std::sync::Arc<dyn Store>,
    pub documents: std::sync::Arc<dyn DocumentStore>,
    pub accounts: std::sync::Arc<dyn AccountStore>,
    /// Whether other processes may share the database (PostgreSQL): then an answer still
    /// `streaming` at start may be another process's, and only expired leases are swept.
    pub shared: bool,
    /// Vector search inside the database (PostgreSQL); `None`: keep the vectors in memory.
    pub vectors: Option<std::sync::Arc<dyn documents::VectorSearch>>,
    /// Rate-limit buckets in the database, shared by every process on it (PostgreSQL);
    /// `None`: the one process keeps them in memory.
    pub buckets: Option<std::sync::Arc<dyn buckets::SharedBuckets>>,
}

pub async fn open(url: &str) -> Result<Stores, StoreError> {
    use std::sync::Arc;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = Arc::new(postgres::PgStore::open(url).await?);
        return Ok(Stores {
            store: pg.clone(),
            documents: pg.clone(),
            accounts: pg.clone(),
            shared: true,
            vectors: Some(pg.clone()),
            buckets: Some(pg),
        });
    }
    let db = Arc::new(sqlite::SqliteStore::open(url).await?);
    Ok(Stores {
        store: db.clone(),
        documents: db.clone(),
        accounts: db,
        shared: false,
        vectors: None,
        buckets: None,
    })
}
