//! Records to contract types.

use crate::{
    api::types::{ConversationSummary, MessageView, Usage},
    server::storage::{ConversationRecord, MessageRecord},
};

pub fn summary(c: ConversationRecord) -> ConversationSummary {
    ConversationSummary {
        id: c.id,
        title: c.title,
        model: c.model,
        updated_at: c.updated_at,
    }
}

pub fn message(m: MessageRecord) -> MessageView {
    let u = m.usage;
    let usage = match (u.provider, u.model) {
        (Some(provider), Some(model)) => Some(Usage {
            provider,
            model,
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            completion_tokens: u.completion_tokens.unwrap_or(0),
            ttft_ms: u.ttft_ms,
            tokens_per_second: u.tokens_per_second,
            duration_ms: u.duration_ms.unwrap_or(0),
        }),
        _ => None,
    };
    MessageView {
        id: m.id,
        parent_id: m.parent_id,
        siblings: Vec::new(),
        role: m.role,
        content: m.content,
        status: m.status,
        error: m.error,
        notice: m.notice,
        citations: m.citations,
        usage,
        created_at: m.created_at,
    }
}
