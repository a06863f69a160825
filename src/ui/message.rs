//! One message on screen. Its text, status and usage are signals so that a streaming
//! answer updates only itself, never the rest of the list.

use leptos::prelude::*;

use super::markdown::answer_html;
use crate::api::validation::decimal;
use crate::api::{
    documents::Citation,
    trace::AnswerTrace,
    types::{MessageStatus, MessageView, Role, Usage},
};

#[derive(Clone, Copy)]
pub struct ChatMessage {
    pub id: StoredValue<String>,
    /// The message before it in its branch.
    pub parent_id: StoredValue<Option<String>>,
    /// Its versions (itself included), oldest first.
    pub siblings: RwSignal<Vec<String>>,
    pub role: Role,
    pub content: RwSignal<String>,
    pub status: RwSignal<MessageStatus>,
    pub error: RwSignal<Option<String>>,
    pub notice: RwSignal<Option<String>>,
    pub usage: RwSignal<Option<Usage>>,
    /// `provider/model` writing the answer, known once it has begun.
    pub answering: RwSignal<Option<String>>,
    /// Passages of the user's documents the answer was given.
    pub citations: RwSignal<Vec<Citation>>,
    /// How the answer was made, once it has ended.
    pub trace: RwSignal<Option<AnswerTrace>>,
}

impl ChatMessage {
    pub fn new(m: MessageView) -> Self {
        Self {
            id: StoredValue::new(m.id),
            parent_id: StoredValue::new(m.parent_id),
            siblings: RwSignal::new(m.siblings),
            role: m.role,
            content: RwSignal::new(m.content),
            status: RwSignal::new(m.status),
            error: RwSignal::new(m.error),
            notice: RwSignal::new(m.notice),
            citations: RwSignal::new(m.citations),
            trace: RwSignal::new(m.trace.map(|t| *t)),
            answering: RwSignal::new(m.usage.as_ref().map(|u| format!("{}/{}", u.provider, u.model))),
            usage: RwSignal::new(m.usage),
        }
    }

    /// Takes the stored state of the message (at the end of a stream).
    pub fn apply(&self, m: MessageView) {
        self.content.set(m.content);
        self.status.set(m.status);
        self.error.set(m.error);
        self.notice.set(m.notice);
        // Unchanged parts are not set again: their open <details> would close.
        if self.citations.with_untracked(|c| *c != m.citations) {
            self.citations.set(m.citations);
        }
        let trace = m.trace.map(|t| *t);
        if self.trace.with_untracked(|t| *t != trace) {
            self.trace.set(trace);
        }
        self.answering
            .set(m.usage.as_ref().map(|u| format!("{}/{}", u.provider, u.model)));
        self.usage.set(m.usage);
    }

    pub fn key(&self) -> String {
        self.id.get_value()
    }
}

/// What a conversation lets its messages do: show another version, answer again, edit a
/// question. Provided by the conversation page; absent elsewhere.
#[derive(Clone, Copy)]
pub struct MessageActions {
    /// An answer is being written: nothing else may start.
    pub busy: Signal<bool>,
    pub switch_to: Callback<String>,
    pub regenerate: Callback<String>,
    /// (question id, new text)
    pub edit: Callback<(String, String)>,
}

/// `‹ 2 / 3 ›` between the versions of a message.
#[component]
fn Versions(message: ChatMessage, actions: MessageActions) -> impl IntoView {
    let id = message.key();
    move || {
        let siblings = message.siblings.get();
        let n = siblings.len();
        let i = siblings.iter().position(|s| *s == id)?;
        (n > 1).then(|| {
            let (prev, next) = (
                i.checked_sub(1).map(|j| siblings[j].clone()),
                siblings.get(i + 1).cloned(),
            );
            view! {
                <span class="versions" role="group" aria-label="Versions">
                    <button
                        type="button"
                        class="version-prev"
                        aria-label="Previous version"
                        disabled=prev.is_none()
                        on:click={
                            let prev = prev.clone();
                            move |_| {
                                if let Some(p) = prev.clone()
                                    && !actions.busy.get_untracked()
                                {
                                    actions.switch_to.run(p);
                                }
                            }
                        }
                    >
                        "‹"
                    </button>
                    <span class="version-label">{format!("{} / {n}", i + 1)}</span>
                    <button
                        type="button"
                        class="version-next"
                        aria-label="Next version"
                        disabled=next.is_none()
                        on:click={
                            let next = next.clone();
                            move |_| {
                                if let Some(n) = next.clone()
                                    && !actions.busy.get_untracked()
                                {
                                    actions.switch_to.run(n);
                                }
                            }
                        }
                    >
                        "›"
                    </button>
                </span>
            }
        })
    }
}

