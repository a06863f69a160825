//! One running answer: reads the provider's tokens, forwards them to the listener,
//! persists them in batches, and stores the final status. It runs as its own task so
//! the answer is stored correctly whatever the listener does.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{structured::Expected, views};
use crate::{
    api::{
        events::ChatEvent,
        trace::{AnswerTrace, TraceStep},
        types::MessageStatus,
    },
    server::{
        auth::UserId,
        llm::{
            GenerationRequest, LlmError, TokenEvent, TokenStream,
            router::{Primed, Router, Target},
        },
        storage::{MessageFinish, Store, records::UsageRecord},
    },
};

/// One answer being written: who may stop or watch it, and what it has said so far,
/// for pages that attach while it runs (a reload, a second tab).
pub struct Live {
    owner: UserId,
    stop: CancellationToken,
    /// Every event after `Started`, for watchers.
    feed: broadcast::Sender<ChatEvent>,
    /// The answer so far; changed under the same lock as `feed` is fed, so a watcher's
    /// snapshot plus its feed is exactly the whole answer.
    so_far: Mutex<SoFar>,
}

#[derive(Default)]
struct SoFar {
    content: String,
    answering: Option<(String, String, Option<String>)>,
}

/// Events a watcher may fall behind by before it is dropped (and re-reads the message).
const WATCH_BUFFER: usize = 512;

impl Live {
    fn new(owner: UserId) -> Self {
        Self {
            owner,
            stop: CancellationToken::new(),
            feed: broadcast::channel(WATCH_BUFFER).0,
            so_far: Mutex::new(SoFar::default()),
        }
    }

    fn so_far(&self) -> std::sync::MutexGuard<'_, SoFar> {
        self.so_far.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the watchers, after recording what the event changes.
    fn publish(&self, event: &ChatEvent) {
        let mut so_far = self.so_far();
        match event {
            ChatEvent::Token { text } => so_far.content.push_str(text),
            ChatEvent::Answering {
                provider,
                model,
                notice,
            } => so_far.answering = Some((provider.clone(), model.clone(), notice.clone())),
            _ => {}
        }
        let _ = self.feed.send(event.clone());
    }

    /// The answer so far as one `Resumed` event, and the feed of what follows.
    fn watch(&self) -> (ChatEvent, broadcast::Receiver<ChatEvent>) {
        let so_far = self.so_far();
        let (provider, model, notice) = so_far
            .answering
            .clone()
            .map_or((None, None, None), |(p, m, n)| (Some(p), Some(m), n));
        let resumed = ChatEvent::Resumed {
            content: so_far.content.clone(),
            provider,
            model,
            notice,
        };
        (resumed, self.feed.subscribe())
    }
}

/// Running answers by assistant message id, so Stop and watchers can find them.
#[derive(Default)]
pub struct Running {
    live: Mutex<HashMap<String, Arc<Live>>>,
}

impl Running {
    pub fn register(&self, owner: UserId, message_id: &str) -> Arc<Live> {
        let live = Arc::new(Live::new(owner));
        self.lock().insert(message_id.to_owned(), Arc::clone(&live));
        live
    }

    /// `owner`'s running answer; `None` when it is not running (any more), or is not theirs.
    fn get(&self, owner: UserId, message_id: &str) -> Option<Arc<Live>> {
        self.lock()
            .get(message_id)
            .filter(|live| live.owner == owner)
            .cloned()
    }

    /// Cancels `owner`'s answer; false when it is not running (any more), or is not theirs.
    pub fn stop(&self, owner: UserId, message_id: &str) -> bool {
        self.get(owner, message_id)
            .map(|live| live.stop.cancel())
            .is_some()
    }

