//! Shared set-up: one loaded model for the whole test binary, a fresh database per test.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use futures::{Stream, StreamExt};
use leptos::prelude::LeptosOptions;
use sqlx::Connection;

use crate::{
    api::{
        events::ChatEvent,
        types::{MessageStatus, Role},
    },
    server::{
        chat::ChatService,
        config::{ChatSettings, DEFAULT_CHAT_MODEL_FILE, Settings},
        llm::{
            ChatProvider,
            local::{LocalModel, LocalModelConfig},
            router::{Entry, Router},
        },
        startup,
        state::AppState,
        storage::{self, NewMessage, Store},
    },
};

/// The database of one test: a SQLite file in `dir`; or, with `TEST_DATABASE=postgres`
/// (`make test-rust-postgres`), a fresh database on the test binary's PostgreSQL server.
/// The same tests run against both: one code path, two backends.
pub async fn database_url(dir: &Path) -> String {
    // Every test opens a database first; the HTTP clients tests make need the TLS provider.
    crate::server::tls::install();
    if std::env::var("TEST_DATABASE").as_deref() != Ok("postgres") {
        return format!("sqlite://{}", dir.join("stoa.db").display());
    }
    postgres_database().await
}

/// A fresh, empty database on the test binary's PostgreSQL server (whatever the suite's
/// backend): for tests that need both databases at once.
pub async fn postgres_database() -> String {
    let server = postgres_server();
    let name = format!("t{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("a test database");
    let _ = admin.close().await;
    format!("{server}/{name}")
}

/// One PostgreSQL (with pgvector) per test binary, on a free loopback port, started by
/// `.ci/postgres.sh` as the unprivileged user setup made; a watcher stops it and removes
/// its directory when the test binary exits. Returns `postgres://stoa@127.0.0.1:PORT`.
fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("stoa-pg-test-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("run .ci/postgres.sh");
        assert!(
            out.status.success(),
            "PostgreSQL did not start (run .ci/setup.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Outlives this process on purpose: it cleans up after the test binary exits.
        #[allow(clippy::zombie_processes)]
        let _watcher = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{}' stop '{}'",
                script.display(),
                dir.display(),
                pid = std::process::id()
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("a watcher that removes the test PostgreSQL");
        format!("postgres://stoa@127.0.0.1:{port}")
    })
}

/// The `stoa` binary, which reads uploads in child processes (`stoa extract`); the test
/// binary is not Stoa. `make test-rust` builds it first and names it in `TEST_STOA_BIN`.
pub fn stoa_bin() -> PathBuf {
    let bin = std::env::var_os("TEST_STOA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                PathBuf::from,
            );
            target.join("debug/stoa")
        });
    assert!(
        bin.is_file(),
        "{} is missing: build it first (make build, or cargo leptos build)",
        bin.display()
    );
    bin
}

pub fn model_path() -> PathBuf {
    Settings::load()
        .map(|s| s.chat_model_path())
        .unwrap_or_else(|_| Settings::default().model_dir.join(DEFAULT_CHAT_MODEL_FILE))
}

pub fn model_config(queue_capacity: usize) -> LocalModelConfig {
    LocalModelConfig {
        path: model_path(),
        context_size: 4096,
        batch_size: 512,
        threads: 2,
        queue_capacity,
        seed: 42,
        repeat_penalty: 1.1,
        prompt_cache: true,
        parallel: 4,
    }
}

/// The model, loaded once per test binary.
pub fn shared_model() -> Arc<LocalModel> {
    static MODEL: OnceLock<Arc<LocalModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(LocalModel::load(&model_config(16)).expect("the default model is fetched (make models)"))
        })
        .clone()
}

pub struct TestChat {
    pub chat: ChatService,
    pub store: Arc<dyn Store>,
    /// The database, for tests that reach into it (fault injection).
    pub url: String,
    pub _dir: tempfile::TempDir,
}

/// A router over one provider, as configured by default (no retries, no fallback).
pub fn router_of(provider: Arc<dyn ChatProvider>) -> Arc<Router> {
    Arc::new(Router::new(
        vec![Entry::new(provider, None, 0)],
        None,
        Duration::from_millis(10),
    ))
}

pub async fn chat_with(provider: Arc<dyn ChatProvider>) -> TestChat {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path()).await;
    let store: Arc<dyn Store> = storage::open(&url).await.unwrap().store;
    let settings = ChatSettings {
        persist_interval_ms: 50,
        ..ChatSettings::default()
    };
    TestChat {
        chat: ChatService::new(Arc::clone(&store), router_of(provider), settings),
        store,
        url,
        _dir: dir,
    }
}

pub async fn chat() -> TestChat {
    chat_with(shared_model()).await
}

/// Waits for `condition`, polling; false if it did not hold within `limit`.
pub async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// Reads events until `Done`; returns them all.
pub async fn collect(events: impl Stream<Item = ChatEvent>) -> Vec<ChatEvent> {
    let mut events = std::pin::pin!(events);
    let mut all = Vec::new();
    while let Some(e) = events.next().await {
        let done = matches!(e, ChatEvent::Done { .. });
        all.push(e);
        if done {
            break;
        }
    }
    all
}

/// A whole Stoa (router, server functions, `/v1`) on a loopback port with its own data
/// directory.
pub struct App {
    pub base: String,
    pub state: AppState,
    pub _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> App {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        model_dir: model_path().parent().unwrap().to_path_buf(),
        ..Settings::default()
    };
    settings.server.data_dir = dir.path().to_path_buf();
    settings.database.url = Some(database_url(dir.path()).await);
    settings.local_model.threads = 2;
    settings.chat.persist_interval_ms = 50;
    settings.rag.extractor = Some(stoa_bin());
    adjust(&mut settings);
    let options = LeptosOptions::builder().output_name("stoa").build();
    let (router, state) = startup::build(settings, options).await.unwrap();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    App {
        base: format!("http://{addr}"),
        state,
        _dir: dir,
    }
}

/// `GET url` as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// `POST url` with a JSON body.
pub async fn post_json(url: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new().post(url).json(body).send().await.unwrap()
}

/// The single-user owner, as whom tests that drive services directly act.
pub const ME: crate::server::auth::UserId = crate::server::auth::UserId::SINGLE_USER;

/// An answer another process is writing (`now_ms` decides its lease), as the store has it.
pub fn streaming(id: &str, conversation_id: &str, now_ms: i64) -> NewMessage {
    NewMessage {
        id: id.into(),
        conversation_id: conversation_id.into(),
        parent_id: None,
        role: Role::Assistant,
        content: "so far".into(),
        status: MessageStatus::Streaming,
        provider: Some("local".into()),
        model: Some("m".into()),
        temperature: Some(0.0),
        max_tokens: Some(10),
        citations: Vec::new(),
        now_ms,
    }
}
