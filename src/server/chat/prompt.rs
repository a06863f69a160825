//! Turns stored history into the messages a model reads.

use crate::{
    api::types::{MessageStatus, Role},
    server::{llm::PromptMessage, storage::MessageRecord},
};

/// Title given to a conversation until its first message names it.
pub const UNTITLED: &str = "New chat";
const TITLE_CHARS: usize = 60;

/// The prompt: optional system prompt, earlier turns, then the new user message.
/// Answers that produced no text (failed before the first token) are left out; stopped
/// and interrupted partial answers stay, since the user saw them.
pub fn build(
    system_prompt: Option<&str>,
    history: &[MessageRecord],
    user_message: &str,
) -> Vec<PromptMessage> {
    let mut messages = Vec::with_capacity(history.len() + 2);
    if let Some(system) = system_prompt.filter(|s| !s.trim().is_empty()) {
        messages.push(PromptMessage {
            role: Role::System,
            content: system.to_owned(),
        });
    }
    messages.extend(
        history
            .iter()
            .filter(|m| !m.content.trim().is_empty() && m.status != MessageStatus::Streaming)
            .map(|m| PromptMessage {
                role: m.role,
                content: m.content.clone(),
            }),
    );
    messages.push(PromptMessage {
        role: Role::User,
        content: user_message.to_owned(),
    });
    messages
}

/// A title from the first message: its first line, cut at a word boundary.
pub fn title_from(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(UNTITLED);
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > TITLE_CHARS / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::records::UsageRecord;

    fn record(role: Role, content: &str, status: MessageStatus) -> MessageRecord {
        MessageRecord {
            id: "m".into(),
            conversation_id: "c".into(),
            role,
            content: content.into(),
            status,
            error: None,
            usage: UsageRecord::default(),
            temperature: None,
            max_tokens: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn keeps_partial_answers_and_drops_empty_failures() {
        let history = [
            record(Role::User, "one", MessageStatus::Complete),
            record(Role::Assistant, "", MessageStatus::Failed),
            record(Role::User, "two", MessageStatus::Complete),
            record(Role::Assistant, "partial", MessageStatus::Stopped),
        ];
        let p = build(Some("Be brief."), &history, "three");
        let got: Vec<(Role, &str)> = p.iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "Be brief."),
                (Role::User, "one"),
                (Role::User, "two"),
                (Role::Assistant, "partial"),
                (Role::User, "three"),
            ]
        );
    }

    #[test]
    fn titles_come_from_the_first_line_cut_at_a_word() {
        assert_eq!(title_from("\n  Hello there  \nsecond"), "Hello there");
        let long = "word ".repeat(30);
        let t = title_from(&long);
        assert!(t.ends_with('…'));
        assert!(t.chars().count() <= TITLE_CHARS + 1);
        assert!(!t.contains("wo…"), "cut at a word boundary: {t}");
    }
}