    /// The events of `owner`'s running answer from now on, starting with what it has
    /// said so far; `None` when it is not running (any more), or is not theirs.
    pub fn watch(
        &self,
        owner: UserId,
        message_id: &str,
    ) -> Option<impl futures::Stream<Item = ChatEvent> + Send + 'static> {
        let (resumed, feed) = self.get(owner, message_id)?.watch();
        let rest = futures::stream::unfold(Some(feed), |feed| async move {
            let mut feed = feed?;
            match feed.recv().await {
                Ok(event) => {
                    let last = matches!(event, ChatEvent::Done { .. });
                    Some((event, (!last).then_some(feed)))
                }
                // Closed, or fell too far behind: the page re-reads the message.
                Err(_) => None,
            }
        });
        Some(futures::stream::once(async move { resumed }).chain(rest))
    }

    /// Cancels an answer whoever owns it (a stop asked for on another process, which
    /// checked the owner).
    pub fn stop_any(&self, message_id: &str) {
        if let Some(live) = self.lock().get(message_id) {
            live.stop.cancel();
        }
    }

    fn finish(&self, message_id: &str) {
        self.lock().remove(message_id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The ids of the answers running in this process.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Everything the task needs.
pub struct Generation {
    pub store: Arc<dyn Store>,
    pub running: Arc<Running>,
    pub message_id: String,
    pub router: Arc<Router>,
    /// Targets to try in order until one produces a first token.
    pub chain: Vec<Target>,
    pub request: GenerationRequest,
    /// The prompt counted for `chain[0]`, and its stream if it could be started; taken by
    /// the first attempt.
    pub primed: Option<Primed>,
    /// What the user should know before the answer (history trimmed, no relevant passage).
    pub notice: Option<String>,
    /// The steps that came before generation (searching the documents); the generation's
    /// own are added when the answer ends.
    pub trace: AnswerTrace,
    pub events: mpsc::Sender<ChatEvent>,
    /// Keep writing when the listener goes away (the chat page: a reload re-attaches);
    /// otherwise a listener that leaves stops the answer (APIs).
    pub detached: bool,
    pub live: Arc<Live>,
    /// The answer's versions (empty when it is the only one), for its final view.
    pub siblings: Vec<String>,
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

use crate::server::clock::now_ms;

/// Who ended up answering.
struct Answer {
    provider: String,
    model: String,
    prompt_tokens: u32,
    notice: Option<String>,
    /// A grammar shaped the answer (a JSON Schema, on the embedded model).
    grammar: bool,
}

/// Text and timings received so far.
struct Progress {
    content: String,
    pieces: u32,
    first_token: Option<Instant>,
    last_token: Instant,
}

fn join_notices(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// Resolves when the listener has gone and the answer should stop because of it.
async fn listener_left(events: &mpsc::Sender<ChatEvent>, detached: bool) {
    if detached {
        std::future::pending::<()>().await;
    }
    events.closed().await;
}

impl Generation {
    /// Sends an event to the listener and the watchers; false when the listener has gone
    /// and the answer should stop because of it.
    fn tell(&self, event: ChatEvent) -> impl Future<Output = bool> + Send + 'static {
        self.live.publish(&event);
        let (events, detached) = (self.events.clone(), self.detached);
        async move { events.send(event).await.is_ok() || detached }
    }

    pub async fn run(mut self) {
        let started = Instant::now();
        let mut progress = Progress {
            content: String::new(),
            pieces: 0,
            first_token: None,
            last_token: started,
        };
        // Until the first token: retries and fallbacks (see `Router::open`). Stop, shutdown
        // or a closed listener drop the attempt, which closes any upstream connection.
        let primed = self.primed.take().expect("a generation runs once");
        let opened = {
            let open = self.router.open(&self.chain, &self.request, primed);
            tokio::select! {
                biased;
                _ = self.live.stop.cancelled() => Err(Outcome::Stopped),
                _ = self.shutdown.cancelled() => Err(Outcome::Interrupted),
                _ = listener_left(&self.events, self.detached) => Err(Outcome::Stopped),
                opened = open => opened.map_err(Outcome::Failed),
            }
        };
        let (answer, outcome) = match opened {
            Ok(o) => {
                let answer = Answer {
                    provider: o.target.provider_name().to_owned(),
                    model: o.target.model.id.clone(),
                    prompt_tokens: o.prompt_tokens,
                    notice: join_notices(self.notice.take(), o.notice),
                    grammar: Expected::of(&self.request.options).is_some() && o.target.provider().is_local(),
                };
                self.tell(ChatEvent::Answering {
                    provider: answer.provider.clone(),
                    model: answer.model.clone(),
                    notice: answer.notice.clone(),
                })
                .await;
                let outcome = self.relay(o.tokens, &mut progress).await;
                (answer, outcome)
            }
            Err(outcome) => {
                let primary = &self.chain[0];
                let answer = Answer {
                    provider: primary.provider_name().to_owned(),
                    model: primary.model.id.clone(),
                    prompt_tokens: 0,
                    notice: self.notice.take(),
                    grammar: false,
                };
                (answer, outcome)
            }
        };
        self.finish(answer, outcome, progress, started).await;
    }

    /// Forwards tokens to the listener and persists them in batches until the answer ends.
    async fn relay(&mut self, mut tokens: TokenStream, p: &mut Progress) -> Outcome {
        let mut last_persist = Instant::now();
        let mut persisted_len = 0usize;
        let outcome = loop {
            tokio::select! {
                biased;
                _ = self.live.stop.cancelled() => break Outcome::Stopped,
                _ = self.shutdown.cancelled() => break Outcome::Interrupted,
                // The listener left (connection dropped) and nobody else may re-attach:
                // stop, keep the text.
                _ = listener_left(&self.events, self.detached) => break Outcome::Stopped,
                item = tokens.next() => match item {
                    // A provider's refusal is what the user reads as its answer.
                    Some(Ok(TokenEvent::Token(text) | TokenEvent::Refusal(text))) => {
                        let now = Instant::now();
                        p.first_token.get_or_insert(now);
                        p.last_token = now;
                        p.pieces += 1;
                        p.content.push_str(&text);
                        if !self.tell(ChatEvent::Token { text }).await {
                            break Outcome::Stopped;
                        }
                        if last_persist.elapsed() >= self.persist_every && p.content.len() != persisted_len {
                            match self.store.update_message_content(&self.message_id, &p.content, now_ms()).await {
                                Ok(true) => {}
                                // Stopped from another process (or no longer an answer being written).
                                Ok(false) => break Outcome::Stopped,
                                Err(e) => tracing::warn!(error = %e, "could not persist a partial answer"),
                            }
                            persisted_len = p.content.len();
                            last_persist = Instant::now();
                        }
                    }
                    Some(Ok(TokenEvent::Done { prompt_tokens, completion_tokens, .. })) => {
                        // A conversation that asks for JSON gets JSON that follows its schema, or a failed answer naming the path.
                        if let Some(Err(reason)) = Expected::of(&self.request.options).map(|e| e.check(&p.content)) {
                            break Outcome::Failed(LlmError::InvalidOutput { reason, cut: false });
                        }
                        break Outcome::Complete { prompt_tokens, completion_tokens };
                    }
                    // The chat asks for neither tools nor log probabilities.
                    Some(Ok(TokenEvent::ToolCall(_) | TokenEvent::Logprobs(_))) => {}
                    Some(Err(e)) => break Outcome::Failed(e),
                    None => break Outcome::Failed(LlmError::Backend("the model's stream ended without finishing".into())),
                },
            }
        };
        // Dropping the provider stream cancels decoding (or the upstream request) right away.
        drop(tokens);
        outcome
    }

    /// Stores the final text, status, usage and timings, and tells the listener.
    async fn finish(mut self, answer: Answer, outcome: Outcome, p: Progress, started: Instant) {
        let (status, error, prompt_tokens, completion_tokens) = match outcome {
            Outcome::Complete {
                prompt_tokens,
                completion_tokens,
            } => (
                MessageStatus::Complete,
                None,
                // Some servers do not report usage; then our own count stands.
                if prompt_tokens > 0 {
                    prompt_tokens
                } else {
                    answer.prompt_tokens
                },
                completion_tokens,
            ),
            Outcome::Stopped => (MessageStatus::Stopped, None, answer.prompt_tokens, p.pieces),
            Outcome::Interrupted => (
                MessageStatus::Interrupted,
                Some("the server shut down while this answer was being written".to_owned()),
                answer.prompt_tokens,
                p.pieces,
            ),
            Outcome::Failed(e) => {
                tracing::warn!(error = %e, message_id = %self.message_id, "answer failed");
                (
                    MessageStatus::Failed,
                    Some(e.to_string()),
                    answer.prompt_tokens,
                    p.pieces,
                )
            }
        };
        let ttft = p.first_token.map(|t| t.duration_since(started));
        let tokens_per_second = p.first_token.and_then(|first| {
            let secs = p.last_token.duration_since(first).as_secs_f32();
            (completion_tokens > 1 && secs > 0.0).then(|| (completion_tokens - 1) as f32 / secs)
        });
        let ms = |d: Duration| d.as_millis() as u64;
        let mut trace = std::mem::take(&mut self.trace);
        trace.grammar = answer.grammar;
        if let Some(ttft) = ttft {
            trace
                .steps
                .push(TraceStep::new("first_token", ms(ttft)).counts(Some(prompt_tokens), None));
            trace.steps.push(
                TraceStep::new(
                    "generate",
                    ms(p.last_token.duration_since(started).saturating_sub(ttft)),
                )
                .counts(None, Some(completion_tokens)),
            );
        }
        let finish = MessageFinish {
            content: p.content,
            status,
            error,
            notice: answer.notice,
            trace: Some(trace),
            usage: UsageRecord {
                provider: Some(answer.provider),
                model: Some(answer.model),
                prompt_tokens: Some(prompt_tokens),
                completion_tokens: Some(completion_tokens),
                ttft_ms: ttft.map(|d| d.as_millis() as u64),
                tokens_per_second,
                duration_ms: Some(started.elapsed().as_millis() as u64),
            },
            now_ms: now_ms(),
        };
        let stored = self.store.finish_message(&self.message_id, finish).await;
        match stored {
            Ok(record) => {
                tracing::info!(
                    message_id = %record.id,
                    status = record.status.as_str(),
                    provider = record.usage.provider.as_deref().unwrap_or("-"),
                    completion_tokens,
                    ttft_ms = ttft.map(|d| d.as_millis() as u64),
                    tokens_per_second,
                    "answer finished"
                );
                let mut message = views::message(record);
                message.siblings = self.siblings.clone();
                self.tell(ChatEvent::Done { message }).await;
            }
            Err(e) => {
                tracing::error!(error = %e, message_id = %self.message_id, "could not store the finished answer")
            }
        }
        // Watchers that come later read the stored message.
        self.running.finish(&self.message_id);
    }
}
