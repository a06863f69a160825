//! Every route's policy, declared once: who may call it, what rate class a call spends and
//! which body limit applies. The gate (`auth::middleware`) and the body limit
//! (`security::limit_body`) read it; nothing else lists paths. A path no rule names is
//! treated as signed-in, unlimited in rate and under the default body limit (the safe
//! default), and the test below fails for any route of the app that has no rule.

use axum::http::Method;

use crate::server::auth::limits::Class;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// A signed-in user or an API key (in single-user mode, everyone on this machine).
    SignedIn,
    /// An admin account.
    Admin,
}

/// Which request body limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `security::MAX_BODY_BYTES`.
    Default,
    /// A whole document upload (the most files one request may carry, each at its limit).
    Upload,
    /// One conversation export (`limits.import_mb`).
    Import,
}

/// When a route spends from a rate class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spends {
    Never,
    /// On state-changing methods (POST, PUT, PATCH, DELETE).
    OnWrites(Class),
    /// On every method (the REST search is a GET).
    Always(Class),
}

/// One route's policy, as the middleware applies it to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub access: Access,
    pub class: Option<Class>,
    pub body: BodyLimit,
}

struct Rule {
    /// `/api/v1/conversations/{id}`: `{…}` (or leptos' `:id`) stands for one non-empty
    /// segment; a trailing `/*` for anything below.
    path: &'static str,
    access: Access,
    spends: Spends,
    body: BodyLimit,
}

const fn rule(path: &'static str, access: Access, spends: Spends, body: BodyLimit) -> Rule {
    Rule {
        path,
        access,
        spends,
        body,
    }
}

const fn public(path: &'static str) -> Rule {
    rule(path, Access::Public, Spends::Never, BodyLimit::Default)
}

const fn signed_in(path: &'static str) -> Rule {
    rule(path, Access::SignedIn, Spends::Never, BodyLimit::Default)
}

const fn spends(path: &'static str, class: Class) -> Rule {
    rule(
        path,
        Access::SignedIn,
        Spends::OnWrites(class),
        BodyLimit::Default,
    )
}

use Class::{Embedding, Generation, Search, SignIn};

/// The routes of Stoa, first match wins.
static RULES: &[Rule] = &[
    // Pages.
    public("/signin"),
    public("/signup"),
    signed_in("/"),
    signed_in("/c/{id}"),
    signed_in("/documents"),
    signed_in("/account"),
    signed_in("/search"),
    rule("/admin", Access::Admin, Spends::Never, BodyLimit::Default),
    // The sign-in forms' targets.
    rule(
        "/auth/signin",
        Access::Public,
        Spends::OnWrites(SignIn),
        BodyLimit::Default,
    ),
    rule(
        "/auth/signup",
        Access::Public,
        Spends::OnWrites(SignIn),
        BodyLimit::Default,
    ),
    signed_in("/auth/signout"),
    // Static files, API documentation, operations.
    public("/pkg/*"),
    public("/favicon.ico"),
    public("/docs"),
    public("/docs/*"),
    public("/api/v1/openapi.json"),
    public("/healthz"),
    public("/readyz"),
    public("/metrics"),
    // Server functions of the web app.
    spends("/api/chat/send", Generation),
    spends("/api/chat/send_form", Generation),
    spends("/api/chat/regenerate", Generation),
    signed_in("/api/chat/stop"),
    signed_in("/api/chat/watch"),
    signed_in("/api/collections/list"),
    signed_in("/api/conversations/branch"),
    signed_in("/api/conversations/collections"),
    signed_in("/api/conversations/create"),
    signed_in("/api/conversations/delete"),
    signed_in("/api/conversations/get"),
    rule(
        "/api/conversations/import",
        Access::SignedIn,
        Spends::OnWrites(Class::Import),
        BodyLimit::Import,
    ),
    signed_in("/api/conversations/list"),
    signed_in("/api/conversations/rename"),
    signed_in("/api/conversations/restore"),
    spends("/api/conversations/search", Search),
    signed_in("/api/conversations/settings"),
    rule(
        "/api/documents/add_url",
        Access::SignedIn,
        Spends::OnWrites(Class::Upload),
        BodyLimit::Default,
    ),
    signed_in("/api/documents/cancel"),
    signed_in("/api/documents/delete"),
    signed_in("/api/documents/list"),
    rule(
        "/api/documents/upload",
        Access::SignedIn,
        Spends::OnWrites(Class::Upload),
        BodyLimit::Upload,
    ),
    signed_in("/api/keys/create"),
    signed_in("/api/keys/list"),
    signed_in("/api/keys/revoke"),
    signed_in("/api/models/list"),
    rule("/api/admin/*", Access::Admin, Spends::Never, BodyLimit::Default),
    // REST (/api/v1).
    signed_in("/api/v1/collections"),
    signed_in("/api/v1/conversations"),
    signed_in("/api/v1/conversations/{id}"),
    signed_in("/api/v1/conversations/{id}/branch"),
    signed_in("/api/v1/conversations/{id}/collections"),
    signed_in("/api/v1/conversations/{id}/export"),
    spends("/api/v1/conversations/{id}/messages", Generation),
    spends(
        "/api/v1/conversations/{id}/messages/{message_id}/regenerate",
        Generation,
    ),
    signed_in("/api/v1/conversations/{id}/settings"),
    rule(
        "/api/v1/documents",
        Access::SignedIn,
        Spends::OnWrites(Class::Upload),
        BodyLimit::Upload,
    ),
    signed_in("/api/v1/documents/{id}"),
    signed_in("/api/v1/documents/{id}/cancel"),
    signed_in("/api/v1/export"),
    spends("/api/v1/generate", Generation),
    rule(
        "/api/v1/import",
        Access::SignedIn,
        Spends::OnWrites(Class::Import),
        BodyLimit::Import,
    ),
    signed_in("/api/v1/keys"),
    signed_in("/api/v1/keys/{id}"),
    signed_in("/api/v1/models"),
    rule(
        "/api/v1/search",
        Access::SignedIn,
        Spends::Always(Search),
        BodyLimit::Default,
    ),
    rule(
        "/api/v1/search/passages",
        Access::SignedIn,
        Spends::Always(Search),
        BodyLimit::Default,
    ),
    // OpenAI-compatible (/v1).
    signed_in("/v1/models"),
    // One model; ids hold a slash (`local/SmolLM2…`), so anything below.
    signed_in("/v1/models/*"),
    spends("/v1/chat/completions", Generation),
    spends("/v1/embeddings", Embedding),
    spends("/v1/rerank", Embedding),
];

