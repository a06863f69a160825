//! Turns stored history into the messages a model reads.

use crate::{
    api::types::{MessageStatus, Role},
    server::{
        llm::{LlmError, PromptMessage, PromptRole, router::Target},
        storage::MessageRecord,
    },
};

/// Title given to a conversation until its first message names it.
pub const UNTITLED: &str = "New chat";
const TITLE_CHARS: usize = 60;

/// A prompt that fits the target's context window.
#[derive(Debug)]
pub struct Fitted {
    pub messages: Vec<PromptMessage>,
    /// Their tokens for the target.
    pub prompt_tokens: u32,
    /// Set when old messages were left out.
    pub notice: Option<String>,
}

/// The prompt for `target`, counted with its tokenizer. When it does not fit with
/// `max_tokens` and `trim` is allowed, the oldest turns are left out (as few as possible,
/// and never leaving an answer without its question); otherwise a context overflow error.
pub fn fit(
    system_prompt: Option<&str>,
    history: &[MessageRecord],
    user_message: &str,
    trim: bool,
    max_tokens: u32,
    target: &Target,
) -> Result<Fitted, LlmError> {
    let turns = Turns::new(system_prompt, history, user_message);
    let count = |skip: usize| target.count_prompt_tokens(&turns.assemble(skip));
    let whole = count(0)?;
    let overflow = match target.check_fits(whole, max_tokens) {
        Ok(()) => {
            return Ok(Fitted {
                messages: turns.assemble(0),
                prompt_tokens: whole,
                notice: None,
            });
        }
        Err(e) => e,
    };
    let n = turns.history.len();
    if !trim || n == 0 {
        return Err(overflow);
    }
    let fits = |skip: usize| -> Result<Option<u32>, LlmError> {
        let tokens = count(skip)?;
        Ok(target.check_fits(tokens, max_tokens).is_ok().then_some(tokens))
    };
    if fits(n)?.is_none() {
        // Even the new message alone is too long.
        return Err(target.check_fits(count(n)?, max_tokens).unwrap_err());
    }
    // Smallest number of leading turns to leave out (token counts grow with the prompt).
    let (mut lo, mut hi) = (1, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fits(mid)?.is_some() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut skip = lo;
    while skip < n && turns.history[skip].role == PromptRole::Assistant {
        skip += 1;
    }
    Ok(Fitted {
        prompt_tokens: count(skip)?,
        messages: turns.assemble(skip),
        notice: Some(format!(
            "the {skip} oldest messages were left out of the prompt to fit {}'s context window of {} tokens",
            target.id(),
            target.model.context_window
        )),
    })
}

/// The parts of a prompt, before assembly: optional system prompt, earlier turns, then the
/// new user message. Answers that produced no text (failed before the first token) are
/// left out; stopped and interrupted partial answers stay, since the user saw them.
struct Turns {
    system: Option<PromptMessage>,
    history: Vec<PromptMessage>,
    user: PromptMessage,
}

impl Turns {
    fn new(system_prompt: Option<&str>, history: &[MessageRecord], user_message: &str) -> Self {
        Self {
            system: system_prompt
                .filter(|s| !s.trim().is_empty())
                .map(|s| PromptMessage::text(Role::System, s)),
            history: history
                .iter()
                .filter(|m| !m.content.trim().is_empty() && m.status != MessageStatus::Streaming)
                .map(|m| PromptMessage::text(m.role, m.content.clone()))
                .collect(),
            user: PromptMessage::text(Role::User, user_message),
        }
    }

    /// System prompt, the turns after the first `skip`, the new message.
    fn assemble(&self, skip: usize) -> Vec<PromptMessage> {
        self.system
            .iter()
            .chain(&self.history[skip.min(self.history.len())..])
            .chain(std::iter::once(&self.user))
            .cloned()
            .collect()
    }
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
            parent_id: None,
            role,
            content: content.into(),
            status,
            error: None,
            notice: None,
            citations: Vec::new(),
            usage: UsageRecord::default(),
            trace: None,
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
        let p = Turns::new(Some("Be brief."), &history, "three").assemble(0);
        let got: Vec<(PromptRole, &str)> = p.iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "Be brief."),
                (Role::User, "one"),
                (Role::User, "two"),
                (Role::Assistant, "partial"),
                (Role::User, "three"),
            ]
            .into_iter()
            .map(|(r, t)| (PromptRole::from(r), t))
            .collect::<Vec<_>>()
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
