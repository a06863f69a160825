use std::{sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    ChatError, branches,
    generation::{Generation, Running},
    prompt,
};
use crate::{
    api::{
        ApiError,
        documents::{Citation, PassageQuery, PassageSearch},
        events::ChatEvent,
        trace::AnswerTrace,
        types::{ChatRequest, GenerationParams, MessageStatus, ModelList, RegenerateRequest, Role},
        validation::MAX_TITLE_CHARS,
    },
    server::{
        auth::UserId,
        config::ChatSettings,
        llm::{
            GenerationOptions, GenerationRequest, OutputFormat,
            router::{Primed, Router, Target},
        },
        rag::{
            rerank::{EmbeddingReranker, Reranker},
            retrieve::{Ask, Retriever, context_prompt},
        },
        storage::{
            ANSWER_LEASE_MS, ConversationRecord, DocumentStore, MessageRecord, NewMessage, NewTurn, Store,
            StoreError, documents::Scope,
        },
    },
};

pub(super) use crate::server::clock::now_ms;

pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Retrieval for answers grounded in the user's documents.
pub struct Rag {
    pub documents: Arc<dyn DocumentStore>,
    pub retriever: Arc<Retriever>,
}

pub struct ChatService {
    pub(super) store: Arc<dyn Store>,
    router: Arc<Router>,
    pub(super) rag: Option<Rag>,
    pub(super) settings: ChatSettings,
    pub(super) running: Arc<Running>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// The model for small jobs of the retrieval pipeline (`routing.task_model`).
    task_model: Option<String>,
}

impl ChatService {
    pub fn new(store: Arc<dyn Store>, router: Arc<Router>, settings: ChatSettings) -> Self {
        Self {
            store,
            router,
            rag: None,
            settings,
            running: Arc::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            task_model: None,
        }
    }

    /// The model the retrieval pipeline's small jobs go to (`provider/model`, or `local`).
    pub fn with_task_model(mut self, model: Option<String>) -> Self {
        self.task_model = model;
        self
    }

    pub fn task_model(&self) -> Option<&str> {
        self.task_model.as_deref()
    }

    /// Answers draw on the user's documents from now on.
    pub fn with_rag(mut self, rag: Rag) -> Self {
        self.rag = Some(rag);
        self
    }

    /// Retrieval alone: `owner`'s passages for the query, ranked, with what each step made
    /// of them (for developers and for evaluation).
    pub async fn search_passages(&self, owner: UserId, q: PassageQuery) -> Result<PassageSearch, ChatError> {
        q.check().map_err(ChatError::Invalid)?;
        let Some(rag) = &self.rag else {
            return Err(ChatError::DocumentsDisabled);
        };
        let limit = q.limit.unwrap_or(10) as usize;
        let filter = q.filter();
        let documents = rag.retriever.documents_of(owner, &filter).await?;
        let ask = Ask {
            owner,
            question: &q.query,
            history: &[],
            scope: Scope {
                collections: filter.collection_ids.as_deref(),
                documents: documents.as_deref(),
            },
        };
        let (retrieval, passages) = rag.retriever.ranked_passages(ask, Some(self), limit).await?;
        Ok(PassageSearch {
            passages,
            confidence: retrieval.confidence,
            declined: retrieval.declined,
            steps: retrieval.steps,
        })
    }

