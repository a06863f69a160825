//! Start-up: settings → telemetry → storage → model → services → router → serve, and a
//! graceful shutdown that lets running answers finish for a while before marking them
//! interrupted.

use std::{net::SocketAddr, ops::ControlFlow, sync::Arc, time::Duration};

use axum::{http::HeaderName, serve::ListenerExt};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use super::{
    auth::{self, Accounts, limits::RateLimiter},
    background::Background,
    chat::{ChatService, Rag},
    config::Settings,
    embed::{Embedder, local::LocalEmbedder, remote::RemoteEmbedder},
    http,
    llm::{
        local::{LocalModel, LocalModelConfig},
        openai::OpenAiProvider,
        router::{Entry, Router},
    },
    rag::{
        index::VectorIndex,
        ingest::IngestService,
        rerank::{EmbeddingReranker, LlmReranker, RemoteReranker, Reranker},
        retrieve::Retriever,
    },
    state::AppState,
    storage::{self, DocumentStore, Store, documents::VectorSearch},
    telemetry,
};
use crate::app::{App, shell};

pub type StartupError = Box<dyn std::error::Error + Send + Sync>;

/// How long a deleted conversation can be restored (it is purged at the next start after).
const TRASH_KEEP_MS: i64 = 24 * 60 * 60 * 1000;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Runs the server until SIGINT/SIGTERM.
pub async fn run() -> Result<(), StartupError> {
    let settings = Settings::load()?;
    let telemetry = telemetry::init(&settings.log);
    let config_file = super::config::config_file()?.map_or_else(
        || "none (defaults and STOA_* variables)".to_owned(),
        |f| std::fs::canonicalize(&f).unwrap_or(f).display().to_string(),
    );
    tracing::info!(%config_file, settings = %settings.redacted(), "starting Stoa");
    let mut leptos_options = get_configuration(None)?.leptos_options;
    // Built by `.ci/build-site.sh` (or cargo-leptos with hash-files): the asset names
    // carry content hashes, listed in the hash file next to this binary.
    if !leptos_options.hash_files {
        leptos_options.hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(leptos_options.hash_file.as_ref())))
            .is_some_and(|file| file.is_file());
    }
    let addr: SocketAddr = settings.server.addr.unwrap_or(leptos_options.site_addr);
    settings.check_listen_address(addr)?;

    let (router, state) = build(settings, leptos_options).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        // Tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds one back
        // until the previous is acknowledged (up to 40 ms with delayed ACKs; bench/README.md).
        .tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
    tracing::info!("listening on http://{addr}");

    let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
    let chat = Arc::clone(&state.chat);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!(
            running = chat.running(),
            grace_secs = grace.as_secs(),
            "shutting down"
        );
        // Open answer streams keep connections alive; this ends them after the grace.
        tokio::spawn(async move {
            chat.shutdown(grace).await;
            let _ = drained_tx.send(());
        });
    })
    .await?;
    let _ = drained_rx.await;
    state.background.stop().await;
    state.store.close().await;
    tracing::info!("stopped");
    telemetry.shutdown();
    Ok(())
}

/// `stoa backup FILE`: an online copy of the SQLite database into a new file, while Stoa
/// may keep serving. PostgreSQL has its own tools (`pg_dump`; see docs/operating.md).
pub async fn backup(target: &std::path::Path) -> Result<(), StartupError> {
    let settings = Settings::load()?;
    let url = settings.database_url();
    if !url.starts_with("sqlite:") {
        return Err(
            "stoa backup copies SQLite databases; for PostgreSQL use pg_dump (docs/operating.md)".into(),
        );
    }
    if target.exists() {
        return Err(format!("{} exists; give a new file name", target.display()).into());
    }
    let store = storage::sqlite::SqliteStore::open(&url).await?;
    store.backup_to(target).await?;
    storage::Store::close(&store).await;
    println!("backed up {url} to {}", target.display());
    Ok(())
}

/// `stoa migrate-db FROM TO`: copies a SQLite database (`sqlite://…/stoa.db`) into a
/// PostgreSQL one (`postgres://…`, created beforehand), resumable, with a count check.
pub async fn migrate_db(from: &str, to: &str) -> Result<(), StartupError> {
    let usage = "usage: stoa migrate-db sqlite://PATH/stoa.db postgres://USER@HOST/DB";
    if !from.starts_with("sqlite:") || !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(usage.into());
    }
    let path = from.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    if !std::path::Path::new(path).is_file() {
        return Err(format!("no SQLite database at {path}").into());
    }
    let source = storage::sqlite::SqliteStore::open(from).await?;
    let target = storage::postgres::PgStore::open(to).await?;
    println!("{:<26} {:>10} {:>10}", "table", "SQLite", "PostgreSQL");
    let copied = storage::migrate::sqlite_to_postgres(&source, &target, |c| {
        println!("{:<26} {:>10} {:>10}", c.table, c.source, c.target);
    })
    .await;
    storage::Store::close(&source).await;
    storage::Store::close(&target).await;
    let copied = copied?;
    let rows: i64 = copied.iter().map(|c| c.source).sum();
    println!("copied {rows} rows; every table has all its rows in PostgreSQL");
    Ok(())
}

