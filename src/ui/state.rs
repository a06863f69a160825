//! Client-side state shared across pages.

use leptos::prelude::*;

use crate::api::types::GenerationParams;

/// What the composer sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub message: String,
    pub params: GenerationParams,
    /// `provider/model`; `None` lets the server choose (conversation's model or default).
    pub model: Option<String>,
    pub trim_history: bool,
}

/// A message typed on the new-chat page, handed to the conversation page after the
/// conversation was created, so it is sent from there.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSend {
    pub conversation_id: String,
    pub outgoing: Outgoing,
}

#[derive(Clone, Copy)]
pub struct ClientState {
    /// Bumped whenever the conversation list may have changed.
    pub conversations_version: RwSignal<u32>,
    pub pending: RwSignal<Option<PendingSend>>,
    /// Sampling parameters, kept across conversations in this tab.
    pub params: RwSignal<GenerationParams>,
    /// Leave old messages out of the prompt when a chat outgrows the model's window
    /// (on by default, as in other chat apps; each answer says when it happened).
    pub trim_history: RwSignal<bool>,
    /// Model picked for new chats in this tab.
    pub model: RwSignal<Option<String>>,
}

impl ClientState {
    pub fn new() -> Self {
        Self {
            conversations_version: RwSignal::new(0),
            pending: RwSignal::new(None),
            params: RwSignal::new(GenerationParams::default()),
            trim_history: RwSignal::new(true),
            model: RwSignal::new(None),
        }
    }

    pub fn refresh_conversations(&self) {
        self.conversations_version.update(|v| *v += 1);
    }
}

impl Default for ClientState {
    fn default() -> Self {
        Self::new()
    }
}

pub fn client_state() -> ClientState {
    expect_context::<ClientState>()
}
