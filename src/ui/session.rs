//! Who is signed in, as the page knows it. The server writes it into `<meta>` elements of
//! the page it renders; the browser reads them back, so both render the same and no
//! request is needed.

use leptos::prelude::*;

use crate::api::csrf::{CSRF_FIELD, CSRF_META};

/// `<meta name=...>` of the signed-in user's name.
const USER_META: &str = "stoa-user";

pub use crate::api::session::{SessionInfo, THEME_COOKIE, valid_theme};

impl SessionInfo {
    /// The session as this request's authentication found it (server) or as the page
    /// carries it (browser).
    pub fn current() -> Self {
        #[cfg(feature = "ssr")]
        {
            crate::server::auth::page_session()
        }
        #[cfg(not(feature = "ssr"))]
        {
            from_page()
        }
    }

    pub fn signed_in(&self) -> bool {
        self.name.is_some()
    }
}

pub fn session() -> SessionInfo {
    use_context::<SessionInfo>().unwrap_or_default()
}

/// The `<meta>` elements the browser reads the session from.
#[component]
pub fn SessionMeta(info: SessionInfo) -> impl IntoView {
    view! {
        <meta name=CSRF_META content=info.csrf_token.unwrap_or_default() />
        <meta
            name=USER_META
            content=info.name.unwrap_or_default()
            data-admin=info.admin.to_string()
            data-accounts=info.accounts.to_string()
        />
    }
}

/// A hidden field with the CSRF token, for forms that post without JavaScript.
#[component]
pub fn CsrfField() -> impl IntoView {
    view! { <input type="hidden" name=CSRF_FIELD value=session().csrf_token.unwrap_or_default() /> }
}

#[cfg(not(feature = "ssr"))]
fn meta(name: &str) -> Option<web_sys::Element> {
    document()
        .query_selector(&format!("meta[name=\"{name}\"]"))
        .ok()
        .flatten()
}

#[cfg(not(feature = "ssr"))]
fn from_page() -> SessionInfo {
    let user = meta(USER_META);
    let attr = |name: &str| user.as_ref().and_then(|m| m.get_attribute(name));
    SessionInfo {
        accounts: attr("data-accounts").as_deref() == Some("true"),
        name: attr("content").filter(|n| !n.is_empty()),
        admin: attr("data-admin").as_deref() == Some("true"),
        csrf_token: csrf_from_page(),
        theme: document()
            .document_element()
            .and_then(|html| html.get_attribute("data-theme"))
            .and_then(|t| valid_theme(&t)),
    }
}

/// The page's CSRF token, for the header of server-function calls.
#[cfg(not(feature = "ssr"))]
pub fn csrf_from_page() -> Option<String> {
    meta(CSRF_META)
        .and_then(|m| m.get_attribute("content"))
        .filter(|t| !t.is_empty())
}

/// Light, dark, or the system's: cycles on click, kept in a cookie for a year.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(session().theme);
    let label = move || match theme.get().as_deref() {
        Some("light") => "Theme: light",
        Some("dark") => "Theme: dark",
        _ => "Theme: system",
    };
    let next = move |_| {
        let new = match theme.get_untracked().as_deref() {
            None => Some("light"),
            Some("light") => Some("dark"),
            _ => None,
        };
        theme.set(new.map(str::to_owned));
        #[cfg(not(feature = "ssr"))]
        {
            use leptos::wasm_bindgen::JsCast;
            if let Some(html) = document().document_element() {
                let _ = match new {
                    Some(t) => html.set_attribute("data-theme", t),
                    None => html.remove_attribute("data-theme"),
                };
            }
            if let Ok(doc) = document().dyn_into::<web_sys::HtmlDocument>() {
                let cookie = match new {
                    Some(t) => format!("{THEME_COOKIE}={t}; Path=/; Max-Age=31536000; SameSite=Lax"),
                    None => format!("{THEME_COOKIE}=; Path=/; Max-Age=0; SameSite=Lax"),
                };
                let _ = doc.set_cookie(&cookie);
            }
        }
    };
    view! {
        <button type="button" class="theme-toggle" aria-label=label on:click=next>
            {label}
        </button>
    }
}
