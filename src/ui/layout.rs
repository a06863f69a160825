//! The frame around every page: sidebar with conversations, header, main area.

use leptos::prelude::*;

use super::sidebar::Sidebar;
use crate::api::conversations::current_model;

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Set in the browser only (effects do not run on the server): tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let model = Resource::new(|| (), |_| current_model());

    view! {
        <div class="app" data-hydrated=move || hydrated.get().to_string()>
            <Sidebar />
            <main class="main">
                <header class="topbar">
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            model
                                .await
                                .ok()
                                .map(|m| {
                                    view! {
                                        <span class="model" title="The model that answers">
                                            <span class="model-provider">{m.provider}</span>
                                            " · "
                                            <span class="model-name">{m.model}</span>
                                            <span class="model-ctx">
                                                {format!(" · {} token context", m.context_window)}
                                            </span>
                                        </span>
                                    }
                                })
                        })}
                    </Suspense>
                </header>
                {children()}
            </main>
        </div>
    }
}
