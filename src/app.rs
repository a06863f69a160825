//! The HTML shell and the route table.

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{Route, Router, Routes},
    path,
};

use crate::ui::{
    account::{AccountPage, AdminPage, SignInPage, SignUpPage},
    conversation::{ConversationPage, NewChatPage},
    documents::DocumentsPage,
    layout::Layout,
    search::SearchPage,
    session::{SessionInfo, SessionMeta},
    state::ClientState,
};

/// The document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::server::http::security::set_page_csp();
    let session = SessionInfo::current();
    let theme = session.theme.clone();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="data:," />
                <AutoReload options=options.clone() />
                // The stylesheet, the bundle and its glue by their content-hashed names
                // when the build hashed them (hash.txt beside the binary).
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options />
                <SessionMeta info=session />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(ClientState::new());
    provide_context(SessionInfo::current());
    view! {
        <Title text="Stoa" />
        <Router>
            <Layout>
                <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                    // Async SSR: the whole page, data included, is in the first HTML response,
                    // so history renders without JavaScript (no streamed-in fragments).
                    <Route path=path!("/") view=NewChatPage ssr=SsrMode::Async />
                    <Route path=path!("/c/:id") view=ConversationPage ssr=SsrMode::Async />
                    <Route path=path!("/documents") view=DocumentsPage ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=SignInPage ssr=SsrMode::Async />
                    <Route path=path!("/signup") view=SignUpPage ssr=SsrMode::Async />
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=AdminPage ssr=SsrMode::Async />
                    <Route path=path!("/search") view=SearchPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}
