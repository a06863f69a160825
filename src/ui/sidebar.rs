//! The conversation list, newest activity first.

use leptos::prelude::*;
use leptos_router::components::A;

use super::state::client_state;
use crate::api::conversations::list_conversations;

#[component]
pub fn Sidebar() -> impl IntoView {
    let state = client_state();
    let conversations = Resource::new(
        move || state.conversations_version.get(),
        |_| list_conversations(),
    );

    view! {
        <nav class="sidebar" aria-label="Conversations">
            <div class="brand">"Stoa"</div>
            <A href="/" attr:class="new-chat">
                "+ New chat"
            </A>
            <A href="/documents" attr:class="documents-link">
                "Documents"
            </A>
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
                                        .map(|c| {
                                            let href = format!("/c/{}", c.id);
                                            view! {
                                                <li>
                                                    <A href=href attr:class="conversation-link">
                                                        {c.title}
                                                    </A>
                                                </li>
                                            }
                                        })
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
        </nav>
    }
}
