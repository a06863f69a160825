//! The chat pages: a new chat, and a conversation with its history and live answer.

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::{use_navigate, use_params_map};
use server_fn::codec::TextStream;

use super::{
    composer::Composer,
    conversation_settings::{ContextGauge, ConversationSettingsPanel, apply_defaults},
    documents::SourcesPicker,
    message::{ChatMessage, MessageActions, MessageBubble},
    state::{ClientState, Outgoing, PendingSend, client_state},
};
use crate::api::{
    ApiError,
    chat::{regenerate_answer, send_message, stop_generation, watch_answer},
    conversations::{create_conversation, get_conversation, switch_branch},
    events::{ChatEvent, EventDecoder},
    types::{
        ChatRequest, ConversationSettings, ConversationView, MessageStatus, MessageView, RegenerateRequest,
    },
};

/// `/`: an empty chat. The first message creates the conversation, then the conversation
/// page sends it.
#[component]
pub fn NewChatPage() -> impl IntoView {
    let state = client_state();
    let draft = RwSignal::new(String::new());
    let server_error = RwSignal::new(None::<ApiError>);
    let creating = RwSignal::new(false);
    let navigate = use_navigate();
    let on_send = Callback::new(move |outgoing: Outgoing| {
        creating.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match create_conversation().await {
                Ok(c) => {
                    state.pending.set(Some(PendingSend {
                        conversation_id: c.id.clone(),
                        outgoing,
                    }));
                    state.refresh_conversations();
                    navigate(&format!("/c/{}", c.id), Default::default());
                }
                Err(e) => server_error.set(Some(e)),
            }
            creating.set(false);
        });
    });
    // Typing starts fetching the conversation page, where the message is sent.
    let preloaded = StoredValue::new(false);
    let preload = move || {
        if !preloaded.get_value() {
            preloaded.set_value(true);
            crate::app::preload_conversation_page();
        }
    };
    view! {
        <section class="chat" on:focusin=move |_| preload() on:pointerdown=move |_| preload()>
            <div class="messages empty-chat">
                <h1>"What can I help with?"</h1>
                <p class="muted">"Pick a model below; answers stream as they are written. Conversations are saved."</p>
            </div>
            <Composer
                draft
                streaming=creating.into()
                server_error
                model=state.model
                on_send
                on_stop=Callback::new(|_| ())
            />
        </section>
    }
}

