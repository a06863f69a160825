//! The frame around every page: sidebar with conversations, main area.

use leptos::prelude::*;

use super::sidebar::Sidebar;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Set in the browser only (effects do not run on the server): tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <div class="app" data-hydrated=move || hydrated.get().to_string()>
            <Sidebar />
            <main class="main">
                {children()}
            </main>
        </div>
    }
}
