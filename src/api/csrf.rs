//! The server-function client of the browser: the browser's own `fetch` client, plus the
//! page's CSRF token in the `x-csrf-token` header of every call (Stoa refuses
//! state-changing requests of a signed-in browser without it).

use server_fn::{
    client::{Client, browser::BrowserClient},
    error::FromServerFnError,
    request::browser::BrowserRequest,
    response::browser::BrowserResponse,
};

/// The header the token travels in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field the token travels in, for forms posted without JavaScript.
pub const CSRF_FIELD: &str = "csrf_token";
/// The `<meta>` element the page carries the token in.
pub const CSRF_META: &str = "csrf-token";

pub struct CsrfClient;

impl<E, I, O> Client<E, I, O> for CsrfClient
where
    E: FromServerFnError,
    I: FromServerFnError,
    O: FromServerFnError,
{
    type Request = BrowserRequest;
    type Response = BrowserResponse;

    fn send(req: Self::Request) -> impl Future<Output = Result<Self::Response, E>> + Send {
        #[cfg(feature = "hydrate")]
        if let Some(token) = crate::ui::session::csrf_from_page() {
            req.headers().set(CSRF_HEADER, &token);
        }
        <BrowserClient as Client<E, I, O>>::send(req)
    }

    #[allow(clippy::type_complexity)]
    fn open_websocket(
        path: &str,
    ) -> impl Future<
        Output = Result<
            (
                impl futures::Stream<Item = Result<bytes::Bytes, bytes::Bytes>> + Send + 'static,
                impl futures::Sink<bytes::Bytes> + Send + 'static,
            ),
            E,
        >,
    > + Send {
        <BrowserClient as Client<E, I, O>>::open_websocket(path)
    }

    fn spawn(future: impl Future<Output = ()> + Send + 'static) {
        <BrowserClient as Client<E, I, O>>::spawn(future)
    }
}