/// `/c/:id`: a conversation.
#[component]
pub fn ConversationPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let conversation = Resource::new(move || id.get(), get_conversation);
    view! {
        <Suspense fallback=|| view! { <p class="muted loading">"Loading conversation…"</p> }>
            {move || Suspend::new(async move {
                match conversation.await {
                    Ok(c) => view! { <Conversation conversation=c /> }.into_any(),
                    Err(e) => view! { <p class="error page-error">{e.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Conversation(conversation: ConversationView) -> impl IntoView {
    let ConversationView {
        id,
        model,
        collections,
        settings,
        messages,
        ..
    } = conversation;
    // The composer starts from this conversation's own defaults.
    apply_defaults(&settings);
    let live = Live::new(id.clone(), messages, model);
    provide_context(live.actions());
    // An answer still being written when the page was rendered (a reload, another tab).
    Effect::new(move |_| live.attach());
    // A message typed on the new-chat page is sent from here.
    Effect::new(move |_| live.send_pending());
    Effect::new(move |_| {
        live.messages.track();
        live.scroll_to_end();
    });
    view! {
        <section class="chat" class:busy=move || live.streaming.get()>
            <div class="sr-only announcer" role="status" aria-live="polite" aria-atomic="true">
                {move || live.announcement.get()}
            </div>
            <div class="messages" node_ref=live.list>
                <For each=move || live.messages.get() key=|m| m.key() let:message>
                    <MessageBubble message />
                </For>
            </div>
            <ConversationTools conversation_id=id.clone() collections settings live />
            <Composer
                draft=live.draft
                streaming=live.streaming.into()
                server_error=live.server_error
                model=live.model
                conversation_id=id
                on_send=Callback::new(move |outgoing| live.send(outgoing))
                on_stop=Callback::new(move |_| live.stop())
            />
        </section>
    }
}

/// Under the messages: the sources, the conversation's settings, the context gauge and the
/// export links.
#[component]
fn ConversationTools(
    conversation_id: String,
    collections: Vec<String>,
    settings: ConversationSettings,
    live: Live,
) -> impl IntoView {
    let export = |format: &str| format!("/api/v1/conversations/{conversation_id}/export?format={format}");
    view! {
        <div class="conversation-tools">
            <SourcesPicker conversation_id=conversation_id.clone() selected=collections />
            <ConversationSettingsPanel conversation_id=conversation_id.clone() settings />
            <ContextGauge messages=live.messages model=live.model />
            <span class="export-links">
                "Export: " <a href=export("markdown") download>"Markdown"</a>
                " · " <a href=export("json") download>"JSON"</a>
            </span>
        </div>
    }
}

/// A request that starts an answer stream.
type TurnCall = std::pin::Pin<Box<dyn Future<Output = Result<TextStream<ApiError>, ApiError>>>>;

/// The live state of a conversation page: its messages, the answer being written, and the
/// composer's draft and error; shared by everything that starts or follows an answer.
#[derive(Clone, Copy)]
struct Live {
    state: ClientState,
    conversation_id: StoredValue<String>,
    messages: RwSignal<Vec<ChatMessage>>,
    /// The assistant message being written, for Stop.
    current: RwSignal<Option<ChatMessage>>,
    draft: RwSignal<String>,
    server_error: RwSignal<Option<ApiError>>,
    streaming: RwSignal<bool>,
    model: RwSignal<Option<String>>,
    /// One polite announcement per finished answer for screen readers (never per token).
    announcement: RwSignal<String>,
    list: NodeRef<leptos::html::Div>,
}

impl Live {
    fn new(conversation_id: String, messages: Vec<MessageView>, model: Option<String>) -> Self {
        Self {
            state: client_state(),
            conversation_id: StoredValue::new(conversation_id),
            messages: RwSignal::new(messages.into_iter().map(ChatMessage::new).collect()),
            current: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            server_error: RwSignal::new(None),
            streaming: RwSignal::new(false),
            model: RwSignal::new(model),
            announcement: RwSignal::new(String::new()),
            list: NodeRef::new(),
        }
    }

    /// What a message's buttons do (see [`MessageActions`]).
    fn actions(self) -> MessageActions {
        MessageActions {
            busy: self.streaming.into(),
            switch_to: Callback::new(move |id| self.switch_to(id)),
            regenerate: Callback::new(move |id| self.regenerate(id)),
            edit: Callback::new(move |(of, text)| self.edit(of, text)),
        }
    }

    fn scroll_to_end(self) {
        if let Some(el) = self.list.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    }

    fn announce(self) {
        let Some(m) = self.current.get_untracked() else {
            return;
        };
        let text = match m.status.get_untracked() {
            MessageStatus::Complete => {
                let short: String = m.content.get_untracked().chars().take(300).collect();
                format!("Answer finished: {short}")
            }
            MessageStatus::Stopped => "Answer stopped.".to_owned(),
            other => format!(
                "Answer {}: {}",
                other.as_str(),
                m.error.get_untracked().unwrap_or_default()
            ),
        };
        self.announcement.set(text);
    }

    /// Streams one answer (a new question, an edited one, or an answer again) into the
    /// list. `restore` is given back to the message box if the request is refused.
    fn run(self, call: TurnCall, restore: Option<String>) {
        self.streaming.set(true);
        spawn_local(async move {
            match call.await {
                Err(e) => {
                    // Nothing was stored: give the text back.
                    if let Some(text) = restore {
                        self.draft.set(text);
                    }
                    self.server_error.set(Some(e));
                }
                Ok(stream) => {
                    self.server_error.set(None);
                    if !self.read_events(stream.into_inner()).await {
                        self.fail_current("the connection broke before the answer ended");
                    }
                    self.announce();
                }
            }
            self.streaming.set(false);
            self.current.set(None);
            self.state.refresh_conversations();
        });
    }

    fn request(self, message: String, edit_of: Option<String>) -> ChatRequest {
        ChatRequest {
            conversation_id: self.conversation_id.get_value(),
            message,
            params: self.state.params.get_untracked(),
            model: self.model.get_untracked(),
            trim_history: self.state.trim_history.get_untracked(),
            edit_of,
        }
    }

    fn send(self, outgoing: Outgoing) {
        if outgoing.model.is_some() {
            self.model.set(outgoing.model.clone());
        }
        let restore = outgoing.message.clone();
        let req = ChatRequest {
            params: outgoing.params,
            model: outgoing.model,
            trim_history: outgoing.trim_history,
            ..self.request(outgoing.message, None)
        };
        self.run(Box::pin(send_message(req)), Some(restore));
    }

    fn regenerate(self, message_id: String) {
        let req = RegenerateRequest {
            conversation_id: self.conversation_id.get_value(),
            message_id,
            params: self.state.params.get_untracked(),
            model: self.model.get_untracked(),
            trim_history: self.state.trim_history.get_untracked(),
        };
        self.run(Box::pin(regenerate_answer(req)), None);
    }

    fn edit(self, of: String, text: String) {
        let req = self.request(text, Some(of));
        self.run(Box::pin(send_message(req)), None);
    }

    fn switch_to(self, message_id: String) {
        spawn_local(async move {
            match switch_branch(self.conversation_id.get_value(), message_id).await {
                Ok(view) => self
                    .messages
                    .set(view.messages.into_iter().map(ChatMessage::new).collect()),
                Err(e) => self.server_error.set(Some(e)),
            }
        });
    }

    fn stop(self) {
        if let Some(m) = self.current.get_untracked() {
            spawn_local(async move {
                let _ = stop_generation(m.key()).await;
            });
        }
    }

    /// The message typed on the new-chat page for this conversation, if any, is sent.
    fn send_pending(self) {
        let id = self.conversation_id.get_value();
        let pending = self.state.pending.get_untracked();
        if let Some(p) = pending.filter(|p| p.conversation_id == id) {
            self.state.pending.set(None);
            self.send(p.outgoing);
        }
    }

    /// Follows live, from where it is, an answer that was still being written when the page
    /// was rendered.
    fn attach(self) {
        let last = self.messages.get_untracked().last().copied();
        let Some(last) = last.filter(|m| m.status.get_untracked() == MessageStatus::Streaming) else {
            return;
        };
        if self.current.get_untracked().is_some() {
            return;
        }
        self.streaming.set(true);
        self.current.set(Some(last));
        spawn_local(async move {
            let id = self.conversation_id.get_value();
            match watch_answer(last.key()).await {
                Ok(stream) => {
                    if !self.read_events(stream.into_inner()).await {
                        refresh_message(id, last).await;
                    }
                    self.announce();
                }
                // It ended in the meantime: show it as stored.
                Err(_) => refresh_message(id, last).await,
            }
            self.streaming.set(false);
            self.current.set(None);
        });
    }

    /// Applies the events of one answer to the message list until the stream ends; whether
    /// the answer's end (`done`) was seen.
    async fn read_events(self, stream: impl futures::Stream<Item = Result<String, ApiError>>) -> bool {
        use futures::StreamExt;
        let mut stream = std::pin::pin!(stream);
        let mut decoder = EventDecoder::default();
        let mut finished = false;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    leptos::logging::warn!("the answer's stream broke: {e}");
                    return false;
                }
            };
            for event in decoder.push(&chunk) {
                match event {
                    Ok(event) => finished |= self.apply(event),
                    Err(e) => leptos::logging::warn!("unreadable event: {e}"),
                }
            }
        }
        finished
    }

    /// One event of the answer being written; whether it was its end.
    fn apply(self, event: ChatEvent) -> bool {
        let current = self.current.get_untracked();
        match event {
            ChatEvent::Started {
                user_message,
                assistant_message,
            } => {
                self.draft.set(String::new());
                let assistant = ChatMessage::new(*assistant_message);
                let user = ChatMessage::new(*user_message);
                // The branch shown now: up to the question's parent, then the question
                // (new, edited or the same) and its new answer.
                self.messages.update(|list| {
                    let keep = match user.parent_id.get_value() {
                        Some(parent) => list
                            .iter()
                            .position(|m| m.key() == parent)
                            .map_or(list.len(), |i| i + 1),
                        None => 0,
                    };
                    list.truncate(keep);
                    list.push(user);
                    list.push(assistant);
                });
                self.current.set(Some(assistant));
                // The first message names the conversation: show the new title.
                self.state.refresh_conversations();
            }
            ChatEvent::Answering {
                provider,
                model,
                notice,
            } => {
                if let Some(m) = current {
                    m.answering.set(Some(format!("{provider}/{model}")));
                    m.notice.set(notice);
                }
            }
            ChatEvent::Token { text } => {
                if let Some(m) = current {
                    m.content.update(|c| c.push_str(&text));
                    self.scroll_to_end();
                }
            }
            ChatEvent::Resumed {
                content,
                provider,
                model,
                notice,
            } => {
                if let Some(m) = current {
                    m.content.set(content);
                    if let (Some(provider), Some(model)) = (provider, model) {
                        m.answering.set(Some(format!("{provider}/{model}")));
                    }
                    m.notice.set(notice);
                    self.scroll_to_end();
                }
            }
            ChatEvent::Done { message } => {
                if let Some(m) = current {
                    m.apply(message);
                }
                return true;
            }
        }
        false
    }

    fn fail_current(self, reason: &str) {
        if let Some(m) = self.current.get_untracked() {
            m.status.set(MessageStatus::Failed);
            m.error.set(Some(reason.to_owned()));
        }
    }
}

/// Shows a message as stored (after an answer ended while nobody was attached).
async fn refresh_message(conversation_id: String, message: ChatMessage) {
    if let Ok(view) = get_conversation(conversation_id).await
        && let Some(stored) = view.messages.into_iter().find(|m| m.id == message.key())
    {
        message.apply(stored);
    }
}
