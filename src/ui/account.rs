//! Sign-in and sign-up (plain forms: they work without JavaScript), the account page with
//! API keys, and the admin page.

use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::hooks::use_query_map;

use super::session::session;
use crate::api::{
    ApiError,
    accounts::{
        ApiKeyView, MIN_PASSWORD_CHARS, UserView, admin_overview, create_api_key, delete_user, list_api_keys,
        revoke_api_key, set_signup_open, set_user_disabled,
    },
};

/// A date from unix milliseconds, as `YYYY-MM-DD`.
fn day(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The sign-in or sign-up form; the server answers with a redirect (and a cookie).
#[component]
fn CredentialsForm(action: &'static str, submit: &'static str, new_password: bool) -> impl IntoView {
    let query = use_query_map();
    let error = query.with_untracked(|q| q.get("error"));
    let field = query.with_untracked(|q| q.get("field")).unwrap_or_default();
    let error_for = move |name: &str| {
        (field == name || (name == "form" && field != "name" && field != "password"))
            .then(|| error.clone())
            .flatten()
            .map(|message| {
                view! {
                    <p class="field-error" data-field-error=name.to_owned() role="alert">
                        {message}
                    </p>
                }
            })
    };
    view! {
        <form class="credentials" method="post" action=action>
            // Signed in already (switching accounts): the session's token goes along.
            <super::session::CsrfField />
            <label for="name">"User name"</label>
            <input id="name" name="name" autocomplete="username" required autofocus />
            {error_for("name")}
            <label for="password">"Password"</label>
            <input
                id="password"
                name="password"
                type="password"
                required
                minlength=MIN_PASSWORD_CHARS
                autocomplete=if new_password { "new-password" } else { "current-password" }
            />
            {error_for("password")}
            {error_for("form")}
            <button type="submit">{submit}</button>
        </form>
    }
}

/// Single-user mode has nothing to sign in to.
fn single_user_note() -> impl IntoView {
    view! {
        <p class="muted">
            "This Stoa runs in single-user mode: no sign-in is needed. " <a href="/">"Start chatting"</a>
        </p>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let accounts = session().accounts;
    view! {
        <section class="auth-page">
            <h1>"Sign in to Stoa"</h1>
            {if accounts {
                view! {
                    <CredentialsForm action="/auth/signin" submit="Sign in" new_password=false />
                    <p class="muted">"No account yet? " <a href="/signup">"Create one"</a></p>
                }
                    .into_any()
            } else {
                single_user_note().into_any()
            }}
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let accounts = session().accounts;
    view! {
        <section class="auth-page">
            <h1>"Create an account"</h1>
            {if accounts {
                view! {
                    <p class="muted">
                        "The first account is the admin. Passwords are at least " {MIN_PASSWORD_CHARS}
                        " characters."
                    </p>
                    <CredentialsForm action="/auth/signup" submit="Create account" new_password=true />
                    <p class="muted">"Have an account? " <a href="/signin">"Sign in"</a></p>
                }
                    .into_any()
            } else {
                single_user_note().into_any()
            }}
        </section>
    }
}

fn show_error(e: &ApiError) -> impl IntoView + use<> {
    view! {
        <p class="field-error" role="alert">
            {e.message.clone()}
        </p>
    }
}

/// The account: who is signed in, their data, and (with accounts) their API keys.
#[component]
pub fn AccountPage() -> impl IntoView {
    let info = session();
    view! {
        <section class="account-page">
            <h1>"Account"</h1>
            {info
                .name
                .clone()
                .map(|n| view! { <p>"Signed in as " <strong class="account-name">{n}</strong></p> })}
            <YourData />
            <h2>"API keys"</h2>
            {if info.accounts {
                view! { <ApiKeys /> }.into_any()
            } else {
                view! {
                    <p class="muted">
                        "Single-user mode: programs on this machine use the API without a key. "
                        "Keys are for accounts (auth.mode = \"accounts\"), so none can be made here."
                    </p>
                }
                    .into_any()
            }}
        </section>
    }
}

/// API keys: create (the secret is shown once), list, revoke.
#[component]
fn ApiKeys() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let keys = Resource::new(move || version.get(), |_| list_api_keys());
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<ApiError>);
    let create = move |e: ev::SubmitEvent| {
        e.prevent_default();
        let key_name = name.get_untracked();
        spawn_local(async move {
            match create_api_key(key_name).await {
                Ok(k) => {
                    created.set(Some(k.secret));
                    error.set(None);
                    name.set(String::new());
                    version.update(|v| *v += 1);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
            <p class="muted">
                "Programs send a key as " <code>"Authorization: Bearer <key>"</code>
                " to /api/v1 and to the OpenAI-compatible /v1."
            </p>
            <form class="new-key" on:submit=create>
                <label for="key-name">"Key name"</label>
                <input id="key-name" name="name" bind:value=name placeholder="e.g. laptop script" />
                <button type="submit">"Create key"</button>
            </form>
            {move || error.get().map(|e| show_error(&e))}
            {move || {
                created
                    .get()
                    .map(|secret| {
                        view! {
                            <div class="new-key-secret" role="status">
                                <p>"Your new key. Copy it now: it is not shown again."</p>
                                <code class="secret">{secret}</code>
                            </div>
                        }
                    })
            }}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No keys yet."</p> }.into_any(),
                        Ok(list) => view! { <KeyTable list version error /> }.into_any(),
                        Err(e) => show_error(&e).into_any(),
                    }
                })}
            </Transition>
    }
}

#[component]
fn KeyTable(
    list: Vec<ApiKeyView>,
    version: RwSignal<u32>,
    error: RwSignal<Option<ApiError>>,
) -> impl IntoView {
    let row = move |k: ApiKeyView| {
        let id = k.id.clone();
        let revoke = move |_| {
            let id = id.clone();
            spawn_local(async move {
                match revoke_api_key(id).await {
                    Ok(()) => version.update(|v| *v += 1),
                    Err(e) => error.set(Some(e)),
                }
            });
        };
        view! {
            <tr class="key-row">
                <td>{k.name}</td>
                <td>
                    <code>{format!("{}…", k.prefix)}</code>
                </td>
                <td>{day(k.created_at)}</td>
                <td>{k.last_used_at.map_or_else(|| "never".to_owned(), day)}</td>
                <td>
                    <button type="button" class="revoke" on:click=revoke>
                        "Revoke"
                    </button>
                </td>
            </tr>
        }
    };
    view! {
        <table class="keys">
            <thead>
                <tr>
                    <th>"Name"</th>
                    <th>"Key"</th>
                    <th>"Created"</th>
                    <th>"Last used"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>{list.into_iter().map(row).collect_view()}</tbody>
        </table>
    }
}

/// Users (disable, enable, delete) and the sign-up switch. Admins only (the server checks).
#[component]
pub fn AdminPage() -> impl IntoView {
    let me = session().name;
    let version = RwSignal::new(0u32);
    let overview = Resource::new(move || version.get(), |_| admin_overview());
    let error = RwSignal::new(None::<ApiError>);
    let act = Callback::new(move |call: AdminCall| {
        spawn_local(async move {
            match call.await {
                Ok(()) => {
                    error.set(None);
                    version.update(|v| *v += 1);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });
    view! {
        <section class="admin-page">
            <h1>"Admin"</h1>
            {move || error.get().map(|e| show_error(&e))}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    let me = me.clone();
                    Suspend::new(async move {
                        match overview.await {
                            Ok(view) => {
                                let open = view.signup_open;
                                view! {
                                    <p class="signup-state">
                                        {if open { "Sign-up is open." } else { "Sign-up is closed." }} " "
                                        <button
                                            type="button"
                                            class="toggle-signup"
                                            on:click=move |_| act.run(Box::pin(set_signup_open(!open)))
                                        >
                                            {if open { "Close sign-up" } else { "Open sign-up" }}
                                        </button>
                                    </p>
                                    <UserTable users=view.users me act />
                                }
                                    .into_any()
                            }
                            Err(e) => show_error(&e).into_any(),
                        }
                    })
                }}
            </Transition>
        </section>
    }
}

/// A change an admin makes, run by [`AdminPage`] (which then shows the new state).
type AdminCall = std::pin::Pin<Box<dyn Future<Output = Result<(), ApiError>> + Send>>;

#[component]
fn UserTable(users: Vec<UserView>, me: Option<String>, act: Callback<AdminCall>) -> impl IntoView {
    let row = move |u: UserView| {
        let (id, disabled) = (u.id, u.disabled);
        let is_me = me.as_deref() == Some(u.name.as_str());
        let delete = move |_| {
            let question = "Delete this account with all its conversations and documents?";
            if window().confirm_with_message(question).unwrap_or(false) {
                act.run(Box::pin(delete_user(id)));
            }
        };
        let buttons = (!is_me).then(|| {
            view! {
                <button
                    type="button"
                    class="toggle-user"
                    on:click=move |_| act.run(Box::pin(set_user_disabled(id, !disabled)))
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
                <button type="button" class="delete-user" on:click=delete>
                    "Delete"
                </button>
            }
        });
        view! {
            <tr class="user-row" data-user=u.name.clone()>
                <td>{u.name.clone()}</td>
                <td>{if u.admin { "admin" } else { "user" }}</td>
                <td>{day(u.created_at)}</td>
                <td>{if disabled { "disabled" } else { "active" }}</td>
                <td>{buttons}</td>
            </tr>
        }
    };
    view! {
        <table class="users">
            <thead>
                <tr>
                    <th>"User"</th>
                    <th>"Role"</th>
                    <th>"Since"</th>
                    <th>"Status"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>{users.into_iter().map(row).collect_view()}</tbody>
        </table>
    }
}

/// Export every conversation, or import an export back (as new conversations).
#[component]
fn YourData() -> impl IntoView {
    let form = NodeRef::<leptos::html::Form>::new();
    let result = RwSignal::new(None::<Result<usize, ApiError>>);
    let state = super::state::client_state();
    let import = move |e: ev::SubmitEvent| {
        e.prevent_default();
        let Some(form) = form.get_untracked() else { return };
        let Ok(data) = web_sys::FormData::new_with_form(&form) else {
            return;
        };
        spawn_local(async move {
            let outcome = crate::api::export::import_conversations(data.into())
                .await
                .map(|list| list.len());
            if outcome.is_ok() {
                state.refresh_conversations();
            }
            result.set(Some(outcome));
        });
    };
    view! {
        <h2>"Your conversations"</h2>
        <p>
            "Export all: " <a href="/api/v1/export?format=json" download class="export-all-json">"JSON"</a>
            " (every branch; can be imported) · "
            <a href="/api/v1/export?format=markdown" download>"Markdown"</a>
        </p>
        <form class="import" node_ref=form on:submit=import>
            <label for="import-file">"Import a JSON export"</label>
            <input id="import-file" type="file" name="file" accept="application/json,.json" />
            <button type="submit">"Import"</button>
        </form>
        {move || {
            result
                .get()
                .map(|r| match r {
                    Ok(n) => view! { <p class="import-result" role="status">{format!("Imported {n} conversations.")}</p> }.into_any(),
                    Err(e) => show_error(&e).into_any(),
                })
        }}
    }
}
