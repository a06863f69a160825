//! Stoa: a self-hosted AI chat.
//!
//! Crate map:
//! - [`app`]: the HTML shell and the route table.
//! - [`ui`]: pages and components (rendering only; compiled for the browser and the server).
//! - [`api`]: the typed contract shared by the WASM UI and the server: request/response
//!   types with their validation, the error type, and the server functions.
//! - `server` (feature `ssr`): everything native: configuration, storage, the local model,
//!   the chat service and the HTTP wiring.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the WASM bundle: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy routes: a page whose code is a chunk of the bundle hydrates once it has arrived.
    leptos::mount::hydrate_lazy(app::App);
}