    /// Scores `texts` for `query` with the configured re-ranker, else the embedding model's
    /// similarity (`/v1/rerank`); returns the re-ranker's name and one 0–1 score per text.
    pub async fn rerank(&self, query: &str, texts: &[String]) -> Result<(&'static str, Vec<f32>), ChatError> {
        let Some(rag) = &self.rag else {
            return Err(ChatError::DocumentsDisabled);
        };
        let fallback: Arc<dyn Reranker>;
        let reranker = match rag.retriever.reranker() {
            Some(r) => r,
            None => {
                fallback = Arc::new(EmbeddingReranker::new(Arc::clone(rag.retriever.embedder())));
                &fallback
            }
        };
        // A blank text answers nothing: it scores 0 without being sent to the re-ranker
        // (an embedding model refuses empty input; a remote one may).
        let (asked, filled): (Vec<usize>, Vec<String>) = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.trim().is_empty())
            .map(|(i, t)| (i, t.clone()))
            .unzip();
        let mut scores = vec![0.0; texts.len()];
        if !filled.is_empty() {
            let got = reranker.score(query, &filled, Some(self)).await?;
            for (i, score) in asked.into_iter().zip(got) {
                scores[i] = score;
            }
        }
        Ok((reranker.name(), scores))
    }

    /// Passages of the conversation's documents for `question`, and the system prompt
    /// part that carries them (or says nothing relevant was found).
    async fn ground(
        &self,
        owner: UserId,
        conversation_id: &str,
        question: &str,
        history: &[String],
    ) -> Result<Grounding, ChatError> {
        let Some(rag) = &self.rag else {
            return Ok(Grounding::default());
        };
        let scope = rag.documents.conversation_collections(conversation_id).await?;
        let scope = (!scope.is_empty()).then_some(scope.as_slice());
        let ask = Ask {
            owner,
            question,
            history,
            scope: match scope {
                Some(collections) => Scope::collections(collections),
                None => Scope::ALL,
            },
        };
        let retrieval = rag.retriever.retrieve(ask, Some(self)).await?;
        let notice = retrieval.declined.then(|| {
            format!(
                "your documents do not seem to cover this question (confidence {:.0} %)",
                retrieval.confidence * 100.0
            )
        });
        Ok(Grounding {
            context: context_prompt(&retrieval),
            trace: AnswerTrace {
                query: retrieval.query.clone(),
                steps: retrieval.steps.clone(),
                grammar: false,
            },
            citations: retrieval.citations,
            notice,
        })
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn model_list(&self) -> ModelList {
        ModelList {
            default: self.router.default_id(),
            models: self.router.models(),
        }
    }

    /// The model a request asks for (or its conversation's, or the default).
    fn target(&self, requested: Option<&str>, remembered: Option<&str>) -> Result<Target, ChatError> {
        let id = requested
            .or(remembered)
            .map(str::to_owned)
            .or_else(|| self.router.default_id())
            .ok_or(ChatError::NoModel)?;
        self.router.resolve(&id).map_err(ChatError::UnknownModel)
    }

    /// Validates, stores the user message, starts the answer and returns its events:
    /// `Started`, `Answering`, `Token`s, then `Done`. Every rejection happens before the
    /// store is touched and before any provider is asked for anything. The conversation
    /// must be `owner`'s. With `edit_of`, the message is a new version of that one.
    /// Dropping the stream stops the answer (the APIs' contract).
    pub async fn send(
        &self,
        owner: UserId,
        req: ChatRequest,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, ChatError> {
        self.start(owner, Turn::ask(req)?, false).await
    }

    /// Like [`Self::send`], but the answer goes on when the stream is dropped (a reload of
    /// the chat page), until it ends or is stopped; pages re-attach with [`Self::watch`].
    pub async fn send_detached(
        &self,
        owner: UserId,
        req: ChatRequest,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, ChatError> {
        self.start(owner, Turn::ask(req)?, true).await
    }

    /// Answers a question again: a new version of an assistant message, streamed like a
    /// sent message (and going on when the page goes away, like the chat page's sends).
    pub async fn regenerate(
        &self,
        owner: UserId,
        req: RegenerateRequest,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, ChatError> {
        req.check().map_err(ChatError::Invalid)?;
        let turn = Turn {
            conversation_id: req.conversation_id,
            kind: TurnKind::Regenerate { of: req.message_id },
            params: req.params,
            model: req.model,
            trim_history: req.trim_history,
        };
        self.start(owner, turn, true).await
    }

    #[tracing::instrument(name = "chat.send", skip_all, fields(conversation_id = %turn.conversation_id))]
    async fn start(
        &self,
        owner: UserId,
        turn: Turn,
        detached: bool,
    ) -> Result<impl Stream<Item = ChatEvent> + Send + 'static, ChatError> {
        let conversation = self
            .store
            .get_conversation(owner, &turn.conversation_id)
            .await
            .map_err(not_found("conversation"))?;
        let all = self.store.list_messages(owner, &conversation.id).await?;
        let asking = Asking::of(&conversation, &all, turn.kind)?;
        let history = branches::path_to(&all, asking.parent.as_deref());
        let primary = self.target(turn.model.as_deref(), conversation.model.as_deref())?;
        let asked_before: Vec<String> = history
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .collect();
        let grounding = self
            .ground(owner, &conversation.id, &asking.question, &asked_before)
            .await?;
        let system = self.system_prompt(&conversation, grounding.context);
        let fitted = prompt::fit(
            Some(system.as_str()),
            &history,
            &asking.question,
            turn.trim_history,
            turn.params.max_tokens,
            &primary,
        )?;
        let request = GenerationRequest {
            model: primary.model.id.clone(),
            messages: fitted.messages,
            temperature: turn.params.temperature,
            max_tokens: turn.params.max_tokens,
            options: answer_options(&conversation),
        };
        let chain = self.router.chain(primary.clone());
        // Takes a queue slot on the primary (or fails "busy" before anything is stored,
        // unless another provider can take over); the request itself goes out only when
        // the stream is first polled, after the message is stored.
        let stream = match primary.start(&request).await {
            Ok(stream) => Some(stream),
            Err(e) if e.is_retryable() && chain.len() > 1 => None,
            Err(e) => return Err(e.into()),
        };
        let pending = Pending {
            chain,
            request,
            primed: Primed {
                prompt_tokens: fitted.prompt_tokens,
                stream,
            },
            notice: [grounding.notice, fitted.notice]
                .into_iter()
                .flatten()
                .reduce(|a, b| format!("{a}; {b}")),
            trace: grounding.trace,
        };
        let stored = self
            .record(
                owner,
                &conversation,
                asking,
                &turn.params,
                &primary,
                grounding.citations,
            )
            .await?;
        Ok(self.launch(owner, all, stored, pending, detached))
    }

    /// The conversation's own system prompt, else Stoa's; then the sources.
    fn system_prompt(&self, conversation: &ConversationRecord, sources: Option<String>) -> String {
        [
            conversation
                .system_prompt
                .clone()
                .filter(|p| !p.trim().is_empty())
                .or_else(|| self.settings.system_prompt.clone()),
            sources,
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
    }

    /// Stores the turn in one transaction (the question unless reused, the title of an
    /// untitled conversation's first turn, the model, the streaming answer); returns the
    /// question and the answer.
    async fn record(
        &self,
        owner: UserId,
        conversation: &ConversationRecord,
        asking: Asking,
        params: &GenerationParams,
        primary: &Target,
        citations: Vec<Citation>,
    ) -> Result<(MessageRecord, MessageRecord), ChatError> {
        let now = now_ms();
        // A question without a parent starts the conversation (its history is empty).
        let first_turn = asking.parent.is_none();
        let question_id = asking.asked.as_ref().map_or_else(new_id, |q| q.id.clone());
        let new_question = asking.asked.is_none().then(|| NewMessage {
            id: question_id.clone(),
            conversation_id: conversation.id.clone(),
            parent_id: asking.parent,
            role: Role::User,
            content: asking.question.clone(),
            status: MessageStatus::Complete,
            provider: None,
            model: None,
            temperature: None,
            max_tokens: None,
            citations: Vec::new(),
            now_ms: now,
        });
        let title = (conversation.title == prompt::UNTITLED && first_turn).then(|| {
            prompt::title_from(&asking.question)
                .chars()
                .take(MAX_TITLE_CHARS)
                .collect()
        });
        let model_id = primary.id();
        let writes = NewTurn {
            question: new_question,
            title,
            model: (conversation.model.as_deref() != Some(model_id.as_str())).then_some(model_id),
            answer: NewMessage {
                id: new_id(),
                conversation_id: conversation.id.clone(),
                parent_id: Some(question_id),
                role: Role::Assistant,
                content: String::new(),
                status: MessageStatus::Streaming,
                provider: Some(primary.provider_name().to_owned()),
                model: Some(primary.model.id.clone()),
                temperature: Some(params.temperature),
                max_tokens: Some(params.max_tokens),
                citations,
                now_ms: now,
            },
        };
        let (stored_question, answer) = self.store.start_turn(owner, writes).await?;
        let question = asking
            .asked
            .or(stored_question)
            .expect("a question, asked before or stored now");
        Ok((question, answer))
    }

    /// Starts the stored answer's generation and returns its events, `Started` first.
    fn launch(
        &self,
        owner: UserId,
        mut all: Vec<MessageRecord>,
        (user_message, assistant): (MessageRecord, MessageRecord),
        pending: Pending,
        detached: bool,
    ) -> impl Stream<Item = ChatEvent> + Send + 'static {
        if !all.iter().any(|m| m.id == user_message.id) {
            all.push(user_message.clone());
        }
        all.push(assistant.clone());
        let (events, receiver) = mpsc::channel(1024);
        let assistant_view = branches::view(&all, assistant.clone());
        let siblings = assistant_view.siblings.clone();
        let started_event = ChatEvent::Started {
            user_message: Box::new(branches::view(&all, user_message)),
            assistant_message: Box::new(assistant_view),
        };
        events.try_send(started_event).expect("a new channel has room");
        let generation = Generation {
            store: Arc::clone(&self.store),
            running: Arc::clone(&self.running),
            live: self.running.register(owner, &assistant.id),
            detached,
            siblings,
            message_id: assistant.id,
            router: Arc::clone(&self.router),
            chain: pending.chain,
            request: pending.request,
            primed: Some(pending.primed),
            notice: pending.notice,
            trace: pending.trace,
            events,
            shutdown: self.shutdown.clone(),
            persist_every: Duration::from_millis(self.settings.persist_interval_ms),
        };
        self.tasks.spawn(generation.run());
        futures::stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })
    }

    /// Answers being generated right now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Renews the leases of the answers this process is writing, and marks answers whose
    /// process died (lease run out) as interrupted. Run every third of the lease.
    pub async fn keep_alive(&self) {
        let now = now_ms();
        match self
            .store
            .renew_answers(&self.running.ids(), now + ANSWER_LEASE_MS)
            .await
        {
            // Stops asked for on other processes, seen while no token came to save.
            Ok(stop) => {
                for id in stop {
                    self.running.stop_any(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not renew the leases of running answers"),
        }
        match self.store.interrupt_abandoned(now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "answers whose process stopped are marked interrupted"),
            Err(e) => tracing::warn!(error = %e, "could not sweep abandoned answers"),
        }
    }

    /// Lets running answers finish for up to `grace`, then interrupts the rest and marks
    /// anything left `streaming` as interrupted.
    pub async fn shutdown(&self, grace: Duration) {
        let ours = self.running.ids();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                running = self.running(),
                "grace period over; interrupting answers"
            );
            self.shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        }
        // Only this process's answers: others on the same database go on.
        match self.store.interrupt_answers(&ours, now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "marked unfinished answers as interrupted"),
            Err(e) => tracing::error!(error = %e, "could not mark unfinished answers"),
        }
    }
}

