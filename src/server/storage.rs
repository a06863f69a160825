//! Persistence. Services see only the [`Store`] and [`DocumentStore`] traits;
//! [`sqlite::SqliteStore`] implements both. Records here are storage-shaped; the API types
//! are built from them at the edge.

pub mod documents;
pub mod records;
pub mod sqlite;
mod sqlite_documents;
mod store;

pub use documents::DocumentStore;
pub use records::{ConversationRecord, MessageFinish, MessageRecord, NewMessage};
pub use store::{Store, StoreError};
