//! The chat without JavaScript: the plain HTML form posts a message, waits for the whole
//! answer, and the browser is sent on to the conversation (or back, with the error named).

use futures::StreamExt;

use super::ChatService;
use crate::{
    api::{
        ApiError,
        events::ChatEvent,
        types::{ChatRequest, GenerationParams},
    },
    server::auth::UserId,
};

/// The composer's fields as a form posts them: text, and empty where the page had no value.
#[derive(Debug, Default)]
pub struct ChatForm {
    /// Empty or missing: a new conversation.
    pub conversation_id: Option<String>,
    pub message: String,
    pub temperature: Option<String>,
    pub max_tokens: Option<String>,
    pub model: Option<String>,
    pub trim_history: bool,
}

impl ChatForm {
    /// The request the fields make, checked against the contract. Empty fields take their
    /// defaults (a page rendered without JavaScript has no values).
    fn request(self) -> Result<ChatRequest, ApiError> {
        let defaults = GenerationParams::default();
        let req = ChatRequest {
            conversation_id: self.conversation_id.unwrap_or_default(),
            message: self.message,
            params: GenerationParams {
                temperature: number("temperature", self.temperature, f64::from(defaults.temperature))? as f32,
                max_tokens: number("max_tokens", self.max_tokens, f64::from(defaults.max_tokens))? as u32,
            },
            model: self.model.filter(|m| !m.is_empty()),
            trim_history: self.trim_history,
            edit_of: None,
        };
        req.check()?;
        Ok(req)
    }
}

fn number(field: &str, raw: Option<String>, default: f64) -> Result<f64, ApiError> {
    match raw.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(default),
        Some(r) => r
            .parse()
            .map_err(|_| ApiError::invalid(field, format!("{field} must be a number"))),
    }
}

/// Where the browser goes after a form post.
#[derive(Debug, PartialEq)]
pub enum FormOutcome {
    /// The answer is stored: the conversation shows it.
    Answered { conversation_id: String },
    /// Refused before or while starting: the page it came from (or the conversation just
    /// made for it) shows the error next to its field.
    Refused {
        conversation_id: Option<String>,
        error: ApiError,
    },
}

impl FormOutcome {
    /// The address to redirect to.
    pub fn location(&self) -> String {
        let page = |id: Option<&str>| id.map_or_else(|| "/".to_owned(), |id| format!("/c/{id}"));
        match self {
            FormOutcome::Answered { conversation_id } => page(Some(conversation_id)),
            FormOutcome::Refused {
                conversation_id,
                error,
            } => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("error", &error.message)
                    .append_pair("field", error.field.as_deref().unwrap_or("form"))
                    .finish();
                format!("{}?{query}", page(conversation_id.as_deref()))
            }
        }
    }
}

impl ChatService {
    /// Answers a form post whole: checks the fields, makes the conversation when there is
    /// none yet, and waits for the answer to be stored.
    pub async fn answer_form(&self, owner: UserId, mut form: ChatForm) -> FormOutcome {
        form.conversation_id = form.conversation_id.filter(|c| !c.trim().is_empty());
        let existing = form.conversation_id.clone();
        let refused = |conversation_id, error: ApiError| FormOutcome::Refused {
            conversation_id,
            error,
        };
        let mut req = match form.request() {
            Ok(req) => req,
            Err(e) => return refused(existing, e),
        };
        if existing.is_none() {
            match self.create_conversation(owner).await {
                Ok(c) => req.conversation_id = c.id,
                Err(e) => return refused(None, e.into()),
            }
        }
        let conversation_id = req.conversation_id.clone();
        match self.send(owner, req).await {
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                while let Some(event) = events.next().await {
                    if matches!(event, ChatEvent::Done { .. }) {
                        break;
                    }
                }
                FormOutcome::Answered { conversation_id }
            }
            Err(e) => refused(Some(conversation_id), ApiError::from(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_take_their_defaults_and_bad_numbers_are_named() {
        let form = ChatForm {
            message: "hello".into(),
            temperature: Some(" ".into()),
            ..ChatForm::default()
        };
        let req = form.request().expect("valid");
        assert_eq!(req.params, GenerationParams::default());
        let bad = ChatForm {
            message: "hello".into(),
            max_tokens: Some("many".into()),
            ..ChatForm::default()
        };
        assert_eq!(bad.request().unwrap_err().field.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn a_refusal_goes_back_with_the_field_and_message_in_the_query() {
        let outcome = FormOutcome::Refused {
            conversation_id: None,
            error: ApiError::invalid("message", "too long & odd"),
        };
        assert_eq!(outcome.location(), "/?error=too+long+%26+odd&field=message");
        let done = FormOutcome::Answered {
            conversation_id: "c1".into(),
        };
        assert_eq!(done.location(), "/c/c1");
    }
}