/// Versions, and Regenerate (answers) or Edit (questions), under a message. While an
/// answer is written they are inert: one class on the chat greys them all (a long history
/// then changes one node, not two per message), and a click checks again.
#[component]
fn Actions(
    message: ChatMessage,
    actions: MessageActions,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let streaming = move || message.status.get() == MessageStatus::Streaming;
    view! {
        <div class="message-actions">
            <Versions message actions />
            {match message.role {
                Role::Assistant => {
                    view! {
                        <button
                            type="button"
                            class="regenerate"
                            disabled=streaming
                            on:click=move |_| {
                                if !actions.busy.get_untracked() {
                                    actions.regenerate.run(message.key());
                                }
                            }
                        >
                            "Regenerate"
                        </button>
                    }
                        .into_any()
                }
                _ => {
                    view! {
                        <button
                            type="button"
                            class="edit"
                            on:click=move |_| {
                                if !actions.busy.get_untracked() {
                                    editing.set(Some(message.content.get_untracked()));
                                }
                            }
                        >
                            "Edit"
                        </button>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// A question being edited: Save & send makes a new version of it, Cancel keeps it.
#[component]
fn EditBox(
    message: ChatMessage,
    actions: MessageActions,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    // Keyboard users land in the box they opened.
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(el) = textarea.get() {
            let _ = el.focus();
        }
    });
    let save = move || {
        if let Some(text) = editing.get_untracked().filter(|t| !t.trim().is_empty()) {
            editing.set(None);
            actions.edit.run((message.key(), text));
        }
    };
    view! {
        <div class="edit-box">
            <label class="sr-only" for=format!("edit-{}", message.key())>
                "Edit your message"
            </label>
            <textarea
                node_ref=textarea
                id=format!("edit-{}", message.key())
                class="edit-text"
                rows="3"
                prop:value=move || editing.get().unwrap_or_default()
                on:input=move |e| editing.set(Some(event_target_value(&e)))
                on:keydown=move |e: leptos::ev::KeyboardEvent| {
                    if e.key() == "Escape" {
                        editing.set(None);
                    } else if e.key() == "Enter" && !e.shift_key() {
                        e.prevent_default();
                        save();
                    }
                }
            ></textarea>
            <div class="edit-buttons">
                <button type="button" class="save-edit" on:click=move |_| save()>
                    "Save & send"
                </button>
                <button type="button" class="cancel-edit" on:click=move |_| editing.set(None)>
                    "Cancel"
                </button>
            </div>
        </div>
    }
}

fn status_label(status: MessageStatus) -> Option<&'static str> {
    match status {
        MessageStatus::Complete => None,
        MessageStatus::Streaming => Some("writing…"),
        MessageStatus::Stopped => Some("stopped"),
        MessageStatus::Failed => Some("failed"),
        MessageStatus::Interrupted => Some("interrupted"),
    }
}

fn usage_line(u: &Usage) -> String {
    let mut parts = vec![
        format!("{} · {}", u.provider, u.model),
        format!(
            "{} prompt + {} answer tokens",
            u.prompt_tokens, u.completion_tokens
        ),
    ];
    if let Some(ttft) = u.ttft_ms {
        parts.push(format!("first token {ttft} ms"));
    }
    if let Some(tps) = u.tokens_per_second {
        parts.push(format!("{} tok/s", decimal(f64::from(tps), 1)));
    }
    parts.join(" · ")
}

/// What a message says: an answer as rendered Markdown; a question as typed, or the box
/// that edits it.
#[component]
fn MessageBody(
    message: ChatMessage,
    editing: RwSignal<Option<String>>,
    actions: Option<MessageActions>,
) -> impl IntoView {
    match message.role {
        // Answers are Markdown, rendered safely (see `markdown`); what people typed is
        // shown as typed.
        Role::Assistant => view! {
            <div
                class="message-content markdown"
                inner_html=move || answer_html(&message.content.get())
                on:click=copy_code
            ></div>
        }
        .into_any(),
        _ => (move || match (editing.get().is_some(), actions) {
            (true, Some(actions)) => view! { <EditBox message actions editing /> }.into_any(),
            _ => view! { <div class="message-content">{move || message.content.get()}</div> }.into_any(),
        })
        .into_any(),
    }
}

#[component]
pub fn MessageBubble(message: ChatMessage) -> impl IntoView {
    let role = message.role.as_str();
    let status = message.status;
    let streaming = move || status.get() == MessageStatus::Streaming;
    let actions = use_context::<MessageActions>();
    let editing = RwSignal::new(None::<String>);
    view! {
        <article
            class=format!("message message-{role}")
            data-role=role
            data-status=move || status.get().as_str()
            data-model=move || message.answering.get()
            data-length=move || message.content.with(|c| c.chars().count())
            aria-busy=move || streaming().to_string()
        >
            <div class="message-author">
                {match message.role {
                    Role::User => "You",
                    Role::Assistant => "Stoa",
                    Role::System => "System",
                }}
            </div>
            <MessageBody message editing actions />
            {move || {
                let citations = message.citations.get();
                (!citations.is_empty()).then(|| view! { <Citations citations /> })
            }}
            {move || {
                message
                    .notice
                    .get()
                    .map(|n| view! { <div class="message-notice" role="note">{n}</div> })
            }}
            {move || {
                status_label(status.get())
                    .map(|label| {
                        view! {
                            <div class=format!("message-status status-{}", status.get().as_str())>
                                {label}
                                {move || {
                                    (status.get() == MessageStatus::Streaming)
                                        .then(|| message.answering.get())
                                        .flatten()
                                        .map(|m| format!(" ({m})"))
                                }}
                                {move || message.error.get().map(|e| format!(": {e}"))}
                            </div>
                        }
                    })
            }}
            {move || {
                (!streaming())
                    .then(|| message.usage.get())
                    .flatten()
                    .map(|u| view! { <div class="message-usage">{usage_line(&u)}</div> })
            }}
            {(message.role == Role::Assistant).then(|| view! { <HowItWasMade trace=message.trace status /> })}
            {actions.map(|actions| view! { <Actions message actions editing /> })}
        </article>
    }
}

/// "How this answer was made": the query the documents were searched with, each step with
/// its sizes and time, and whether a grammar shaped the answer (a `<details>` element, so
/// it works without JavaScript). The element stays while its contents follow the trace, so
/// an open one stays open. The contents are written as one escaped HTML string: as a tree
/// of views the table cost the bundle some 4 KB compressed.
#[component]
fn HowItWasMade(trace: RwSignal<Option<AnswerTrace>>, status: RwSignal<MessageStatus>) -> impl IntoView {
    let shown = move || {
        status.get() != MessageStatus::Streaming
            && trace.with(|t| t.as_ref().is_some_and(|t| !t.steps.is_empty()))
    };
    view! {
        <details class="answer-trace" hidden=move || !shown()>
            <summary>"How this answer was made"</summary>
            <div inner_html=move || trace.with(|t| t.as_ref().map(trace_html).unwrap_or_default())></div>
        </details>
    }
}

fn trace_html(trace: &AnswerTrace) -> String {
    use super::highlight::escape;
    let mut out = String::new();
    if let Some(q) = &trace.query {
        out.push_str("<p class=\"trace-query\">Searched for: <q>");
        escape(&mut out, q);
        out.push_str("</q></p>");
    }
    out.push_str("<table><tbody>");
    for s in &trace.steps {
        let counts = match (s.input, s.output) {
            (Some(i), Some(o)) => format!("{i} → {o}"),
            (None, Some(n)) | (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        };
        out.push_str("<tr data-step=\"");
        escape(&mut out, &s.step);
        out.push_str("\"><td>");
        escape(&mut out, step_name(&s.step));
        out.push_str("</td><td class=\"trace-counts\">");
        out.push_str(&counts);
        out.push_str("</td><td class=\"trace-ms\">");
        out.push_str(&s.ms.to_string());
        out.push_str(" ms</td><td class=\"trace-note\">");
        escape(&mut out, s.note.as_deref().unwrap_or_default());
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table>");
    if trace.grammar {
        out.push_str("<p class=\"trace-grammar\">Shaped by a grammar to the conversation's JSON Schema.</p>");
    }
    out
}

fn step_name(step: &str) -> &str {
    match step {
        "rewrite" => "Rewrote the follow-up",
        "search" => "Searched (keywords + meaning)",
        "rerank" => "Re-ranked",
        "select" => "Chose passages",
        "first_token" => "First token",
        "generate" => "Wrote the answer",
        other => other,
    }
}

/// Sources as chips `[n] Document › Section`; each opens its passage (works without
/// JavaScript: a `<details>` element).
#[component]
fn Citations(citations: Vec<Citation>) -> impl IntoView {
    view! {
        <div class="citations" role="list" aria-label="Sources">
            {citations
                .into_iter()
                .map(|c| {
                    let section = c.heading.clone().map(|h| format!(" › {h}")).unwrap_or_default();
                    view! {
                        <details class="citation" role="listitem" data-citation=c.n>
                            <summary class="chip">{format!("[{}] {}{section}", c.n, c.document_title)}</summary>
                            <blockquote class="passage">
                                <div class="passage-source">
                                    {format!("{} · passage {}{section}", c.document_title, c.position + 1)}
                                </div>
                                <p class="passage-text">{c.text}</p>
                            </blockquote>
                        </details>
                    }
                })
                .collect_view()}
        </div>
    }
}

/// Copies a code block's text when its Copy button is clicked.
fn copy_code(e: leptos::ev::MouseEvent) {
    use leptos::wasm_bindgen::JsCast;
    let Some(button) = e
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .filter(|el| el.class_list().contains("copy-code"))
    else {
        return;
    };
    let code = button
        .parent_element()
        .and_then(|block| block.query_selector("code").ok().flatten())
        .and_then(|code| code.text_content());
    if let (Some(code), Some(window)) = (code, web_sys::window()) {
        let _ = window.navigator().clipboard().write_text(&code);
        button.set_text_content(Some("Copied"));
    }
}
