//! Accounts over real HTTP: sign-up and sign-in forms, session cookies, CSRF, API keys,
//! ownership (another user's ids are 404 on every route that takes one), the admin's
//! controls, and rate limits.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use super::support::{App, spawn_app_with};
use crate::server::config::{AuthMode, Settings};

fn accounts(s: &mut Settings) {
    s.auth.mode = AuthMode::Accounts;
}

/// A browser, as far as Stoa can tell: a session cookie, the page's CSRF token, and
/// `Sec-Fetch-Site` on every request. Redirects are not followed, to be looked at.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(app: &App) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin");
        if let Some(c) = &self.cookie {
            r = r.header(header::COOKIE, c);
        }
        r
    }

    /// Posts a sign-in or sign-up form; keeps the session cookie it sets. Returns the
    /// redirect's target.
    async fn form(&mut self, path: &str, name: &str, password: &str) -> String {
        let res = self
            .request(reqwest::Method::POST, path)
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        if let Some(set) = res.headers().get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
            self.csrf = Some(self.page_csrf().await);
        }
        res.headers()[header::LOCATION].to_str().unwrap().to_owned()
    }

    async fn sign_up(&mut self, name: &str) {
        assert_eq!(
            self.form("/auth/signup", name, "correct horse battery").await,
            "/"
        );
    }

    /// The CSRF token the app page carries for this session.
    async fn page_csrf(&self) -> String {
        let html = self
            .request(reqwest::Method::GET, "/")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = html
            .find("name=\"csrf-token\" content=\"")
            .expect("the page carries a CSRF token")
            + 27;
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    }

    /// Calls a server function with the session's CSRF token.
    async fn call(&self, endpoint: &str, args: Value) -> (StatusCode, Value) {
        let mut r = self
            .request(reqwest::Method::POST, &format!("/api/{endpoint}"))
            .json(&args);
        if let Some(t) = &self.csrf {
            r = r.header("x-csrf-token", t);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

#[tokio::test]
async fn sign_up_and_in_with_sessions_and_csrf() {
    let app = spawn_app_with(accounts).await;
    let mut ada = Browser::new(&app);
    // Signed out: pages go to the sign-in page, APIs answer 401.
    let res = ada.request(reqwest::Method::GET, "/").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/signin");
    assert_eq!(ada.call("conversations/list", json!({})).await.0, 401);
    let res = ada.request(reqwest::Method::GET, "/signin").send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Bad input goes back to the form naming the field; nothing is created.
    let back = ada.form("/auth/signup", "ada", "short").await;
    assert!(
        back.starts_with("/signup?error=") && back.ends_with("field=password"),
        "{back}"
    );
    assert!(ada.cookie.is_none());

    ada.sign_up("ada").await;
    let (status, list) = ada.call("conversations/list", json!({})).await;
    assert_eq!(status, 200, "{list}");
    // The first account is the admin.
    assert_eq!(ada.call("admin/overview", json!({})).await.0, 200);

    // CSRF: a state-changing call without the token, or with another one, is refused.
    let token = ada.csrf.take();
    assert_eq!(ada.call("conversations/create", json!({})).await.0, 403);
    ada.csrf = Some("forged".into());
    assert_eq!(ada.call("conversations/create", json!({})).await.0, 403);
    ada.csrf = token;
    assert_eq!(ada.call("conversations/create", json!({})).await.0, 200);
    // A request another site makes the browser send is refused whatever it carries.
    let res = ada
        .http
        .post(format!("{}/api/conversations/create", app.base))
        .header(header::COOKIE, ada.cookie.as_deref().unwrap())
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", ada.csrf.as_deref().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The no-JavaScript form carries the token as a field.
    let form = |csrf: &str| {
        ada.request(reqwest::Method::POST, "/api/chat/send_form")
            .header(header::ACCEPT, "text/html")
            .form(&[("message", ""), ("csrf_token", csrf)])
            .send()
    };
    assert_eq!(form("forged").await.unwrap().status(), 403);
    let res = form(ada.csrf.as_deref().unwrap()).await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert!(
        res.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("field=message")
    );

    // Wrong password and unknown user get the same answer.
    let mut other = Browser::new(&app);
    let wrong = other.form("/auth/signin", "ada", "not her password").await;
    let unknown = other.form("/auth/signin", "nobody", "not her password").await;
    assert_eq!(wrong, unknown);
    assert!(other.cookie.is_none());
    // Signing in again works; signing out ends that session only.
    assert_eq!(
        other.form("/auth/signin", "ADA", "correct horse battery").await,
        "/"
    );
    assert_eq!(other.call("conversations/list", json!({})).await.0, 200);
    let res = other
        .request(reqwest::Method::POST, "/auth/signout")
        .form(&[("csrf_token", other.csrf.as_deref().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(other.call("conversations/list", json!({})).await.0, 401);
    assert_eq!(ada.call("conversations/list", json!({})).await.0, 200);
}

#[tokio::test]
async fn another_users_ids_are_not_found_on_every_route() {
    let app = spawn_app_with(accounts).await;
    let (mut ada, mut bob) = (Browser::new(&app), Browser::new(&app));
    ada.sign_up("ada").await;
    bob.sign_up("bob").await;

    let (_, conversation) = ada.call("conversations/create", json!({})).await;
    let cid = conversation["id"].as_str().unwrap().to_owned();
    let res = ada
        .request(reqwest::Method::POST, "/api/documents/upload")
        .header("x-csrf-token", ada.csrf.as_deref().unwrap())
        .multipart(
            reqwest::multipart::Form::new()
                .text("metadata", r#"{"collection": "private"}"#)
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(b"Ada's secret plan: the launch is on Tuesday.".to_vec())
                        .file_name("plan.txt"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let outcome: Value = res.json().await.unwrap();
    let did = outcome[0]["document"]["id"].as_str().unwrap().to_owned();
    let (_, collections) = ada.call("collections/list", json!({})).await;
    let collection = collections[0]["id"].as_str().unwrap().to_owned();

    // Bob sees none of it in his lists ...
    assert_eq!(bob.call("conversations/list", json!({})).await.1, json!([]));
    assert_eq!(bob.call("documents/list", json!({})).await.1, json!([]));
    assert_eq!(bob.call("collections/list", json!({})).await.1, json!([]));
    // ... and every route taking one of Ada's ids answers 404 to him.
    let (_, own) = bob.call("conversations/create", json!({})).await;
    let own = own["id"].as_str().unwrap().to_owned();
    for (endpoint, args) in [
        ("conversations/get", json!({"id": cid})),
        ("conversations/rename", json!({"id": cid, "title": "mine now"})),
        ("conversations/delete", json!({"id": cid})),
        ("conversations/restore", json!({"id": cid})),
        (
            "conversations/collections",
            json!({"conversation_id": cid, "collection_ids": []}),
        ),
        (
            "chat/send",
            json!({"req": {"conversation_id": cid, "message": "hi", "params": {"temperature": 0.0, "max_tokens": 4}}}),
        ),
        ("documents/delete", json!({"id": did})),
    ] {
        let (status, body) = bob.call(endpoint, args).await;
        assert_eq!(status, 404, "{endpoint}: {body}");
    }
    // His own conversation cannot be pointed at her collection either.
    let (status, body) = bob
        .call(
            "conversations/collections",
            json!({"conversation_id": own, "collection_ids": [collection]}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["field"], "collection_ids");
    // Stop answers "not running" rather than stopping someone else's answer.
    assert_eq!(
        bob.call("chat/stop", json!({"message_id": cid})).await.1,
        json!(false)
    );

    // Ada still has everything, untouched.
    let (status, view) = ada.call("conversations/get", json!({"id": cid})).await;
    assert_eq!(status, 200);
    assert_eq!(view["title"], conversation["title"]);
    assert_eq!(
        ada.call("documents/list", json!({})).await.1[0]["id"],
        did.as_str()
    );
}

#[tokio::test]
async fn api_keys_authenticate_programs_until_revoked() {
    let app = spawn_app_with(accounts).await;
    let mut ada = Browser::new(&app);
    ada.sign_up("ada").await;
    let (status, created) = ada.call("keys/create", json!({"name": "script"})).await;
    assert_eq!(status, 200, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("stoa_"));
    // Listed by name and prefix, never the secret.
    let (_, keys) = ada.call("keys/list", json!({})).await;
    assert_eq!(keys[0]["name"], "script");
    assert!(!keys.to_string().contains(&secret));
    assert_eq!(
        ada.call("keys/create", json!({"name": " "})).await.1["field"],
        "name"
    );

    let http = reqwest::Client::new();
    let models = |key: Option<&str>| {
        let mut r = http.get(format!("{}/v1/models", app.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(models(Some(&secret)).await.unwrap().status(), 200);
    let res = models(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(models(Some("stoa_made_up")).await.unwrap().status(), 401);
    // A key needs no CSRF token (browsers never attach one on their own).
    let res = http
        .post(format!("{}/api/v1/generate", app.base))
        .bearer_auth(&secret)
        .json(&json!({"user_input": "Say hi.", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let id = keys[0]["id"].as_str().unwrap();
    assert_eq!(ada.call("keys/revoke", json!({"id": id})).await.0, 200);
    let res = models(Some(&secret)).await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .post(format!("{}/api/v1/generate", app.base))
        .bearer_auth(&secret)
        .json(&json!({"user_input": "Say hi."}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
    // Revoking again, or someone else's key, is not found.
    assert_eq!(ada.call("keys/revoke", json!({"id": id})).await.0, 404);
}

#[tokio::test]
async fn the_admin_controls_sign_up_and_accounts() {
    let app = spawn_app_with(accounts).await;
    let (mut ada, mut bob) = (Browser::new(&app), Browser::new(&app));
    ada.sign_up("ada").await;
    bob.sign_up("bob").await;
    // Not an admin: 403 on admin calls and the admin page.
    assert_eq!(bob.call("admin/overview", json!({})).await.0, 403);
    let page = bob.request(reqwest::Method::GET, "/admin").send().await.unwrap();
    assert_eq!(page.status(), 403);
    let (_, own) = bob.call("conversations/create", json!({})).await;

    let (_, view) = ada.call("admin/overview", json!({})).await;
    let users = view["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["admin"], true);
    let bob_id = users[1]["id"].as_i64().unwrap();
    // The admin cannot lock themself out.
    let ada_id = users[0]["id"].as_i64().unwrap();
    let (status, body) = ada
        .call("admin/disable", json!({"user_id": ada_id, "disabled": true}))
        .await;
    assert_eq!((status.as_u16(), body["field"].as_str()), (400, Some("user_id")));

    // Disabled: every session of bob ends and he cannot sign in.
    assert_eq!(
        ada.call("admin/disable", json!({"user_id": bob_id, "disabled": true}))
            .await
            .0,
        200
    );
    assert_eq!(bob.call("conversations/list", json!({})).await.0, 401);
    let mut again = Browser::new(&app);
    let back = again.form("/auth/signin", "bob", "correct horse battery").await;
    assert!(back.contains("disabled"), "{back}");
    assert_eq!(
        ada.call("admin/disable", json!({"user_id": bob_id, "disabled": false}))
            .await
            .0,
        200
    );
    assert_eq!(
        again.form("/auth/signin", "bob", "correct horse battery").await,
        "/"
    );

    // Sign-up closed: new people are turned away.
    assert_eq!(ada.call("admin/signup", json!({"open": false})).await.0, 200);
    let mut carol = Browser::new(&app);
    let back = carol.form("/auth/signup", "carol", "correct horse battery").await;
    assert!(back.starts_with("/signup?error=sign-up+is+closed"), "{back}");
    assert!(carol.cookie.is_none());

    // Deleted: the account and what it owned are gone.
    assert_eq!(ada.call("admin/delete", json!({"user_id": bob_id})).await.0, 200);
    assert_eq!(again.call("conversations/list", json!({})).await.0, 401);
    let gone = app
        .state
        .store
        .get_conversation(
            crate::server::auth::UserId::for_tests(bob_id),
            own["id"].as_str().unwrap(),
        )
        .await;
    assert!(gone.is_err());
    assert_eq!(
        ada.call("admin/overview", json!({})).await.1["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn generation_is_rate_limited_with_retry_after() {
    let app = spawn_app_with(|s| {
        accounts(s);
        s.limits.generations_per_user = 2;
    })
    .await;
    let mut ada = Browser::new(&app);
    ada.sign_up("ada").await;
    let (_, key) = ada.call("keys/create", json!({"name": "k"})).await;
    let secret = key["secret"].as_str().unwrap();
    let http = reqwest::Client::new();
    let generate = || {
        http.post(format!("{}/api/v1/generate", app.base))
            .bearer_auth(secret)
            // Refused by validation: the limit counts requests, not tokens.
            .json(&json!({"user_input": ""}))
            .send()
    };
    assert_eq!(generate().await.unwrap().status(), 400);
    assert_eq!(generate().await.unwrap().status(), 400);
    let res = generate().await.unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "urn:stoa:problem:rate_limited");
    // Other routes are not limited.
    assert_eq!(ada.call("conversations/list", json!({})).await.0, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_per_address_limits_count_each_forwarded_client() {
    let app = spawn_app_with(|s| {
        s.limits.generations_per_user = 0;
        s.limits.generations_per_ip = 1;
        s.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let http = reqwest::Client::new();
    let generate = |client: &'static str| {
        http.post(format!("{}/api/v1/generate", app.base))
            .header("x-forwarded-for", client)
            // Refused by validation: the limit counts requests, not tokens.
            .json(&json!({"user_input": ""}))
            .send()
    };
    assert_eq!(generate("203.0.113.1").await.unwrap().status(), 400);
    assert_eq!(
        generate("203.0.113.1").await.unwrap().status(),
        429,
        "the same client again"
    );
    assert_eq!(
        generate("203.0.113.2").await.unwrap().status(),
        400,
        "another client behind the same proxy"
    );
    // A client cannot pick its address: the proxy appends the real one after what it sent.
    assert_eq!(generate("203.0.113.3, 203.0.113.1").await.unwrap().status(), 429);
}

#[tokio::test]
async fn the_first_account_takes_over_what_single_user_mode_made() {
    let single = super::support::spawn_app().await;
    let made = single
        .state
        .chat
        .create_conversation(super::support::ME)
        .await
        .unwrap();
    let dir = single._dir.path().to_path_buf();
    let database = single.state.settings.database.url.clone();
    let app = spawn_app_with(move |s| {
        accounts(s);
        s.server.data_dir = dir;
        s.database.url = database;
    })
    .await;
    let mut ada = Browser::new(&app);
    ada.sign_up("ada").await;
    let (_, list) = ada.call("conversations/list", json!({})).await;
    assert_eq!(list[0]["id"], made.id.as_str());
    let mut bob = Browser::new(&app);
    bob.sign_up("bob").await;
    assert_eq!(bob.call("conversations/list", json!({})).await.1, json!([]));
}

#[tokio::test]
async fn the_rest_api_keeps_users_apart_by_api_key() {
    let app = spawn_app_with(accounts).await;
    let (mut ada, mut bob) = (Browser::new(&app), Browser::new(&app));
    ada.sign_up("ada").await;
    bob.sign_up("bob").await;
    let ada_key = ada.call("keys/create", json!({"name": "k"})).await.1["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_key = bob.call("keys/create", json!({"name": "k"})).await.1["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/v1{path}", app.base);

    let res = http
        .post(url("/conversations"))
        .bearer_auth(&ada_key)
        .json(&json!({"title": "Ada's"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conversation = format!("/conversations/{id}");
    let messages = format!("/conversations/{id}/messages");
    let collections = format!("/conversations/{id}/collections");
    for (method, path, body) in [
        (reqwest::Method::GET, conversation.as_str(), None),
        (
            reqwest::Method::PATCH,
            conversation.as_str(),
            Some(json!({"title": "Bob's"})),
        ),
        (reqwest::Method::GET, messages.as_str(), None),
        (
            reqwest::Method::POST,
            messages.as_str(),
            Some(json!({"message": "hi"})),
        ),
        (
            reqwest::Method::PUT,
            collections.as_str(),
            Some(json!({"collection_ids": []})),
        ),
        (reqwest::Method::DELETE, conversation.as_str(), None),
    ] {
        let mut r = http.request(method.clone(), url(path)).bearer_auth(&bob_key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
    }
    let listed: Value = http
        .get(url("/conversations"))
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    // Nor can he revoke her key.
    let (_, keys) = ada.call("keys/list", json!({})).await;
    let res = http
        .delete(url(&format!("/keys/{}", keys[0]["id"].as_str().unwrap())))
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Hers still works and her conversation is intact.
    let res = http
        .get(url(&conversation))
        .bearer_auth(&ada_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["title"], "Ada's");
    // Without a key: 401 as problem details.
    let res = http.get(url("/conversations")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn health_and_readiness_need_no_sign_in() {
    let app = spawn_app_with(accounts).await;
    let res = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    let res = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ok", "local_model": "ok", "embedding": "ok"})
    );
    // Everything else still needs a sign-in.
    let res = reqwest::get(format!("{}/api/v1/conversations", app.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
