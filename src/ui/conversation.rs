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
    types::{ChatRequest, ConversationView, MessageStatus, RegenerateRequest},
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
    view! {
        <section class="chat">
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
    let state = client_state();
    let conversation_id = StoredValue::new(conversation.id.clone());
    let messages = RwSignal::new(
        conversation
            .messages
            .into_iter()
            .map(ChatMessage::new)
            .collect::<Vec<_>>(),
    );
    let draft = RwSignal::new(String::new());
    let server_error = RwSignal::new(None::<ApiError>);
    let streaming = RwSignal::new(false);
    let model = RwSignal::new(conversation.model.clone());
    let collections = conversation.collections.clone();
    let settings = conversation.settings.clone();
    // The composer starts from this conversation's own defaults.
    apply_defaults(&settings);
    // The assistant message being written, for Stop.
    let current = RwSignal::new(None::<ChatMessage>);
    let list = NodeRef::<leptos::html::Div>::new();

    let scroll_to_end = move || {
        if let Some(el) = list.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };

    // One polite announcement per finished answer for screen readers (never per token).
    let announcement = RwSignal::new(String::new());
    let announce = move || {
        if let Some(m) = current.get_untracked() {
            let text = match m.status.get_untracked() {
                MessageStatus::Complete => {
                    let content = m.content.get_untracked();
                    let short: String = content.chars().take(300).collect();
                    format!("Answer finished: {short}")
                }
                MessageStatus::Stopped => "Answer stopped.".to_owned(),
                other => format!(
                    "Answer {}: {}",
                    other.as_str(),
                    m.error.get_untracked().unwrap_or_default()
                ),
            };
            announcement.set(text);
        }
    };
    // Streams one answer (a new question, an edited one, or an answer again) into the list.
    // `restore` is given back to the message box if the request is refused.
    let run = move |call: TurnCall, restore: Option<String>| {
        streaming.set(true);
        spawn_local(async move {
            match call.await {
                Err(e) => {
                    // Nothing was stored: give the text back.
                    if let Some(text) = restore {
                        draft.set(text);
                    }
                    server_error.set(Some(e));
                }
                Ok(stream) => {
                    server_error.set(None);
                    let done = read_events(
                        stream.into_inner(),
                        messages,
                        current,
                        draft,
                        state,
                        scroll_to_end,
                    )
                    .await;
                    if !done {
                        fail_current(current, "the connection broke before the answer ended");
                    }
                    announce();
                }
            }
            streaming.set(false);
            current.set(None);
            state.refresh_conversations();
        });
    };
    let send = move |outgoing: Outgoing| {
        let message = outgoing.message.clone();
        if outgoing.model.is_some() {
            model.set(outgoing.model.clone());
        }
        let req = ChatRequest {
            conversation_id: conversation_id.get_value(),
            message: outgoing.message,
            params: outgoing.params,
            model: outgoing.model,
            trim_history: outgoing.trim_history,
            edit_of: None,
        };
        run(Box::pin(send_message(req)), Some(message));
    };
    let regenerate = Callback::new(move |message_id: String| {
        let req = RegenerateRequest {
            conversation_id: conversation_id.get_value(),
            message_id,
            params: state.params.get_untracked(),
            model: model.get_untracked(),
            trim_history: state.trim_history.get_untracked(),
        };
        run(Box::pin(regenerate_answer(req)), None);
    });
    let edit = Callback::new(move |(of, text): (String, String)| {
        let req = ChatRequest {
            conversation_id: conversation_id.get_value(),
            message: text,
            params: state.params.get_untracked(),
            model: model.get_untracked(),
            trim_history: state.trim_history.get_untracked(),
            edit_of: Some(of),
        };
        run(Box::pin(send_message(req)), None);
    });
    let switch_to = Callback::new(move |message_id: String| {
        spawn_local(async move {
            match switch_branch(conversation_id.get_value(), message_id).await {
                Ok(view) => messages.set(view.messages.into_iter().map(ChatMessage::new).collect()),
                Err(e) => server_error.set(Some(e)),
            }
        });
    });
    provide_context(MessageActions {
        busy: streaming.into(),
        switch_to,
        regenerate,
        edit,
    });

    // An answer still being written when the page was rendered (a reload, another tab):
    // attach to it and follow it live from where it is.
    Effect::new(move |_| {
        let Some(last) = messages
            .get_untracked()
            .last()
            .copied()
            .filter(|m| m.status.get_untracked() == MessageStatus::Streaming)
        else {
            return;
        };
        if current.get_untracked().is_some() {
            return;
        }
        streaming.set(true);
        current.set(Some(last));
        spawn_local(async move {
            match watch_answer(last.key()).await {
                Ok(stream) => {
                    let done = read_events(
                        stream.into_inner(),
                        messages,
                        current,
                        draft,
                        state,
                        scroll_to_end,
                    )
                    .await;
                    if !done {
                        refresh_message(conversation_id.get_value(), last).await;
                    }
                    announce();
                }
                // It ended in the meantime: show it as stored.
                Err(_) => refresh_message(conversation_id.get_value(), last).await,
            }
            streaming.set(false);
            current.set(None);
        });
    });

    // A message typed on the new-chat page is sent from here.
    Effect::new(move |_| {
        let id = conversation_id.get_value();
        if let Some(p) = state.pending.get_untracked().filter(|p| p.conversation_id == id) {
            state.pending.set(None);
            send(p.outgoing);
        }
    });
    Effect::new(move |_| {
        messages.track();
        scroll_to_end();
    });

    let on_stop = Callback::new(move |_| {
        if let Some(m) = current.get_untracked() {
            spawn_local(async move {
                let _ = stop_generation(m.key()).await;
            });
        }
    });

    view! {
        <section class="chat" class:busy=move || streaming.get()>
            <div class="sr-only announcer" role="status" aria-live="polite" aria-atomic="true">
                {move || announcement.get()}
            </div>
            <div class="messages" node_ref=list>
                <For each=move || messages.get() key=|m| m.key() let:message>
                    <MessageBubble message />
                </For>
            </div>
            <div class="conversation-tools">
                <SourcesPicker conversation_id=conversation_id.get_value() selected=collections />
                <ConversationSettingsPanel conversation_id=conversation_id.get_value() settings />
                <ContextGauge messages model />
                <span class="export-links">
                    "Export: "
                    <a href=format!("/api/v1/conversations/{}/export?format=markdown", conversation_id.get_value()) download>
                        "Markdown"
                    </a>
                    " · "
                    <a href=format!("/api/v1/conversations/{}/export?format=json", conversation_id.get_value()) download>
                        "JSON"
                    </a>
                </span>
            </div>
            <Composer
                draft
                streaming=streaming.into()
                server_error
                model
                conversation_id=conversation_id.get_value()
                on_send=Callback::new(send)
                on_stop
            />
        </section>
    }
}

