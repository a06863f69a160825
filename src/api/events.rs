//! Events of a streaming answer, sent as newline-delimited JSON over a chunked HTTP
//! response. HTTP may split or merge chunks, so the reader reassembles lines itself.

use serde::{Deserialize, Serialize};

use super::types::MessageView;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The user message is stored and the assistant message exists (status streaming).
    Started {
        user_message: Box<MessageView>,
        assistant_message: Box<MessageView>,
    },
    /// The answer has begun: who is writing it, and what happened on the way (fallback).
    Answering {
        provider: String,
        model: String,
        notice: Option<String>,
    },
    /// The next piece of the answer.
    Token { text: String },
    /// A page attached to an answer already being written (a reload, another tab): the
    /// answer so far, replacing what the page shows, and who is writing it once known.
    Resumed {
        content: String,
        provider: Option<String>,
        model: Option<String>,
        notice: Option<String>,
    },
    /// The answer ended; the message as stored, with its final status, usage and timings.
    Done { message: MessageView },
}

impl ChatEvent {
    /// The event's `type`, also its name in server-sent events.
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::Started { .. } => "started",
            ChatEvent::Answering { .. } => "answering",
            ChatEvent::Token { .. } => "token",
            ChatEvent::Resumed { .. } => "resumed",
            ChatEvent::Done { .. } => "done",
        }
    }

    /// One line of the stream, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("events always serialize");
        line.push('\n');
        line
    }
}

/// Reassembles events from arbitrary chunks of the stream.
#[derive(Debug, Default)]
pub struct EventDecoder {
    buffer: String,
}

impl EventDecoder {
    /// Feeds one chunk; returns every event completed by it, in order.
    pub fn push(&mut self, chunk: &str) -> Vec<Result<ChatEvent, serde_json::Error>> {
        self.buffer.push_str(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=end).collect();
            let line = line.trim();
            if !line.is_empty() {
                events.push(serde_json::from_str(line));
            }
        }
        events
    }

    /// Whether a partial line is left over (the stream was cut mid-event).
    pub fn has_partial(&self) -> bool {
        !self.buffer.trim().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_events_split_and_merged_across_chunks() {
        let a = ChatEvent::Token {
            text: "Hello, \"world\"\n".into(),
        };
        let b = ChatEvent::Token {
            text: "é🙂".into()
        };
        let wire = format!("{}{}", a.to_line(), b.to_line());
        // split at every possible byte boundary that is a char boundary
        for cut in (0..wire.len()).filter(|i| wire.is_char_boundary(*i)) {
            let mut d = EventDecoder::default();
            let mut got: Vec<ChatEvent> = d.push(&wire[..cut]).into_iter().map(Result::unwrap).collect();
            got.extend(d.push(&wire[cut..]).into_iter().map(Result::unwrap));
            assert_eq!(got, vec![a.clone(), b.clone()], "cut at {cut}");
            assert!(!d.has_partial());
        }
    }

    #[test]
    fn reports_a_cut_stream() {
        let mut d = EventDecoder::default();
        assert!(d.push("{\"type\":\"tok").is_empty());
        assert!(d.has_partial());
    }
}