fn matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    }
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') || w.starts_with(':') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

fn rule_of(path: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| matches(r.path, path))
}

/// The policy of a request for `path` with `method`.
pub fn of(method: &Method, path: &str) -> Policy {
    let Some(rule) = rule_of(path) else {
        return Policy {
            access: Access::SignedIn,
            class: None,
            body: BodyLimit::Default,
        };
    };
    let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let class = match rule.spends {
        Spends::Never => None,
        Spends::Always(class) => Some(class),
        Spends::OnWrites(class) => writes.then_some(class),
    };
    Policy {
        access: rule.access,
        class,
        body: rule.body,
    }
}

#[cfg(test)]
mod tests {
    use leptos_axum::generate_route_list;

    use super::*;

    /// Every route the app serves: its pages, its server functions, and what the OpenAPI
    /// document describes (REST, `/v1`, operations), plus the few plain axum routes.
    fn every_route() -> Vec<(String, String)> {
        let mut routes: Vec<(String, String)> = generate_route_list(crate::app::App)
            .iter()
            .map(|r| ("GET".to_owned(), r.path().to_owned()))
            .collect();
        routes.extend(
            server_fn::axum::server_fn_paths().map(|(path, method)| (method.to_string(), path.to_owned())),
        );
        let doc = serde_json::to_value(crate::server::http::rest::openapi()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
        for path in ["/auth/signin", "/auth/signup", "/auth/signout"] {
            routes.push(("POST".to_owned(), path.to_owned()));
        }
        routes.push(("GET".to_owned(), "/api/v1/openapi.json".to_owned()));
        // Model ids with a slash, routed beside the documented `/v1/models/{id}`.
        routes.push(("GET".to_owned(), "/v1/models/{id}/{*rest}".to_owned()));
        routes
    }

    // Generating leptos' route list needs a runtime.
    #[tokio::test]
    async fn every_route_of_the_app_has_a_rule() {
        let routes = every_route();
        assert!(routes.len() > 60, "{routes:?}");
        for (method, path) in &routes {
            assert!(
                rule_of(path).is_some(),
                "{method} {path} has no rule in policy::RULES"
            );
        }
        // And no rule is left over from a route that is gone.
        for rule in RULES {
            let used = routes.iter().any(|(_, path)| matches(rule.path, path))
                || ["/pkg/*", "/docs", "/docs/*", "/favicon.ico"].contains(&rule.path);
            assert!(used, "{} matches no route", rule.path);
        }
    }

    #[test]
    fn the_rest_and_openai_routes_are_the_documented_ones() {
        let doc = serde_json::to_value(crate::server::http::rest::openapi()).unwrap();
        let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        for rule in RULES {
            let api = rule.path.starts_with("/api/v1/") || rule.path.starts_with("/v1/");
            // `/*` rules cover documented routes below them (checked above).
            if api && rule.path != "/api/v1/openapi.json" && !rule.path.ends_with("/*") {
                assert!(
                    documented.iter().any(|d| *d == rule.path),
                    "{} is not in the OpenAPI document",
                    rule.path
                );
            }
        }
    }

    #[test]
    fn policies_follow_method_and_path() {
        let (get, post) = (&Method::GET, &Method::POST);
        assert_eq!(of(get, "/pkg/stoa.wasm").access, Access::Public);
        assert_eq!(of(get, "/pkgx").access, Access::SignedIn);
        assert_eq!(of(post, "/api/v1/generate").access, Access::SignedIn);
        assert_eq!(of(get, "/api/admin/overview").access, Access::Admin);
        assert_eq!(of(get, "/nowhere").access, Access::SignedIn);
        assert_eq!(
            of(post, "/api/v1/conversations/x/messages").class,
            Some(Generation)
        );
        assert_eq!(of(get, "/api/v1/conversations/x/messages").class, None);
        assert_eq!(of(post, "/api/v1/conversations//messages").class, None);
        assert_eq!(of(post, "/api/documents/upload").body, BodyLimit::Upload);
        assert_eq!(of(post, "/api/conversations/list").class, None);
        assert_eq!(of(get, "/api/v1/search").class, Some(Search));
        assert_eq!(of(get, "/api/v1/documents").class, None);
        assert_eq!(of(post, "/v1/embeddings").class, Some(Embedding));
        assert_eq!(of(post, "/api/v1/import").class, Some(Class::Import));
        assert_eq!(of(post, "/api/v1/import").body, BodyLimit::Import);
        assert_eq!(of(get, "/c/0190").access, Access::SignedIn);
    }
}