/// `stoa eval-rag [--dump FILE] [--only NAME]`: the retrieval evaluation of `bench/eval`, printed.
pub async fn eval_rag(
    dump: Option<&std::path::Path>,
    only: Option<&str>,
    rerankers: bool,
) -> Result<(), StartupError> {
    use crate::server::rag::eval;
    let settings = Settings::load()?;
    super::tls::install();
    let (dir, spare) = (settings.embedding_model_dir(), settings.server.data_dir.clone());
    let embedder: Arc<dyn Embedder> =
        Arc::new(tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir, &spare)).await??);
    let paths = eval::Paths::default_for(std::path::Path::new("."));
    let indexed = eval::index(&paths, Arc::clone(&embedder), &settings.rag).await?;
    let background = Background::default();
    let (models, _) = models(&settings, &background).await?;
    let chat = ChatService::new(
        Arc::clone(&indexed.store) as Arc<dyn storage::Store>,
        models,
        settings.chat.clone(),
    )
    .with_task_model(task_model(&settings));
    let retriever = Retriever::new(
        Arc::clone(&indexed.store) as Arc<dyn DocumentStore>,
        Arc::clone(&embedder),
        Arc::clone(&indexed.index) as Arc<dyn VectorSearch>,
        settings.rag.resolved(&settings.routing),
    )
    .with_reranker(reranker(&settings.rag.rerank, Arc::clone(&embedder))?);
    let questions = eval::questions(&paths.questions)?;
    let rag = settings.rag.resolved(&settings.routing);
    let mut setups = eval::Setup::all(&rag);
    if rerankers {
        setups.extend(eval::Setup::rerankers(&rag, Arc::clone(&embedder)));
    }
    if let Some(only) = only {
        setups.retain(|s| s.name().contains(only));
    }
    let (report, outcomes) = eval::evaluate(&indexed, &retriever, Some(&chat), &questions, &setups).await?;
    background.stop().await;
    print!("{report}");
    if let Some(file) = dump {
        let lines: Vec<String> = outcomes
            .iter()
            .map(|o| serde_json::to_string(o).unwrap_or_default())
            .collect();
        std::fs::write(file, lines.join("\n") + "\n").map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// Opens storage, loads the model and builds the router. Used by `run` and by tests.
pub async fn build(
    settings: Settings,
    leptos_options: LeptosOptions,
) -> Result<(axum::Router, AppState), StartupError> {
    settings.check()?;
    super::tls::install();
    super::metrics::install();
    std::fs::create_dir_all(&settings.server.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            settings.server.data_dir.display()
        )
    })?;
    let storage::Stores {
        store,
        documents,
        accounts: account_store,
        shared,
        vectors,
        buckets,
    } = storage::open(&settings.database_url()).await?;
    let listen = settings.server.addr.unwrap_or(leptos_options.site_addr);
    let accounts = Arc::new(Accounts::new(
        account_store,
        settings.auth.clone(),
        settings.secure_cookies(listen),
    ));
    let proxies = auth::proxies::TrustedProxies::parse(&settings.server.trusted_proxies)?;
    let mut limits = RateLimiter::new(settings.limits.clone()).behind(proxies);
    if let Some(buckets) = buckets {
        limits = limits.shared(buckets);
    }
    recover(&*store, &*documents, shared).await?;

    let background = Background::default();
    let (models, local) = models(&settings, &background).await?;
    let embedder = embedder(&settings).await?;
    let chat = ChatService::new(Arc::clone(&store), models, settings.chat.clone())
        .with_task_model(task_model(&settings));
    let (chat, ingest) = match &embedder {
        Some(embedder) => {
            with_documents(
                chat,
                &settings,
                documents,
                vectors,
                Arc::clone(embedder),
                &background,
            )
            .await?
        }
        None => (chat, None),
    };
    let chat = Arc::new(chat);
    // Leases of this process's answers, and the sweep of answers whose process died.
    let keeper = Arc::downgrade(&chat);
    background.every(
        "answer leases",
        Duration::from_millis((storage::ANSWER_LEASE_MS / 3) as u64),
        move || {
            let keeper = keeper.clone();
            async move {
                let Some(chat) = keeper.upgrade() else {
                    return ControlFlow::Break(());
                };
                chat.keep_alive().await;
                ControlFlow::Continue(())
            }
        },
    );
    let state = AppState {
        leptos_options,
        settings: Arc::new(settings),
        store,
        chat,
        local,
        embedder,
        ingest,
        accounts,
        limits: Arc::new(limits),
        background,
    };
    Ok((router(state.clone())?, state))
}