/// A request that starts an answer stream.
type TurnCall = std::pin::Pin<Box<dyn Future<Output = Result<TextStream<ApiError>, ApiError>>>>;

/// Applies the events of one answer to the message list until the stream ends; whether
/// the answer's end (`done`) was seen.
async fn read_events(
    stream: impl futures::Stream<Item = Result<String, ApiError>>,
    messages: RwSignal<Vec<ChatMessage>>,
    current: RwSignal<Option<ChatMessage>>,
    draft: RwSignal<String>,
    state: ClientState,
    scroll_to_end: impl Fn() + Copy,
) -> bool {
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
                Ok(ChatEvent::Started {
                    user_message,
                    assistant_message,
                }) => {
                    draft.set(String::new());
                    let assistant = ChatMessage::new(*assistant_message);
                    let user = ChatMessage::new(*user_message);
                    // The branch shown now: up to the question's parent, then the question
                    // (new, edited or the same) and its new answer.
                    messages.update(|list| {
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
                    current.set(Some(assistant));
                    // The first message names the conversation: show the new title.
                    state.refresh_conversations();
                }
                Ok(ChatEvent::Answering {
                    provider,
                    model,
                    notice,
                }) => {
                    if let Some(m) = current.get_untracked() {
                        m.answering.set(Some(format!("{provider}/{model}")));
                        m.notice.set(notice);
                    }
                }
                Ok(ChatEvent::Token { text }) => {
                    if let Some(m) = current.get_untracked() {
                        m.content.update(|c| c.push_str(&text));
                        scroll_to_end();
                    }
                }
                Ok(ChatEvent::Resumed {
                    content,
                    provider,
                    model,
                    notice,
                }) => {
                    if let Some(m) = current.get_untracked() {
                        m.content.set(content);
                        if let (Some(provider), Some(model)) = (provider, model) {
                            m.answering.set(Some(format!("{provider}/{model}")));
                        }
                        m.notice.set(notice);
                        scroll_to_end();
                    }
                }
                Ok(ChatEvent::Done { message }) => {
                    if let Some(m) = current.get_untracked() {
                        m.apply(message);
                    }
                    finished = true;
                }
                Err(e) => leptos::logging::warn!("unreadable event: {e}"),
            }
        }
    }
    finished
}

/// Shows a message as stored (after an answer ended while nobody was attached).
async fn refresh_message(conversation_id: String, message: ChatMessage) {
    if let Ok(view) = get_conversation(conversation_id).await
        && let Some(stored) = view.messages.into_iter().find(|m| m.id == message.key())
    {
        message.apply(stored);
    }
}

fn fail_current(current: RwSignal<Option<ChatMessage>>, reason: &str) {
    if let Some(m) = current.get_untracked() {
        m.status.set(MessageStatus::Failed);
        m.error.set(Some(reason.to_owned()));
    }
}
