//! A conversation's own settings (system prompt, default temperature and max tokens, a
//! JSON Schema its answers follow) and the gauge of how full the model's context window is.

use leptos::{prelude::*, task::spawn_local};

use super::{message::ChatMessage, state::client_state};
use crate::api::{
    ApiError,
    conversations::{list_models, set_conversation_settings},
    types::{ConversationSettings, MessageStatus, Role},
    validation::{MAX_SYSTEM_PROMPT_CHARS, MAX_TOKENS_LIMIT, TEMPERATURE_RANGE, decimal},
};

/// The composer's parameters take the conversation's defaults where it has them.
pub fn apply_defaults(settings: &ConversationSettings) {
    if settings.temperature.is_none() && settings.max_tokens.is_none() {
        return;
    }
    client_state().params.update(|p| {
        p.temperature = settings.temperature.unwrap_or(p.temperature);
        p.max_tokens = settings.max_tokens.unwrap_or(p.max_tokens);
    });
}

/// An optional number field: empty is `None`, anything else must parse as `T`.
fn optional<T: std::str::FromStr>(field: &'static str, raw: &str, what: &str) -> Result<Option<T>, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid(field, format!("{field} must be {what}")))
}

/// The form's fields, as typed.
#[derive(Clone, Copy)]
struct Fields {
    system_prompt: RwSignal<String>,
    temperature: RwSignal<String>,
    max_tokens: RwSignal<String>,
    schema: RwSignal<String>,
}

impl Fields {
    fn new(settings: &ConversationSettings) -> Self {
        let shown = |v: Option<String>| RwSignal::new(v.unwrap_or_default());
        Self {
            system_prompt: shown(settings.system_prompt.clone()),
            temperature: shown(settings.temperature.map(|t| decimal(f64::from(t), 2))),
            max_tokens: shown(settings.max_tokens.map(|n| n.to_string())),
            schema: shown(
                settings
                    .response_schema
                    .as_ref()
                    .and_then(|s| serde_json::to_string_pretty(s).ok()),
            ),
        }
    }

    /// The fields as settings (empty fields: the defaults), checked by the contract.
    fn parse(self) -> Result<ConversationSettings, ApiError> {
        let schema = self.schema.get_untracked();
        let settings = ConversationSettings {
            temperature: optional("temperature", &self.temperature.get_untracked(), "a number")?,
            max_tokens: optional("max_tokens", &self.max_tokens.get_untracked(), "a whole number")?,
            system_prompt: Some(self.system_prompt.get_untracked()).filter(|p| !p.trim().is_empty()),
            response_schema: match schema.trim() {
                "" => None,
                text => Some(
                    serde_json::from_str(text)
                        .map_err(|e| ApiError::invalid("response_schema", format!("not JSON: {e}")))?,
                ),
            },
        };
        settings.check()?;
        Ok(settings)
    }
}

/// "Answer as JSON with this schema": a JSON Schema every answer of the conversation
/// follows (shown as formatted JSON).
#[component]
fn SchemaField(schema: RwSignal<String>, error: impl IntoView) -> impl IntoView {
    view! {
        <label for="response-schema">"Answer as JSON with this schema (optional)"</label>
        <textarea
            id="response-schema"
            class="schema-input"
            rows="3"
            spellcheck="false"
            placeholder=r#"{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}"#
            prop:value=move || schema.get()
            on:input=move |e| schema.set(event_target_value(&e))
        ></textarea>
        {error}
    }
}

