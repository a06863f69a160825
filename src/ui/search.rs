//! Search across every message: a plain GET form in the sidebar (works without
//! JavaScript) and the results page, with the matching words marked.

use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{
    conversations::{search_messages, switch_branch},
    types::{Role, SearchHit},
};

/// The search box of the sidebar.
#[component]
pub fn SearchBox() -> impl IntoView {
    let query = use_query_map();
    view! {
        <form class="search" method="get" action="/search" role="search">
            <label class="sr-only" for="search">
                "Search messages"
            </label>
            <input
                id="search"
                type="search"
                name="q"
                placeholder="Search messages"
                maxlength="200"
                value=move || query.with(|q| q.get("q")).unwrap_or_default()
            />
        </form>
    }
}

/// `/search?q=`: the matching messages, best first.
#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let q = Memo::new(move |_| query.with(|q| q.get("q")).unwrap_or_default());
    let hits = Resource::new(move || q.get(), search_messages);
    view! {
        <section class="search-page">
            <h1>"Search"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let q = q.get_untracked();
                    match hits.await {
                        _ if q.trim().is_empty() => view! { <p class="muted">"Type words to find in your conversations."</p> }.into_any(),
                        Ok(list) if list.is_empty() => {
                            view! { <p class="muted no-hits">{format!("Nothing found for “{q}”.")}</p> }.into_any()
                        }
                        Ok(list) => {
                            view! {
                                <p class="muted" role="status">{format!("{} found for “{q}”", list.len())}</p>
                                <ul class="search-hits">
                                    {list.into_iter().map(|hit| view! { <Hit hit /> }).collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="field-error" role="alert">{e.message}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// One result: opens its conversation showing the branch the message is on.
#[component]
fn Hit(hit: SearchHit) -> impl IntoView {
    let navigate = use_navigate();
    let href = format!("/c/{}", hit.conversation_id);
    let (conversation, message) = (hit.conversation_id.clone(), hit.message_id.clone());
    let open = {
        let href = href.clone();
        move |e: leptos::ev::MouseEvent| {
            e.prevent_default();
            let (conversation, message, href, navigate) = (
                conversation.clone(),
                message.clone(),
                href.clone(),
                navigate.clone(),
            );
            spawn_local(async move {
                let _ = switch_branch(conversation, message).await;
                navigate(&href, Default::default());
            });
        }
    };
    view! {
        <li class="search-hit" data-message=hit.message_id.clone()>
            <a href=href on:click=open>
                <span class="hit-title">{hit.conversation_title}</span>
                <span class="hit-role">{if hit.role == Role::User { "You" } else { "Stoa" }}</span>
                <span class="hit-snippet">
                    {hit
                        .snippet
                        .into_iter()
                        .map(|part| {
                            if part.matched {
                                view! { <mark>{part.text}</mark> }.into_any()
                            } else {
                                part.text.into_any()
                            }
                        })
                        .collect_view()}
                </span>
            </a>
        </li>
    }
}
