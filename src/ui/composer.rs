//! The message box with its parameters. Validates with the contract's own rules before
//! anything is sent, and shows each error (its own or the server's) next to its field.

use leptos::{ev, prelude::*};

use super::{
    models::ModelPicker,
    state::{Outgoing, client_state},
};
use crate::api::{
    ApiError,
    types::GenerationParams,
    validation::{
        FieldError, MAX_MESSAGE_CHARS, MAX_TOKENS_LIMIT, TEMPERATURE_RANGE, decimal, validate_max_tokens,
        validate_message, validate_temperature,
    },
};

/// Errors per field, as shown.
#[derive(Debug, Clone, Default, PartialEq)]
struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    fn get(&self, field: &str) -> Option<String> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.clone())
    }
}

fn parse_number<T: std::str::FromStr>(field: &'static str, raw: &str) -> Result<T, FieldError> {
    raw.trim().parse().map_err(|_| FieldError {
        field,
        message: format!("{field} must be a number"),
    })
}

/// Everything wrong with the form, or the message and parameters to send.
fn check(message: &str, temperature: &str, max_tokens: &str) -> Result<GenerationParams, Vec<FieldError>> {
    let temperature =
        parse_number::<f32>("temperature", temperature).and_then(|t| validate_temperature(t).map(|_| t));
    let max_tokens =
        parse_number::<u32>("max_tokens", max_tokens).and_then(|n| validate_max_tokens(n).map(|_| n));
    match (validate_message(message), temperature, max_tokens) {
        (Ok(()), Ok(temperature), Ok(max_tokens)) => Ok(GenerationParams {
            temperature,
            max_tokens,
        }),
        (m, t, n) => Err([m.err(), t.err(), n.err()].into_iter().flatten().collect()),
    }
}

#[component]
pub fn Composer(
    /// The text being written; kept when sending fails.
    draft: RwSignal<String>,
    /// An answer is streaming: Send is disabled and Stop enabled.
    streaming: Signal<bool>,
    /// The server's rejection of the last send, shown next to its field.
    server_error: RwSignal<Option<ApiError>>,
    /// The model to answer with (`provider/model`).
    model: RwSignal<Option<String>>,
    /// The conversation the form posts to without JavaScript (`None`: a new one).
    #[prop(optional)]
    conversation_id: Option<String>,
    on_send: Callback<Outgoing>,
    on_stop: Callback<()>,
) -> impl IntoView {
    let params = client_state().params;
    let trim_history = client_state().trim_history;
    let (temperature, max_tokens) = param_fields(params);
    let local_errors = RwSignal::new(FieldErrors::default());
    restore_form_error(server_error);
    let errors = all_errors(local_errors, server_error);

    let submit = move || {
        if streaming.get_untracked() {
            return;
        }
        let text = draft.get_untracked();
        match check(&text, &temperature.get_untracked(), &max_tokens.get_untracked()) {
            Err(errs) => {
                local_errors.set(FieldErrors(
                    errs.into_iter()
                        .map(|e| (e.field.to_owned(), e.message))
                        .collect(),
                ));
            }
            Ok(p) => {
                local_errors.set(FieldErrors::default());
                server_error.set(None);
                params.set(p);
                on_send.run(Outgoing {
                    message: text,
                    params: p,
                    model: model.get_untracked(),
                    trim_history: trim_history.get_untracked(),
                });
            }
        }
    };

    view! {
        // novalidate: the contract's own rules give the messages, not the browser's tooltips.
        // Without JavaScript the form posts to `chat/send_form` and the page reloads with
        // the answer; with it, submit is handled here and the answer streams.
        <form
            class="composer"
            novalidate
            method="post"
            action="/api/chat/send_form"
            on:submit=move |e: ev::SubmitEvent| {
                e.prevent_default();
                submit();
            }
        >
            <input type="hidden" name="conversation_id" value=conversation_id.unwrap_or_default() />
            <super::session::CsrfField />
            <MessageField draft errors submit=Callback::new(move |_| submit()) />
            <ErrorNote errors field="model" />
            <ErrorNote errors field="form" />
            <div class="composer-bar">
                <ParamsFields errors temperature max_tokens trim_history />
                <ModelPicker selected=model />
                <CharCount draft />
                <SendButtons streaming on_stop />
            </div>
        </form>
    }
}

/// The text of the temperature and max_tokens fields, following the parameters when a
/// conversation's defaults change them.
fn param_fields(params: RwSignal<GenerationParams>) -> (RwSignal<String>, RwSignal<String>) {
    let initial = params.get_untracked();
    let temperature = RwSignal::new(decimal(f64::from(initial.temperature), 2));
    let max_tokens = RwSignal::new(initial.max_tokens.to_string());
    Effect::new(move |_| {
        let p = params.get();
        temperature.set(decimal(f64::from(p.temperature), 2));
        max_tokens.set(p.max_tokens.to_string());
    });
    (temperature, max_tokens)
}

