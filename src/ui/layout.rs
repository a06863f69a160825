//! The frame around every page: sidebar with conversations, main area.

use leptos::prelude::*;

use super::sidebar::Sidebar;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Set in the browser only (effects do not run on the server): tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    // Signed out (accounts on): the sign-in pages alone, without the conversations.
    let session = super::session::session();
    let signed_out = session.accounts && !session.signed_in();
    view! {
        <a
            class="skip-link"
            href="#message"
            on:click=move |e| {
                // The router would take the fragment as a navigation; move the focus instead.
                if let Some(el) = document().get_element_by_id("message") {
                    e.prevent_default();
                    if let Ok(el) = leptos::wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(el) {
                        let _ = el.focus();
                    }
                }
            }
        >
            "Skip to the message box"
        </a>
        <div class="app" class:signed-out=signed_out data-hydrated=move || hydrated.get().to_string()>
            {(!signed_out).then(|| view! { <Sidebar /> })}
            <main class="main">
                {children()}
            </main>
        </div>
    }
}
