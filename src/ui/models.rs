//! The model picker: every provider's models, grouped by provider, the local one marked,
//! unavailable ones shown but not selectable.

use leptos::prelude::*;

use crate::api::{conversations::list_models, types::ModelList};

/// `selected` holds a `provider/model` id; when it is empty the default model is chosen
/// as soon as the list arrives.
#[component]
pub fn ModelPicker(selected: RwSignal<Option<String>>) -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    view! {
        <Suspense fallback=|| view! { <span class="muted">"Loading models…"</span> }>
            {move || Suspend::new(async move {
                match models.await {
                    Ok(list) => {
                        if selected.get_untracked().is_none() {
                            selected.set(list.default.clone());
                        }
                        view! { <ModelSelect list selected /> }.into_any()
                    }
                    Err(e) => view! { <span class="field-error">{e.message}</span> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ModelSelect(list: ModelList, selected: RwSignal<Option<String>>) -> impl IntoView {
    let mut providers: Vec<String> = Vec::new();
    for m in &list.models {
        if !providers.contains(&m.provider) {
            providers.push(m.provider.clone());
        }
    }
    let groups = providers
        .into_iter()
        .map(|provider| {
            let options = list
                .models
                .iter()
                .filter(|m| m.provider == provider)
                .map(|m| {
                    let id = m.id.clone();
                    // The closed select shows no group, so the label names the provider.
                    let label = format!(
                        "{} ({}){}",
                        m.model,
                        if m.local { "local" } else { m.provider.as_str() },
                        if m.available { "" } else { ", unavailable" }
                    );
                    let is_selected = {
                        let id = id.clone();
                        move || selected.get().as_deref() == Some(id.as_str())
                    };
                    view! {
                        <option
                            value=id
                            disabled=!m.available
                            selected=is_selected
                            title=format!("{} token context", m.context_window)
                        >
                            {label}
                        </option>
                    }
                })
                .collect_view();
            view! { <optgroup label=provider>{options}</optgroup> }
        })
        .collect_view();
    view! {
        <label class="model-picker">
            <span class="sr-only">"Model"</span>
            <select
                id="model"
                name="model"
                on:change=move |e| {
                    let v = event_target_value(&e);
                    selected.set((!v.is_empty()).then_some(v));
                }
            >
                {groups}
            </select>
        </label>
    }
}