/// Stop while an answer streams, Send otherwise.
#[component]
fn SendButtons(streaming: Signal<bool>, on_stop: Callback<()>) -> impl IntoView {
    view! {
        <button type="button" class="stop" disabled=move || !streaming.get() on:click=move |_| on_stop.run(())>
            "Stop"
        </button>
        <button type="submit" class="send" disabled=move || streaming.get()>
            "Send"
        </button>
    }
}

/// Without JavaScript a rejected form comes back with its error in the query.
fn restore_form_error(server_error: RwSignal<Option<ApiError>>) {
    let query = leptos_router::hooks::use_query_map();
    if let Some(message) = query.with_untracked(|q| q.get("error")) {
        let field = query
            .with_untracked(|q| q.get("field"))
            .unwrap_or_else(|| "form".into());
        server_error.set(Some(ApiError::invalid(field, message)));
    }
}

/// The form's own findings and the server's rejection, by field.
fn all_errors(local: RwSignal<FieldErrors>, server: RwSignal<Option<ApiError>>) -> Memo<FieldErrors> {
    Memo::new(move |_| {
        let mut all = local.get();
        if let Some(e) = server.get() {
            let field = e.field.clone().unwrap_or_else(|| "form".into());
            all.0.push((field, e.message.clone()));
        }
        all
    })
}

/// The message box: Enter sends, Shift+Enter starts a new line.
#[component]
fn MessageField(draft: RwSignal<String>, errors: Memo<FieldErrors>, submit: Callback<()>) -> impl IntoView {
    let on_keydown = move |e: ev::KeyboardEvent| {
        if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
            e.prevent_default();
            submit.run(());
        }
    };
    view! {
        <label class="sr-only" for="message">
            "Message"
        </label>
        <textarea
            id="message"
            name="message"
            rows="3"
            placeholder="Ask anything… (Enter sends, Shift+Enter for a new line)"
            aria-invalid=invalid(errors, "message")
            aria-describedby="message-error"
            prop:value=move || draft.get()
            on:input=move |e| draft.set(event_target_value(&e))
            on:keydown=on_keydown
        ></textarea>
        <ErrorNote errors field="message" />
    }
}

#[component]
fn CharCount(draft: RwSignal<String>) -> impl IntoView {
    let count = move || draft.with(|d| d.chars().count());
    view! {
        <span class="char-count" class:over=move || { count() > MAX_MESSAGE_CHARS }>
            {move || format!("{} / {MAX_MESSAGE_CHARS}", count())}
        </span>
    }
}

/// The answer's parameters (temperature, max tokens, history trimming), folded away.
#[component]
fn ParamsFields(
    errors: Memo<FieldErrors>,
    temperature: RwSignal<String>,
    max_tokens: RwSignal<String>,
    trim_history: RwSignal<bool>,
) -> impl IntoView {
    view! {
        <details class="params">
            <summary>"Parameters"</summary>
            <label>
                "Temperature "
                <input
                    id="temperature"
                    name="temperature"
                    type="number"
                    inputmode="decimal"
                    step="0.1"
                    min=decimal(f64::from(TEMPERATURE_RANGE.0), 2)
                    max=decimal(f64::from(TEMPERATURE_RANGE.1), 2)
                    aria-invalid=invalid(errors, "temperature")
                    prop:value=move || temperature.get()
                    on:input=move |e| temperature.set(event_target_value(&e))
                />
            </label>
            <ErrorNote errors field="temperature" />
            <label>
                "Max tokens "
                <input
                    id="max_tokens"
                    name="max_tokens"
                    type="number"
                    inputmode="numeric"
                    step="1"
                    min="1"
                    max=MAX_TOKENS_LIMIT
                    aria-invalid=invalid(errors, "max_tokens")
                    prop:value=move || max_tokens.get()
                    on:input=move |e| max_tokens.set(event_target_value(&e))
                />
            </label>
            <ErrorNote errors field="max_tokens" />
            <label class="check">
                <input
                    id="trim_history"
                    name="trim_history"
                    type="checkbox"
                    prop:checked=move || trim_history.get()
                    on:change=move |e| trim_history.set(event_target_checked(&e))
                />
                " Drop the oldest messages when the chat gets too long"
            </label>
        </details>
    }
}

/// The error shown under a field, if it has one.
#[component]
fn ErrorNote(errors: Memo<FieldErrors>, field: &'static str) -> impl IntoView {
    move || {
        errors.get().get(field).map(|message| {
            view! {
                <p class="field-error" data-field-error=field id=format!("{field}-error") role="alert">
                    {message}
                </p>
            }
        })
    }
}

/// `aria-invalid` of a field.
fn invalid(errors: Memo<FieldErrors>, field: &'static str) -> impl Fn() -> String + Copy {
    move || errors.get().get(field).is_some().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_field_error_before_sending() {
        let errs = check("", "abc", "0").unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["message", "temperature", "max_tokens"]);
        assert_eq!(errs[1].message, "temperature must be a number");
    }

    #[test]
    fn parses_valid_input() {
        let p = check("hello", " 0.5 ", "128").unwrap();
        assert_eq!(
            p,
            GenerationParams {
                temperature: 0.5,
                max_tokens: 128
            }
        );
    }
}