/// Documents for a chat service with an embedder: the vector index (pgvector's, or the
/// in-memory one loaded from the database), ingestion and retrieval.
async fn with_documents(
    chat: ChatService,
    settings: &Settings,
    documents: Arc<dyn DocumentStore>,
    vectors: Option<Arc<dyn VectorSearch>>,
    embedder: Arc<dyn Embedder>,
    background: &Background,
) -> Result<(ChatService, Option<Arc<IngestService>>), StartupError> {
    let index: Arc<dyn VectorSearch> = match vectors {
        Some(in_database) => in_database,
        None => {
            let index = VectorIndex::new(documents.chunk_vectors().await?);
            tracing::info!(chunks = index.len(), "vector index loaded");
            Arc::new(index)
        }
    };
    let ingest = IngestService::start(
        Arc::clone(&documents),
        Arc::clone(&embedder),
        Arc::clone(&index),
        settings.rag.clone(),
        background,
    )?;
    let retriever = Retriever::new(
        Arc::clone(&documents),
        Arc::clone(&embedder),
        index,
        settings.rag.resolved(&settings.routing),
    )
    .with_reranker(reranker(&settings.rag.rerank, embedder)?);
    let chat = chat.with_rag(Rag {
        documents,
        retriever: Arc::new(retriever),
    });
    Ok((chat, Some(ingest)))
}

/// `routing.task_model`, else the embedded model, else the default model (`None`).
fn task_model(settings: &Settings) -> Option<String> {
    if settings.rag.min_similarity.is_some() {
        tracing::warn!(
            "rag.min_similarity is no longer read: rag.min_confidence decides when documents do not cover a question"
        );
    }
    settings
        .routing
        .task_model
        .clone()
        .or_else(|| settings.local_model.enabled.then(|| "local".to_owned()))
}

/// The re-ranker `[rag.rerank]` names, if any.
fn reranker(
    s: &crate::server::config::RerankSettings,
    embedder: Arc<dyn Embedder>,
) -> Result<Option<Arc<dyn Reranker>>, StartupError> {
    use crate::server::config::RerankMode;
    Ok(match s.mode {
        RerankMode::None => None,
        RerankMode::Embedding => Some(Arc::new(EmbeddingReranker::new(embedder))),
        RerankMode::Llm => Some(Arc::new(LlmReranker::new(s.model.clone()))),
        RerankMode::Remote => {
            let key = s.api_key_env.as_deref().map(|var| {
                std::env::var(var)
                    .map_err(|_| format!("rag.rerank.api_key_env names {var}, which is not set"))
            });
            let reranker = RemoteReranker::new(
                s.url.clone().unwrap_or_default(),
                s.api,
                s.model.clone(),
                key.transpose()?,
                Duration::from_millis(s.timeout_ms),
            )?;
            tracing::info!(url = %super::config::redact_url(s.url.as_deref().unwrap_or("")), "re-ranker configured");
            Some(Arc::new(reranker))
        }
    })
}

/// What the last run left unfinished: documents half-ingested are failed, answers still
/// streaming are interrupted (alone on the database, all of them were this process's; on
/// a shared one only those whose lease ran out), and the trash older than a day is purged.
async fn recover(store: &dyn Store, documents: &dyn DocumentStore, shared: bool) -> Result<(), StartupError> {
    let now = super::clock::now_ms();
    let failed = documents.fail_unfinished_documents(now).await?;
    if failed > 0 {
        tracing::warn!(
            count = failed,
            "documents left unfinished by the last run are marked failed"
        );
    }
    let purged = store.purge_trash(now - TRASH_KEEP_MS).await?;
    if purged > 0 {
        tracing::info!(count = purged, "purged deleted conversations");
    }
    let interrupted = if shared {
        store.interrupt_abandoned(now).await?
    } else {
        store.interrupt_streaming(now).await?
    };
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "answers left unfinished by the last run are marked interrupted"
        );
    }
    Ok(())
}

