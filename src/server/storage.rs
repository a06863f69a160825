//! Persistence. Services see only the [`Store`], [`DocumentStore`] and [`AccountStore`]
//! traits; [`sqlite::SqliteStore`] implements all three. Records here are storage-shaped; the API types
//! are built from them at the edge.

pub mod accounts;
pub mod documents;
pub mod records;
pub mod sqlite;
mod sqlite_accounts;
mod sqlite_documents;
mod store;

pub use accounts::AccountStore;
pub use documents::DocumentStore;
pub use records::{
    ConversationRecord, ConversationSettingsRecord, ImportedConversation, ImportedMessage, MessageFinish,
    MessageRecord, NewMessage, SearchHitRecord,
};
pub use store::{Store, StoreError};
