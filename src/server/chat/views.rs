//! Records to contract types.

use crate::{
    api::{
        documents::Citation,
        types::{ConversationSummary, MessageStatus, MessageView, Usage},
    },
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
    let citations = match m.status {
        // Still being written: every source it was given may yet be cited.
        MessageStatus::Streaming => m.citations,
        _ => used_citations(&m.content, m.citations),
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
        citations,
        usage,
        trace: m.trace.map(Box::new),
        created_at: m.created_at,
    }
}

/// The sources an answer used: when it marks any of them (`[2]`, `[1, 3]`, `[1][3]`),
/// only those, in the order they were given; when it marks none, all of them (the model
/// did not say which it used). A marker with no such source (`[5]` of four) cites nothing.
pub fn used_citations(answer: &str, citations: Vec<Citation>) -> Vec<Citation> {
    let marked = markers(answer);
    if !citations.iter().any(|c| marked.contains(&c.n)) {
        return citations;
    }
    citations.into_iter().filter(|c| marked.contains(&c.n)).collect()
}

/// The numbers inside `[…]` groups of digits, commas and spaces (`[1]`, `[1, 3]`);
/// Markdown links (`[text](…)`) and other brackets are not markers.
fn markers(text: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        let is_group = !inside.trim().is_empty()
            && inside.chars().all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
            && !rest[close + 1..].starts_with('(');
        if is_group {
            found.extend(inside.split(',').filter_map(|n| n.trim().parse::<u32>().ok()));
        }
        rest = &rest[close + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(n: u32) -> Vec<Citation> {
        (1..=n)
            .map(|n| Citation {
                n,
                document_id: format!("d{n}"),
                document_title: format!("Doc {n}"),
                chunk_id: i64::from(n),
                position: 0,
                heading: None,
                text: String::new(),
                score: 0.5,
            })
            .collect()
    }

    fn kept(answer: &str, given: u32) -> Vec<u32> {
        used_citations(answer, sources(given))
            .iter()
            .map(|c| c.n)
            .collect()
    }

    #[test]
    fn an_answer_cites_only_the_sources_it_marks() {
        assert_eq!(kept("Leave is 25 days [2].", 4), vec![2]);
        assert_eq!(kept("See [3][1] and [1, 4].", 4), vec![1, 3, 4]);
        // A marker with no such source cites nothing; the real ones still count.
        assert_eq!(kept("Per [5] and [2].", 4), vec![2]);
        // No marker (or only impossible ones): every source stays.
        assert_eq!(kept("Leave is 25 days.", 3), vec![1, 2, 3]);
        assert_eq!(kept("Per [9].", 3), vec![1, 2, 3]);
        // Links, checkboxes and code indexing are not markers.
        assert_eq!(
            kept("[the policy](https://x) and [ ] todo, a[1 + 2]", 3),
            vec![1, 2, 3]
        );
    }
}
