//! Persistence. Services see only the [`Store`] trait; [`sqlite::SqliteStore`] is the
//! default implementation. Records here are storage-shaped; the API types are built from
//! them at the edge.

pub mod records;
pub mod sqlite;
mod store;

pub use records::{ConversationRecord, MessageFinish, MessageRecord, NewMessage};
pub use store::{Store, StoreError};
