//! The chat service: everything between "the user pressed Enter" and "the answer is
//! stored". Validation happens before any token is spent; the user message is stored
//! before generation starts; the answer is stored while it streams and ends with a status.

mod branches;
pub mod completion;
mod conversations;
mod error;
mod export;
mod form;
mod generation;
mod prompt;
mod remote;
mod service;
pub mod structured;
mod task;
mod views;

pub use error::ChatError;
pub use form::{ChatForm, FormOutcome};
pub use service::{ChatService, Rag};
