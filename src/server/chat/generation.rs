//! One running answer: reads the provider's tokens, forwards them to the listener,
//! persists them in batches, and stores the final status. It runs as its own task so
//! the answer is stored correctly whatever the listener does.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::views;
use crate::{
    api::{events::ChatEvent, types::MessageStatus},
    server::{
        llm::{LlmError, TokenEvent, TokenStream},
        storage::{MessageFinish, Store, records::UsageRecord},
    },
};

/// Running answers by assistant message id, so Stop can find them.
#[derive(Default)]
pub struct Running {
    tokens: Mutex<HashMap<String, CancellationToken>>,
}

impl Running {
    pub fn register(&self, message_id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(message_id.to_owned(), token.clone());
        token
    }

    /// Cancels the answer; false when it is not running (any more).
    pub fn stop(&self, message_id: &str) -> bool {
        match self.lock().get(message_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn finish(&self, message_id: &str) {
        self.lock().remove(message_id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Everything the task needs.
pub struct Generation {
    pub store: Arc<dyn Store>,
    pub running: Arc<Running>,
    pub message_id: String,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub tokens: TokenStream,
    pub events: mpsc::Sender<ChatEvent>,
    pub stop: CancellationToken,
    /// Cancelled when the server shuts down and the grace period is over.
    pub shutdown: CancellationToken,
    pub persist_every: Duration,
}

enum Outcome {
    Complete {
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    Stopped,
    Interrupted,
    Failed(LlmError),
}

fn now_ms() -> i64 {
    super::service::now_ms()
}

impl Generation {
    pub async fn run(mut self) {
        let started = Instant::now();
        let mut content = String::new();
        let mut pieces = 0u32;
        let mut first_token: Option<Instant> = None;
        let mut last_token = started;
        let mut last_persist = Instant::now();
        let mut persisted_len = 0usize;

        let outcome = loop {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break Outcome::Stopped,
                _ = self.shutdown.cancelled() => break Outcome::Interrupted,
                // The listener left (tab closed, connection dropped): stop, keep the text.
                _ = self.events.closed() => break Outcome::Stopped,
                item = self.tokens.next() => match item {
                    Some(Ok(TokenEvent::Token(text))) => {
                        let now = Instant::now();
                        first_token.get_or_insert(now);
                        last_token = now;
                        pieces += 1;
                        content.push_str(&text);
                        if self.events.send(ChatEvent::Token { text }).await.is_err() {
                            break Outcome::Stopped;
                        }
                        if last_persist.elapsed() >= self.persist_every && content.len() != persisted_len {
                            if let Err(e) = self.store.update_message_content(&self.message_id, &content, now_ms()).await {
                                tracing::warn!(error = %e, "could not persist a partial answer");
                            }
                            persisted_len = content.len();
                            last_persist = Instant::now();
                        }
                    }
                    Some(Ok(TokenEvent::Done { prompt_tokens, completion_tokens, .. })) => {
                        break Outcome::Complete { prompt_tokens, completion_tokens };
                    }
                    Some(Err(e)) => break Outcome::Failed(e),
                    None => break Outcome::Failed(LlmError::Backend("the model's stream ended without finishing".into())),
                },
            }
        };
        // Dropping the provider stream first cancels decoding right away.
        drop(std::mem::replace(
            &mut self.tokens,
            Box::pin(futures::stream::empty()),
        ));

        let (status, error, prompt_tokens, completion_tokens) = match outcome {
            Outcome::Complete {
                prompt_tokens,
                completion_tokens,
            } => (MessageStatus::Complete, None, prompt_tokens, completion_tokens),
            Outcome::Stopped => (MessageStatus::Stopped, None, self.prompt_tokens, pieces),
            Outcome::Interrupted => (
                MessageStatus::Interrupted,
                Some("the server shut down while this answer was being written".to_owned()),
                self.prompt_tokens,
                pieces,
            ),
            Outcome::Failed(e) => {
                tracing::warn!(error = %e, message_id = %self.message_id, "answer failed");
                (
                    MessageStatus::Failed,
                    Some(e.to_string()),
                    self.prompt_tokens,
                    pieces,
                )
            }
        };
        let ttft = first_token.map(|t| t.duration_since(started));
        let tokens_per_second = first_token.and_then(|first| {
            let secs = last_token.duration_since(first).as_secs_f32();
            (completion_tokens > 1 && secs > 0.0).then(|| (completion_tokens - 1) as f32 / secs)
        });
        let finish = MessageFinish {
            content,
            status,
            error,
            usage: UsageRecord {
                provider: Some(self.provider.clone()),
                model: Some(self.model.clone()),
                prompt_tokens: Some(prompt_tokens),
                completion_tokens: Some(completion_tokens),
                ttft_ms: ttft.map(|d| d.as_millis() as u64),
                tokens_per_second,
                duration_ms: Some(started.elapsed().as_millis() as u64),
            },
            now_ms: now_ms(),
        };
        let stored = self.store.finish_message(&self.message_id, finish).await;
        self.running.finish(&self.message_id);
        match stored {
            Ok(record) => {
                tracing::info!(
                    message_id = %record.id,
                    status = record.status.as_str(),
                    completion_tokens,
                    ttft_ms = ttft.map(|d| d.as_millis() as u64),
                    tokens_per_second,
                    "answer finished"
                );
                let _ = self
                    .events
                    .send(ChatEvent::Done {
                        message: views::message(record),
                    })
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %e, message_id = %self.message_id, "could not store the finished answer")
            }
        }
    }
}
