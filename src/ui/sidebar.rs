//! The conversation list, newest activity first, with rename and delete (undoable).

use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_location, hooks::use_navigate};

use super::state::client_state;
use crate::api::{
    conversations::{delete_conversation, list_conversations, rename_conversation, restore_conversation},
    types::ConversationSummary,
};

#[component]
pub fn Sidebar() -> impl IntoView {
    let state = client_state();
    let conversations = Resource::new(
        move || state.conversations_version.get(),
        |_| list_conversations(),
    );
    // The conversation just deleted, offered for Undo.
    let deleted = RwSignal::new(None::<ConversationSummary>);

    view! {
        <nav class="sidebar" aria-label="Conversations">
            <div class="brand">"Stoa"</div>
            <A href="/" attr:class="new-chat">
                "+ New chat"
            </A>
            <A href="/documents" attr:class="documents-link">
                "Documents"
            </A>
            <super::search::SearchBox />
            {move || {
                deleted
                    .get()
                    .map(|c| {
                        let id = c.id.clone();
                        view! {
                            <div class="undo" role="status">
                                {format!("Deleted “{}”. ", c.title)}
                                <button
                                    type="button"
                                    class="undo-button"
                                    on:click=move |_| {
                                        let id = id.clone();
                                        spawn_local(async move {
                                            if restore_conversation(id).await.is_ok() {
                                                deleted.set(None);
                                                state.refresh_conversations();
                                            }
                                        });
                                    }
                                >
                                    "Undo"
                                </button>
                            </div>
                        }
                    })
            }}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match conversations.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted empty">"No conversations yet."</p> }.into_any()
                        }
                        Ok(list) => {
                            view! {
                                <ul class="conversation-list">
                                    {list
                                        .into_iter()
                                        .map(|c| view! { <ConversationItem conversation=c deleted /> })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! { <p class="error">{format!("Could not load conversations: {e}")}</p> }
                                .into_any()
                        }
                    }
                })}
            </Transition>
            <AccountFooter />
            <super::session::ThemeToggle />
        </nav>
    }
}

#[component]
fn ConversationItem(
    conversation: ConversationSummary,
    deleted: RwSignal<Option<ConversationSummary>>,
) -> impl IntoView {
    let state = client_state();
    let navigate = use_navigate();
    let location = use_location();
    let href = format!("/c/{}", conversation.id);
    let editing = RwSignal::new(false);
    let title = RwSignal::new(conversation.title.clone());
    let error = RwSignal::new(None::<String>);
    let id = StoredValue::new(conversation.id.clone());
    let summary = StoredValue::new(conversation);

    let save = move || {
        let new_title = title.get_untracked();
        spawn_local(async move {
            match rename_conversation(id.get_value(), new_title).await {
                Ok(_) => {
                    editing.set(false);
                    error.set(None);
                    state.refresh_conversations();
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let remove = move |_| {
        let navigate = navigate.clone();
        let here = location.pathname.get_untracked() == format!("/c/{}", id.get_value());
        spawn_local(async move {
            if delete_conversation(id.get_value()).await.is_ok() {
                deleted.set(Some(summary.get_value()));
                state.refresh_conversations();
                if here {
                    navigate("/", Default::default());
                }
            }
        });
    };

    view! {
        <li class="conversation-item">
            {move || {
                if editing.get() {
                    view! {
                        <input
                            class="rename-input"
                            aria-label="Conversation title"
                            prop:value=move || title.get()
                            on:input=move |e| title.set(event_target_value(&e))
                            on:keydown=move |e: ev::KeyboardEvent| match e.key().as_str() {
                                "Enter" => save(),
                                "Escape" => editing.set(false),
                                _ => {}
                            }
                        />
                    }
                        .into_any()
                } else {
                    view! {
                        <A href=href.clone() attr:class="conversation-link">
                            {summary.get_value().title}
                        </A>
                    }
                        .into_any()
                }
            }}
            <span class="item-actions">
                <button type="button" class="rename" aria-label="Rename" title="Rename" on:click=move |_| editing.set(true)>
                    "✎"
                </button>
                <button type="button" class="delete" aria-label="Delete" title="Delete" on:click=remove>
                    "✕"
                </button>
            </span>
            {move || error.get().map(|e| view! { <p class="field-error" data-field-error="title">{e}</p> })}
        </li>
    }
}

/// Who is signed in, with their account page, the admin page (admins) and sign-out (a
/// plain form, so it works without JavaScript). Only when accounts are on.
#[component]
fn AccountFooter() -> impl IntoView {
    let session = super::session::session();
    let (Some(name), true) = (session.name.clone(), session.accounts) else {
        return ().into_any();
    };
    view! {
        <div class="account-footer">
            <span class="signed-in-as">"Signed in as " <strong>{name}</strong></span>
            <A href="/account" attr:class="account-link">
                "Account & API keys"
            </A>
            {session
                .admin
                .then(|| view! { <A href="/admin" attr:class="admin-link">"Admin"</A> })}
            <form method="post" action="/auth/signout" class="signout-form">
                <super::session::CsrfField />
                <button type="submit" class="signout">"Sign out"</button>
            </form>
        </div>
    }
    .into_any()
}