#[component]
pub fn ConversationSettingsPanel(conversation_id: String, settings: ConversationSettings) -> impl IntoView {
    let id = StoredValue::new(conversation_id);
    let fields = Fields::new(&settings);
    let Fields {
        system_prompt,
        temperature,
        max_tokens,
        schema,
    } = fields;
    let error = RwSignal::new(None::<ApiError>);
    let saved = RwSignal::new(false);
    let error_for = move |field: &'static str| {
        move || {
            error
                .get()
                .filter(|e| e.field.as_deref() == Some(field))
                .map(|e| view! { <p class="field-error" data-field-error=field role="alert">{e.message}</p> })
        }
    };
    let save = move |e: leptos::ev::SubmitEvent| {
        e.prevent_default();
        saved.set(false);
        let settings = match fields.parse() {
            Ok(s) => s,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        spawn_local(async move {
            match set_conversation_settings(id.get_value(), settings).await {
                Ok(stored) => {
                    error.set(None);
                    saved.set(true);
                    apply_defaults(&stored);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <details class="conversation-settings">
            <summary>"Conversation settings"</summary>
            <form class="settings-form" novalidate on:submit=save>
                <label for="system-prompt">"System prompt"</label>
                <textarea
                    id="system-prompt"
                    rows="3"
                    maxlength=MAX_SYSTEM_PROMPT_CHARS
                    placeholder="Instructions for every answer in this conversation"
                    prop:value=move || system_prompt.get()
                    on:input=move |e| system_prompt.set(event_target_value(&e))
                ></textarea>
                {error_for("system_prompt")}
                <SamplingFields temperature max_tokens saved />
                {error_for("temperature")}
                {error_for("max_tokens")}
                <SchemaField schema error=error_for("response_schema") />
            </form>
        </details>
    }
}

/// The conversation's sampling defaults and the Save button.
#[component]
fn SamplingFields(
    temperature: RwSignal<String>,
    max_tokens: RwSignal<String>,
    saved: RwSignal<bool>,
) -> impl IntoView {
    let (t_min, t_max) = TEMPERATURE_RANGE;
    view! {
        <div class="settings-row">
            <label>
                {format!(
                    "Temperature ({}–{}) ",
                    decimal(f64::from(t_min), 2),
                    decimal(f64::from(t_max), 2)
                )}
                <input
                    id="conv-temperature"
                    inputmode="decimal"
                    placeholder="default"
                    prop:value=move || temperature.get()
                    on:input=move |e| temperature.set(event_target_value(&e))
                />
            </label>
            <label>
                {format!("Max tokens (1–{MAX_TOKENS_LIMIT}) ")}
                <input
                    id="conv-max-tokens"
                    inputmode="numeric"
                    placeholder="default"
                    prop:value=move || max_tokens.get()
                    on:input=move |e| max_tokens.set(event_target_value(&e))
                />
            </label>
            <button type="submit" class="save-settings">"Save"</button>
            {move || saved.get().then(|| view! { <span class="saved" role="status">"Saved"</span> })}
        </div>
    }
}

/// How much of the model's context window the conversation fills: the last answer's
/// prompt plus its own tokens, against the window of the model it answers with.
#[component]
pub fn ContextGauge(messages: RwSignal<Vec<ChatMessage>>, model: RwSignal<Option<String>>) -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    let used = Memo::new(move |_| {
        messages.with(|list| {
            list.iter()
                .rev()
                .filter(|m| m.role == Role::Assistant && m.status.get() != MessageStatus::Streaming)
                .find_map(|m| m.usage.get())
                .map(|u| u.prompt_tokens + u.completion_tokens)
        })
    });
    let window = move || {
        let list = models.get()?.ok()?;
        let id = model.get().or(list.default.clone())?;
        list.models.iter().find(|m| m.id == id).map(|m| m.context_window)
    };
    view! {
        <Transition fallback=|| ()>
            {move || {
                let (used, window) = (used.get()?, window()?);
                let percent = u64::from(used) * 100 / u64::from(window.max(1));
                Some(
                    view! {
                        <div class="context-gauge" title="How full the model's context window is">
                            <label for="context-meter">
                                {format!("Context {used} / {window} tokens ({percent}%)")}
                            </label>
                            <meter
                                id="context-meter"
                                min="0"
                                max=window
                                low=u64::from(window) * 7 / 10
                                high=u64::from(window) * 9 / 10
                                optimum="0"
                                value=used
                            ></meter>
                        </div>
                    },
                )
            }}
        </Transition>
    }
}
