//! Client-side state shared across pages.

use leptos::prelude::*;

use crate::api::types::GenerationParams;

/// A message typed on the new-chat page, handed to the conversation page after the
/// conversation was created, so it is sent from there.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSend {
    pub conversation_id: String,
    pub message: String,
    pub params: GenerationParams,
}

#[derive(Clone, Copy)]
pub struct ClientState {
    /// Bumped whenever the conversation list may have changed.
    pub conversations_version: RwSignal<u32>,
    pub pending: RwSignal<Option<PendingSend>>,
    /// Sampling parameters, kept across conversations in this tab.
    pub params: RwSignal<GenerationParams>,
}

impl ClientState {
    pub fn new() -> Self {
        Self {
            conversations_version: RwSignal::new(0),
            pending: RwSignal::new(None),
            params: RwSignal::new(GenerationParams::default()),
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