/// The models answers come from (the embedded one first, then each provider), probed once
/// before the first request and again in the background.
async fn models(
    settings: &Settings,
    background: &Background,
) -> Result<(Arc<Router>, Option<Arc<LocalModel>>), StartupError> {
    let mut entries = Vec::new();
    let mut local = None;
    if settings.local_model.enabled {
        let model_config = LocalModelConfig {
            path: settings.chat_model_path(),
            context_size: settings.local_model.context_size,
            batch_size: settings.local_model.batch_size,
            threads: settings.threads(),
            queue_capacity: settings.local_model.queue_capacity,
            seed: settings.local_model.seed,
            repeat_penalty: settings.local_model.repeat_penalty,
            prompt_cache: settings.local_model.prompt_cache,
            parallel: settings.local_model.parallel,
        };
        let model = Arc::new(tokio::task::spawn_blocking(move || LocalModel::load(&model_config)).await??);
        local = Some(Arc::clone(&model));
        // The local model is not retried: it fails only when busy or broken.
        entries.push(Entry::new(model, settings.routing.local_fallback.clone(), 0));
    }
    for p in &settings.providers {
        let provider = OpenAiProvider::new(p)?;
        tracing::info!(provider = %p.name, base_url = %super::config::redact_url(&p.base_url), "provider configured");
        entries.push(Entry::new(Arc::new(provider), p.fallback.clone(), p.retries));
    }
    if entries.is_empty() {
        return Err("no model to answer with: enable [local_model] or configure [[providers]]".into());
    }
    let models = Arc::new(Router::new(
        entries,
        settings.routing.default_model.clone(),
        Duration::from_millis(settings.routing.retry_backoff_ms),
    ));
    models.probe_all().await;
    if let Some(id) = &settings.routing.default_model
        && let Err(e) = models.resolve(id)
    {
        tracing::warn!(default_model = %id, error = %e, "the default model is not available yet");
    }
    let probed = Arc::clone(&models);
    background.every(
        "provider probes",
        Duration::from_secs(settings.routing.probe_interval_secs.max(1)),
        move || {
            let probed = Arc::clone(&probed);
            async move {
                probed.probe_all().await;
                ControlFlow::Continue(())
            }
        },
    );
    Ok((models, local))
}

/// The embedding model: a provider's (`embedding.provider`) or the bundled MiniLM; none
/// when embeddings are disabled.
async fn embedder(settings: &Settings) -> Result<Option<Arc<dyn Embedder>>, StartupError> {
    Ok(match (&settings.embedding.provider, settings.embedding.enabled) {
        (_, false) => None,
        (Some(name), true) => {
            let provider = settings
                .providers
                .iter()
                .find(|p| &p.name == name)
                .ok_or("unknown embedding.provider")?;
            let model = settings.embedding.model.as_deref().unwrap_or_default();
            let max_tokens = settings.embedding.max_tokens as usize;
            Some(Arc::new(
                RemoteEmbedder::connect(provider, model, max_tokens).await?,
            ))
        }
        (None, true) => {
            let (dir, spare) = (settings.embedding_model_dir(), settings.server.data_dir.clone());
            Some(Arc::new(
                tokio::task::spawn_blocking(move || LocalEmbedder::load(&dir, &spare)).await??,
            ))
        }
    })
}

fn router(state: AppState) -> Result<axum::Router, StartupError> {
    let [nosniff, referrer, no_framing] = http::security::layers();
    let hosts = Arc::new(http::security::AllowedHosts::parse(
        &state.settings.server.allowed_hosts,
    )?);
    let body_limits = http::security::BodyLimits {
        upload: state.settings.rag.max_upload_bytes() * crate::api::documents::MAX_FILES_PER_UPLOAD
            + http::security::MAX_BODY_BYTES,
        import: state.settings.limits.import_mb as usize * 1_048_576,
    };
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Ok(axum::Router::new()
        .leptos_routes_with_context(&state, routes, || (), move || shell(options.clone()))
        .merge(http::rest::router())
        .merge(auth::routes::router())
        .merge(http::assets::router(std::path::Path::new(
            state.leptos_options.site_root.as_ref(),
        )))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(http::server_fn_error_status))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware::authenticate,
        ))
        // limit_body holds every route to its own limit; axum's extractors' 2 MB default
        // would otherwise refuse smaller bodies first, in another shape.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            body_limits,
            http::security::limit_body,
        ))
        .layer(axum::middleware::from_fn(http::assets::no_cache_html))
        .layer(nosniff)
        .layer(referrer)
        .layer(no_framing)
        .layer(axum::middleware::from_fn(http::metrics::track))
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        // Outermost: a request for a name Stoa does not answer to is refused before
        // anything else sees it.
        .layer(axum::middleware::from_fn_with_state(hosts, http::security::check_host))
        .with_state(state))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