/// What to answer: a new question, an edited one, or an answer again.
struct Turn {
    conversation_id: String,
    kind: TurnKind,
    params: GenerationParams,
    model: Option<String>,
    trim_history: bool,
}

enum TurnKind {
    New(String),
    Edit { of: String, text: String },
    Regenerate { of: String },
}

impl Turn {
    fn ask(req: ChatRequest) -> Result<Self, ChatError> {
        req.check().map_err(ChatError::Invalid)?;
        Ok(Self {
            kind: match req.edit_of {
                Some(of) => TurnKind::Edit {
                    of,
                    text: req.message,
                },
                None => TurnKind::New(req.message),
            },
            conversation_id: req.conversation_id,
            params: req.params,
            model: req.model,
            trim_history: req.trim_history,
        })
    }
}

/// Where a turn's question hangs, its text, and (regenerating) the stored one reused.
struct Asking {
    parent: Option<String>,
    question: String,
    asked: Option<MessageRecord>,
}

impl Asking {
    fn of(
        conversation: &ConversationRecord,
        all: &[MessageRecord],
        kind: TurnKind,
    ) -> Result<Self, ChatError> {
        let find = |id: &str| {
            all.iter()
                .find(|m| m.id == id)
                .cloned()
                .ok_or(ChatError::NotFound("message"))
        };
        Ok(match kind {
            TurnKind::New(text) => Asking {
                parent: branches::shown_leaf(conversation, all),
                question: text,
                asked: None,
            },
            TurnKind::Edit { of, text } => {
                let old = find(&of)?;
                if old.role != Role::User {
                    return Err(ChatError::Invalid(ApiError::invalid(
                        "edit_of",
                        "only a question can be edited; answers are regenerated",
                    )));
                }
                Asking {
                    parent: old.parent_id,
                    question: text,
                    asked: None,
                }
            }
            TurnKind::Regenerate { of } => {
                let answer = find(&of)?;
                let question = match (&answer.role, answer.parent_id.as_deref()) {
                    (Role::Assistant, Some(parent)) => find(parent)?,
                    _ => {
                        return Err(ChatError::Invalid(ApiError::invalid(
                            "message_id",
                            "only an answer can be regenerated",
                        )));
                    }
                };
                Asking {
                    parent: question.parent_id.clone(),
                    question: question.content.clone(),
                    asked: Some(question),
                }
            }
        })
    }
}

