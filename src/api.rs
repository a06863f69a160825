//! The typed contract between the browser and the server.
//!
//! Everything in here compiles for both targets: the WASM UI validates with the same
//! functions the server runs as the authority, and the server functions carry the same
//! structs over the wire.

pub mod accounts;
pub mod chat;
pub mod conversations;
pub mod csrf;
pub mod documents;
pub mod error;
pub mod events;
pub mod export;
pub mod generate;
pub mod session;
pub mod trace;
pub mod types;
pub mod validation;

pub use error::{ApiError, ErrorCode};
