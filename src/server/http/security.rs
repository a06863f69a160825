//! Security headers. Every response gets `nosniff`, a strict referrer policy and no
//! framing; every page rendered by Leptos gets a Content-Security-Policy whose only
//! allowed inline scripts are Leptos' own, marked with this response's nonce.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::http::{HeaderName, HeaderValue, header};
use http_body_util::BodyExt;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of app pages: scripts only by nonce (and what they load), WebAssembly
/// allowed, everything else from Stoa itself, no plugins, no framing.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sets the page's CSP header; call while rendering a page on the server.
pub fn set_page_csp() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(&nonce.to_string())) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Headers every response carries (unless a handler set them itself).
pub fn layers() -> [SetResponseHeaderLayer<HeaderValue>; 3] {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    [
        header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        header(header::REFERRER_POLICY, "no-referrer"),
        header(header::X_FRAME_OPTIONS, "DENY"),
    ]
}

/// Largest request body of every route but uploads and imports.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The body limits of the routes that take more than [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// A whole document upload: the most files one request may carry, each at its limit.
    pub upload: usize,
    /// One conversation export (`limits.import_mb`).
    pub import: usize,
}

/// Refuses request bodies over the limit with a 413 naming it (by `Content-Length` at
/// once, otherwise when the body grows past it), so no route reads unbounded input.
pub async fn limit_body(
    axum::extract::State(limits): axum::extract::State<BodyLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let limit = match super::policy::of(req.method(), path).body {
        super::policy::BodyLimit::Upload => limits.upload,
        super::policy::BodyLimit::Import => limits.import,
        super::policy::BodyLimit::Default => MAX_BODY_BYTES,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(path, limit);
    }
    let path = path.to_owned();
    // Whether a handler read past the limit: it then answers in its own way (axum's
    // extractors with a plain-text 413, server functions with a 400), and the client gets
    // the 413 in the shape of the API it called instead.
    let overflowed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&overflowed);
    let req = req.map(|body| {
        let limited = http_body_util::Limited::new(body, limit).map_err(move |e| {
            if e.is::<http_body_util::LengthLimitError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        });
        axum::body::Body::new(limited)
    });
    let res = next.run(req).await;
    if overflowed.load(Ordering::Relaxed) {
        return too_large(&path, limit);
    }
    res
}

/// The 413 of a body over `limit`, in the shape of the API `path` belongs to.
fn too_large(path: &str, limit: usize) -> axum::response::Response {
    let error = crate::api::ApiError::new(
        crate::api::ErrorCode::PayloadTooLarge,
        format!("the request body is over the limit of {} MB", limit / 1_048_576),
    )
    .with_field("body");
    crate::server::auth::middleware::reject(path, error)
}

/// The host names Stoa answers to. A browser sends the name it resolved in `Host`, so a
/// page whose own name was made to resolve to this machine (DNS rebinding) is refused
/// here, before authentication or anything else, whatever it sends in `Origin` or
/// `Sec-Fetch-Site`. Loopback names and IP literals are always accepted (a request
/// whose `Host` is an address cannot come from a rebound name); other names only when
/// `server.allowed_hosts` lists them: `stoa.example.com`, `.example.com` (the domain and
/// its subdomains), or `*` (any: only behind a proxy that checks `Host` itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    /// Checks and keeps the configured names.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut hosts = Self::default();
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.trim().to_ascii_lowercase();
            if entry == "*" {
                hosts.any = true;
                continue;
            }
            let name = entry.strip_prefix('.').unwrap_or(&entry);
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if !valid {
                return Err(format!(
                    "server.allowed_hosts[{i}] must be a host name (e.g. stoa.example.com), \
                     a domain with a leading dot (.example.com) or *, without scheme or port \
                     (got '{entry}')"
                ));
            }
            hosts.names.push(entry.trim_end_matches('.').to_owned());
        }
        Ok(hosts)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.any
    }

    /// Whether a request whose `Host` (or HTTP/2 authority) is `authority` is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(host) = host_of(authority) else {
            return false;
        };
        if self.any || is_loopback_or_address(&host) {
            return true;
        }
        self.names.iter().any(|allowed| match allowed.strip_prefix('.') {
            Some(domain) => host == domain || host.strip_suffix(domain).is_some_and(|sub| sub.ends_with('.')),
            None => &host == allowed,
        })
    }
}

/// The host part of an authority (`name`, `name:port`, `[v6]:port`), lower-case and
/// without a trailing dot; `None` when it is not a well-formed authority.
fn host_of(authority: &str) -> Option<String> {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return Some(format!("[{}]", inside.to_ascii_lowercase()));
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => authority,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    valid.then_some(host)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_loopback_or_address(host: &str) -> bool {
    host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Refuses (403, in the shape of the path's API) a request whose `Host` is not one
/// Stoa answers to. Requests without any (HTTP/1.0 tools) pass: browsers always send one.
pub async fn check_host(
    axum::extract::State(hosts): axum::extract::State<std::sync::Arc<AllowedHosts>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let authority = req.uri().authority().map(|a| a.as_str().to_owned()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    });
    if let Some(authority) = authority
        && !hosts.allows(&authority)
    {
        tracing::warn!(host = %authority.chars().take(100).collect::<String>(), "request for a host name Stoa does not answer to refused");
        let error = crate::api::ApiError::new(
            crate::api::ErrorCode::Forbidden,
            "this Stoa does not answer to that host name; its operator can add it to server.allowed_hosts",
        );
        return crate::server::auth::middleware::reject(req.uri().path(), error);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_pass_other_names_only_when_listed() {
        let none = AllowedHosts::default();
        for ok in [
            "localhost:3000",
            "LOCALHOST",
            "localhost.:3000",
            "127.0.0.1:3000",
            "127.0.0.1",
            "[::1]:3000",
            "192.168.1.5:3000",
        ] {
            assert!(none.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example:3000",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io:3000",
            "",
            "localhost:3000:1",
            "[::1",
            "a b",
        ] {
            assert!(!none.allows(refused), "{refused}");
        }
        let listed = AllowedHosts::parse(&["Stoa.Example.com".into(), ".corp.example".into()]).unwrap();
        assert!(listed.allows("stoa.example.com:443"));
        assert!(listed.allows("corp.example") && listed.allows("chat.corp.example:8080"));
        assert!(!listed.allows("evilcorp.example") && !listed.allows("example.com"));
        assert!(
            AllowedHosts::parse(&["*".into()])
                .unwrap()
                .allows("anything.example")
        );
        assert!(AllowedHosts::parse(&["https://stoa.example.com".into()]).is_err());
        assert!(AllowedHosts::parse(&["stoa.example.com:443".into()]).is_err());
    }
}