/// What a turn's generation starts from: the providers to try, the request, the primed
/// first attempt and the notice for the user.
struct Pending {
    chain: Vec<Target>,
    request: GenerationRequest,
    primed: Primed,
    notice: Option<String>,
    trace: AnswerTrace,
}

/// What retrieval adds to an answer.
#[derive(Default)]
struct Grounding {
    context: Option<String>,
    citations: Vec<Citation>,
    notice: Option<String>,
    /// The retrieval's steps and the query it searched with.
    trace: AnswerTrace,
}

pub(super) fn not_found(what: &'static str) -> impl Fn(StoreError) -> ChatError {
    move |e| match e {
        StoreError::NotFound => ChatError::NotFound(what),
        other => ChatError::Store(other),
    }
}

/// What a conversation's settings ask of every answer: JSON following its schema, when it
/// has one (checked when it was set; one that no longer compiles is left out, logged).
fn answer_options(conversation: &ConversationRecord) -> GenerationOptions {
    let schema = conversation
        .response_schema
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .filter(|s| super::structured::compile(s).is_ok());
    if conversation.response_schema.is_some() && schema.is_none() {
        tracing::warn!(conversation = %conversation.id, "the conversation's response schema is not usable; answering in text");
    }
    GenerationOptions {
        format: match schema {
            Some(schema) => OutputFormat::JsonSchema {
                name: "response".into(),
                description: None,
                schema,
                strict: Some(true),
            },
            None => OutputFormat::Text,
        },
        ..GenerationOptions::default()
    }
}
