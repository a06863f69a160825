//! Operations: `/metrics` in Prometheus format, checked by Prometheus' own `promtool`
//! (Debian's `prometheus` package, installed by .ci/setup.sh); the online SQLite backup.

use std::io::Write;

use serde_json::json;

use super::support::{ME, spawn_app_with};
use crate::server::{
    config::{ModelSetting, ProviderSettings},
    storage::{StoreError, sqlite::SqliteStore},
};

/// The value of the first sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_routes_tokens_and_provider_failures_and_pass_promtool() {
    let app = spawn_app_with(|s| {
        // A provider nobody listens for: asking it is a provider failure.
        s.providers.push(ProviderSettings {
            name: "gone".into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            models: vec![ModelSetting::Id("m".into())],
            retries: 0,
            ..ProviderSettings::default()
        });
    })
    .await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.base);
    assert_eq!(client.get(url("/healthz")).send().await.unwrap().status(), 200);
    let models = super::http::v1_models(&app).await;
    let local = models["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(local.starts_with("local/"));
    let missing = client
        .get(url("/api/v1/conversations/0190c0de-0000-7000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let complete = |body: serde_json::Value| client.post(url("/v1/chat/completions")).json(&body).send();
    let answer = complete(
        json!({"model": local, "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi"}]}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let bad = complete(json!({"model": local, "messages": []})).await.unwrap();
    assert_eq!(bad.status(), 400);
    let failed = complete(json!({"model": "gone/m", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);

    let res = client.get(url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.text().await.unwrap();
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let value = sample(&text, name, labels);
        assert!(
            value.is_some_and(|v| v >= n),
            "{name} {labels:?} = {value:?}, want ≥ {n}\n{text}"
        );
    };
    let requests = "stoa_http_requests_total";
    at_least(requests, &[("route", "/healthz"), ("status", "200")], 1.0);
    // Route templates, never raw ids: one series per route, not per conversation.
    at_least(
        requests,
        &[("route", "/api/v1/conversations/{id}"), ("status", "404")],
        1.0,
    );
    assert!(!text.contains("0190c0de"));
    at_least(
        requests,
        &[("route", "/v1/chat/completions"), ("status", "400")],
        1.0,
    );
    at_least(
        "stoa_http_request_duration_seconds_count",
        &[("route", "/v1/chat/completions")],
        3.0,
    );
    at_least(
        "stoa_time_to_first_token_seconds_count",
        &[("provider", "local")],
        1.0,
    );
    at_least("stoa_generated_tokens_total", &[("provider", "local")], 1.0);
    at_least(
        "stoa_provider_errors_total",
        &[("provider", "gone"), ("kind", "unavailable")],
        1.0,
    );
    assert_eq!(sample(&text, "stoa_local_model_queue_depth", &[]), Some(0.0));
    assert!(sample(&text, "stoa_ingestion_backlog", &[]).is_some());
    assert!(sample(&text, "stoa_answers_running", &[]).is_some());

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/setup.sh installs it)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_online_sqlite_backup_restores_every_conversation() {
    // SQLite on purpose in both suites: this is the SQLite backup (PostgreSQL has pg_dump).
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}", dir.path().join("live.db").display());
    let url = live.clone();
    let app = spawn_app_with(move |s| s.database.url = Some(url)).await;
    let made = app.state.chat.create_conversation(ME).await.unwrap();
    app.state
        .chat
        .rename_conversation(ME, &made.id, "Kept safe")
        .await
        .unwrap();

    // While the app is serving.
    let store = SqliteStore::open(&live).await.unwrap();
    let copy = dir.path().join("backup.db");
    store.backup_to(&copy).await.unwrap();
    assert!(
        matches!(store.backup_to(&copy).await, Err(StoreError::Conflict)),
        "never overwrites"
    );

    let restored = format!("sqlite://{}", copy.display());
    let again = spawn_app_with(move |s| s.database.url = Some(restored)).await;
    let list = again.state.chat.list_conversations(ME).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].id.as_str(), list[0].title.as_str()),
        (made.id.as_str(), "Kept safe")
    );
}

#[tokio::test]
async fn rate_limits_hold_across_replicas_sharing_a_postgresql_database() {
    use crate::server::{
        auth::{
            UserId,
            limits::{Class, RateLimiter},
        },
        config::LimitSettings,
    };
    // Whatever this run's backend: the buckets of several replicas live in PostgreSQL.
    let stores = crate::server::storage::open(&super::support::postgres_database().await)
        .await
        .unwrap();
    let buckets = stores.buckets.expect("PostgreSQL keeps the buckets");
    let settings = LimitSettings {
        generations_per_user: 2,
        generations_per_ip: 3,
        ..LimitSettings::default()
    };
    let a = RateLimiter::new(settings.clone()).shared(buckets.clone());
    let b = RateLimiter::new(settings).shared(buckets);
    let ip = Some("203.0.113.9".parse().unwrap());
    let ada = Some(UserId::for_tests(7));
    assert!(a.check(Class::Generation, ada, ip).await.is_ok());
    assert!(b.check(Class::Generation, ada, ip).await.is_ok());
    let wait = a
        .check(Class::Generation, ada, ip)
        .await
        .expect_err("two requests spent on two replicas use up ada's two a minute");
    assert!(
        wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(30),
        "{wait:?}"
    );
    // The refusal spent nothing: the address still has its third token, for someone else.
    assert!(
        b.check(Class::Generation, Some(UserId::for_tests(8)), ip)
            .await
            .is_ok()
    );
    assert!(
        a.check(Class::Generation, Some(UserId::for_tests(9)), ip)
            .await
            .is_err(),
        "the address's three a minute are used up across both replicas"
    );
    // Other classes and addresses have their own buckets.
    assert!(a.check(Class::Upload, ada, ip).await.is_ok());
    assert!(
        a.check(Class::Generation, None, Some("203.0.113.10".parse().unwrap()))
            .await
            .is_ok()
    );
}

#[test]
fn the_command_line_explains_itself_and_refuses_what_it_does_not_know() {
    let stoa = super::support::stoa_bin();
    let run = |args: &[&str]| std::process::Command::new(&stoa).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "backup", "migrate-db", "eval-rag"] {
        assert!(text.contains(command), "{text}");
    }
    assert!(
        !text.contains("extract"),
        "the extraction child is not a user's command: {text}"
    );
    // Unknown commands and missing or wrong arguments fail before anything starts.
    for args in [
        &["frobnicate"][..],
        &["backup"],
        &["eval-rag", "many"],
        &["migrate-db", "a"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error:") && stderr.contains("--help"),
            "{args:?}: {stderr}"
        );
    }
}
