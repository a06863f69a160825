//! The HTML shell and the route table.

use leptos::prelude::*;
use leptos_meta::{HashedStylesheet, MetaTags, Title, provide_meta_context};
use leptos_router::{
    Lazy, LazyRoute, SsrMode,
    components::{Route, Router, Routes},
    lazy_route, path,
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
                    // The other pages are their own chunks of the bundle, fetched when first
                    // visited (and preloaded with the HTML when the visit starts there). The
                    // conversation page's chunk is fetched as soon as a message is typed on `/`.
                    <Route path=path!("/c/:id") view={Lazy::<ConversationRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/documents") view={Lazy::<DocumentsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/signin") view={Lazy::<SignInRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/signup") view={Lazy::<SignUpRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/account") view={Lazy::<AccountRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin") view={Lazy::<AdminRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/search") view={Lazy::<SearchRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}

/// A page loaded on demand: the route `$route` shows the component `$page`, whose code (and
/// the code only it reaches: its server functions' types, forms, tables) is split out of the
/// main bundle by the build (`.ci/build-site.sh`, `cargo leptos --split`).
macro_rules! lazy_page {
    ($($route:ident => $page:ident),* $(,)?) => {$(
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                #[cfg(feature = "ssr")]
                preload_chunks(stringify!($route));
                $route
            }

            fn view(_this: Self) -> AnyView {
                // As `view! { <Page /> }` calls a component: untracked.
                untrack($page).into_any()
            }
        }
    )*};
}

lazy_page! {
    ConversationRoute => ConversationPage,
    DocumentsRoute => DocumentsPage,
    SignInRoute => SignInPage,
    SignUpRoute => SignUpPage,
    AccountRoute => AccountPage,
    AdminRoute => AdminPage,
    SearchRoute => SearchPage,
}

/// Fetches the conversation page's chunk (once; later calls find it loaded), so that the
/// first message sent from `/` does not wait for it.
pub fn preload_conversation_page() {
    leptos::task::spawn_local(ConversationRoute::preload());
}

/// On the server, for a lazy page being rendered: `<link rel="preload">` in the head for each
/// of its chunks, so the browser fetches them with the main bundle instead of after it.
/// (leptos_integration_utils 0.8.9 adds these itself only now and then: it reads the manifest
/// outside the page's reactive owner.) The manifest is the one `HydrationScripts` read from
/// the site (`hash.txt`'s `manifest:` line); its keys are the split points, named by the
/// `#[lazy_route]` macro `__<route in snake case>_view_<hash>`.
#[cfg(feature = "ssr")]
fn preload_chunks(route: &str) {
    use leptos::prelude::ReadValue;
    use leptos_meta::Link;

    let Some(manifest) = use_context::<leptos::WasmSplitManifest>() else {
        return;
    };
    let mut prefix = String::from("__");
    for (i, c) in route.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            prefix.push('_');
        }
        prefix.extend(c.to_lowercase());
    }
    prefix.push_str("_view_");
    let Some(manifest) = manifest.0.try_read_value() else {
        return;
    };
    let (pkg, modules, _) = &*manifest;
    let chunks = modules
        .iter()
        .filter(|(split, _)| split.starts_with(&prefix))
        .flat_map(|(_, chunks)| chunks);
    for chunk in chunks {
        // Rendering a leptos_meta tag registers it for the head.
        let _ = view! {
            <Link
                rel="preload"
                href=format!("{pkg}/{chunk}.wasm")
                as_="fetch"
                type_="application/wasm"
                crossorigin="anonymous"
            />
        }
        .to_html();
    }
}
