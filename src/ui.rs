//! Rendering: compiled for the browser (hydrate) and the server (SSR). No server-only
//! imports here; data comes through the server functions in [`crate::api`].

pub mod account;
pub mod composer;
pub mod conversation;
pub mod conversation_settings;
pub mod documents;
pub mod highlight;
pub mod layout;
pub mod markdown;
pub mod message;
pub mod models;
pub mod search;
pub mod session;
pub mod sidebar;
pub mod state;
