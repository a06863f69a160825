//! Settings are layered: built-in defaults, then a TOML file (the file named by
//! `STOA_CONFIG`, else `stoa.toml` in the working directory and nowhere else: no parent
//! directory is searched, so a file someone left in `/tmp` configures nothing), then environment variables
//! `STOA_<SECTION>__<KEY>` (e.g. `STOA_LOCAL_MODEL__CONTEXT_SIZE=2048`). Unknown keys are
//! errors, so a typo does not silently fall back to a default.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// The config file settings are read from: the one `STOA_CONFIG` names (which must
/// exist), else `stoa.toml` in the working directory if it is there. Never a file in
/// another directory.
pub fn config_file() -> Result<Option<PathBuf>, Box<figment::Error>> {
    match std::env::var_os("STOA_CONFIG") {
        Some(named) => {
            let path = PathBuf::from(named);
            if path.is_file() {
                Ok(Some(path))
            } else {
                Err(Box::new(figment::Error::from(format!(
                    "STOA_CONFIG names {}, which is not a file",
                    path.display()
                ))))
            }
        }
        None => {
            let here = PathBuf::from("stoa.toml");
            Ok(here.is_file().then_some(here))
        }
    }
}

/// A URL fit for a log line: its password, and the values of query parameters that
/// look like credentials (`key`, `token`, `secret`, `password`, `auth`, `sig`), become
/// `***`. Text that is not a URL is kept only up to a `@` (a `user:password@host` form).
pub fn redact_url(raw: &str) -> String {
    const SECRET_WORDS: [&str; 6] = ["key", "token", "secret", "pass", "auth", "sig"];
    let Some(mut url) = url::Url::parse(raw).ok().filter(url::Url::has_host) else {
        return match raw.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => raw.to_owned(),
        };
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_WORDS.iter().any(|w| k.to_ascii_lowercase().contains(w));
                (
                    k.into_owned(),
                    if secret { "***".to_owned() } else { v.into_owned() },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// File name of the default chat model, as fetched by `.ci/fetch-models.sh`.
pub const DEFAULT_CHAT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where fetched models live (`STOA_MODEL_DIR`; default `~/.cache/stoa/models`).
    pub model_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub local_model: LocalModelSettings,
    pub embedding: EmbeddingSettings,
    pub rag: RagSettings,
    pub chat: ChatSettings,
    pub log: LogSettings,
    /// OpenAI-compatible providers (`[[providers]]` tables in the config file).
    pub providers: Vec<ProviderSettings>,
    pub routing: RoutingSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
}

/// Who may use Stoa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No sign-in: everything belongs to one local user. Only allowed on loopback.
    SingleUser,
    /// Sign-up / sign-in with passwords; API keys for programs.
    Accounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Whether people may create accounts when Stoa first starts (the admin can change
    /// it later; the first account can always be created, and becomes the admin).
    pub signup: bool,
    /// How long a sign-in lasts, in days.
    pub session_days: u32,
    /// Mark the session cookie `Secure` (HTTPS only). When unset: on unless Stoa listens
    /// on loopback only.
    pub secure_cookies: Option<bool>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::SingleUser,
            signup: true,
            session_days: 30,
            secure_cookies: None,
        }
    }
}

/// Requests per minute (a token bucket: bursts up to the same number). 0 turns one off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Answers started (chat, `/v1/chat/completions`, `/api/v1/generate`) per user.
    pub generations_per_user: u32,
    /// Answers started per client IP address.
    pub generations_per_ip: u32,
    /// Upload requests per user.
    pub uploads_per_user: u32,
    /// Upload requests per client IP address.
    pub uploads_per_ip: u32,
    /// Sign-in and sign-up attempts per client IP address (an IPv6 client: per /64).
    pub sign_ins_per_ip: u32,
    /// Sign-in attempts per account name, from any address.
    pub sign_ins_per_account: u32,
    /// Conversation imports per user.
    pub imports_per_user: u32,
    /// Conversation imports per client IP address.
    pub imports_per_ip: u32,
    /// `/v1/embeddings` requests per user.
    pub embeddings_per_user: u32,
    /// `/v1/embeddings` requests per client IP address.
    pub embeddings_per_ip: u32,
    /// Message searches per user.
    pub searches_per_user: u32,
    /// Message searches per client IP address.
    pub searches_per_ip: u32,
    /// Largest conversation import, in megabytes.
    pub import_mb: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            generations_per_user: 60,
            generations_per_ip: 120,
            uploads_per_user: 60,
            uploads_per_ip: 120,
            sign_ins_per_ip: 10,
            sign_ins_per_account: 5,
            imports_per_user: 10,
            imports_per_ip: 20,
            embeddings_per_user: 300,
            embeddings_per_ip: 600,
            searches_per_user: 120,
            searches_per_ip: 240,
            import_mb: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address; when unset, Leptos' site address (`LEPTOS_SITE_ADDR`, 127.0.0.1:3000).
    pub addr: Option<SocketAddr>,
    /// Directory of the SQLite database and other state.
    pub data_dir: PathBuf,
    /// How long a shutdown waits for running answers before marking them interrupted.
    pub shutdown_grace_secs: u64,
    /// In single-user mode there is no sign-in, so Stoa refuses to listen on anything
    /// but loopback unless this is set (e.g. behind an authenticating reverse proxy).
    pub allow_unauthenticated_network: bool,
    /// Host names Stoa answers to besides loopback names and IP addresses
    /// (`stoa.example.com`, `.example.com` for a domain and its subdomains, `*` for any);
    /// requests for other names are refused, which defeats DNS rebinding. Required when
    /// listening beyond loopback.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies (addresses or networks like `10.0.0.0/8`) whose `X-Forwarded-For`
    /// names the client, for per-address rate limits; none by default.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path/to/file.db`; when unset, `stoa.db` in the data directory.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalModelSettings {
    /// Serve the embedded model (provider `local`). Off only makes sense with providers.
    pub enabled: bool,
    /// Any chat GGUF; when unset, the default model in `model_dir`.
    pub path: Option<PathBuf>,
    /// Context window in tokens (prompt + answer), at most the model's trained length.
    pub context_size: u32,
    /// CPU threads for decoding; 0 means all available cores.
    pub threads: usize,
    /// Tokens evaluated per prompt batch.
    pub batch_size: u32,
    /// Requests that may wait behind the running ones; beyond that callers get "busy".
    pub queue_capacity: usize,
    /// Seed of the sampler, for reproducible answers at temperature > 0.
    pub seed: u32,
    /// Penalty on tokens repeated within the last 64 (1.0 = off). Small models loop without it.
    pub repeat_penalty: f32,
    /// Keep the last answer's context: a follow-up whose prompt starts with the previous
    /// conversation only evaluates what is new.
    pub prompt_cache: bool,
    /// Answers decoded together (continuous batching); each gets the whole context window,
    /// so the KV cache takes `parallel` times the memory of one.
    pub parallel: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// Load the local embedding model (for `/v1/embeddings` and documents).
    pub enabled: bool,
    /// A sentence-transformers BERT directory; when unset, all-MiniLM-L6-v2 in `model_dir`.
    pub path: Option<PathBuf>,
    /// Embed through this provider's `/embeddings` endpoint instead of the local model.
    pub provider: Option<String>,
    /// The provider's embedding model (with `provider`).
    pub model: Option<String>,
    /// Longest input the provider's model takes, in its tokens (with `provider`).
    pub max_tokens: u32,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            provider: None,
            model: None,
            max_tokens: 8191,
        }
    }
}

/// Documents and retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RagSettings {
    /// Largest uploaded file, in megabytes.
    pub max_upload_mb: u32,
    /// Chunk length in tokens of the embedding model (at most its limit of 256).
    pub chunk_tokens: u32,
    /// Tokens repeated from the end of one chunk at the start of the next.
    pub chunk_overlap: u32,
    /// Candidates taken from each of keyword and vector search, for each query.
    pub candidates: u32,
    /// Passages given to the model, at most.
    pub top_k: u32,
    /// Documents those passages come from, at most.
    pub max_documents: u32,
    /// Confidence (0–1, the probability that the documents answer the question, from
    /// the evidence of the search; see docs/using.md) below which the answer says the
    /// documents do not cover the question instead of using them.
    pub min_confidence: f32,
    /// Replaced by `min_confidence`; read so older config files still start, and ignored.
    #[serde(skip_serializing)]
    pub min_similarity: Option<f32>,
    /// How follow-up questions become search queries: `model` (the task model writes a
    /// standalone query, searched beside the previous question joined to the follow-up),
    /// `context` (only the latter), `off`, or `auto`: `model` when `routing.task_model` is
    /// set, else `context`.
    pub rewrite: crate::server::rag::rewrite::RewriteMode,
    /// How long the task model may take to rewrite; then `context` is used.
    pub rewrite_timeout_ms: u64,
    /// A second look at the candidates (`[rag.rerank]`).
    pub rerank: RerankSettings,
    /// Memory the process that reads one uploaded file may use, in megabytes; a file
    /// that needs more fails with that reason.
    pub extract_memory_mb: u32,
    /// Processor time reading one file may take, in seconds.
    pub extract_cpu_secs: u32,
    /// Wall-clock time reading one file may take, in seconds.
    pub extract_timeout_secs: u32,
    /// Languages Tesseract reads scanned pages and images in (`eng`, `deu+eng`: its
    /// language packs, Debian `tesseract-ocr-LANG`); empty turns OCR off.
    pub ocr_languages: String,
    /// Whether documents may be added by address (the server fetches them).
    pub fetch_by_address: bool,
    /// Networks a fetch by address (a web page added by URL) may reach although they are
    /// private, loopback or link-local (CIDR, e.g. `"10.1.0.0/16"`); none by default.
    pub fetch_allow_networks: Vec<String>,
    /// Time one fetch by address may take, in seconds (its size is bounded by
    /// `max_upload_mb`).
    pub fetch_timeout_secs: u32,
    /// Not a setting: the `stoa` binary that reads uploads, for tests and benchmarks
    /// whose own executable is not Stoa. Stoa itself runs its own executable.
    #[serde(skip)]
    pub extractor: Option<PathBuf>,
}

impl Default for RagSettings {
    fn default() -> Self {
        Self {
            max_upload_mb: 64,
            chunk_tokens: 200,
            chunk_overlap: 40,
            candidates: 20,
            top_k: 4,
            max_documents: 2,
            min_confidence: 0.275,
            min_similarity: None,
            rewrite: Default::default(),
            rewrite_timeout_ms: 2_000,
            rerank: RerankSettings::default(),
            extract_memory_mb: 1024,
            extract_cpu_secs: 60,
            extract_timeout_secs: 120,
            ocr_languages: "eng".into(),
            fetch_by_address: true,
            fetch_allow_networks: Vec::new(),
            fetch_timeout_secs: 30,
            extractor: None,
        }
    }
}

/// Re-ranking of the fused candidates (`[rag.rerank]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankSettings {
    /// `none` (the fused order), `remote` (a `/rerank` endpoint), `llm` (a chat model judges
    /// the candidates), `embedding` (the embedding model's similarity).
    pub mode: RerankMode,
    /// `remote`: the endpoint's full URL, e.g. `http://127.0.0.1:8080/rerank`.
    pub url: Option<String>,
    /// `remote`: `cohere` (also Jina, vLLM, llama.cpp's server, Stoa) or `tei`.
    pub api: crate::server::rag::rerank::RerankApi,
    /// `remote`: the model name sent; `llm`: `provider/model` (default: the task model).
    pub model: Option<String>,
    /// `remote`: name of the environment variable holding a bearer token (never the key
    /// itself, as for providers).
    pub api_key_env: Option<String>,
    /// How long re-ranking may take; then the fused order stands.
    pub timeout_ms: u64,
}

impl Default for RerankSettings {
    fn default() -> Self {
        Self {
            mode: RerankMode::None,
            url: None,
            api: Default::default(),
            model: None,
            api_key_env: None,
            timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RerankMode {
    #[default]
    None,
    Remote,
    Llm,
    Embedding,
}

impl RagSettings {
    /// With `rewrite = "auto"` made definite by whether `routing.task_model` is set.
    pub fn resolved(&self, routing: &RoutingSettings) -> RagSettings {
        RagSettings {
            rewrite: self.rewrite.resolved(routing.task_model.is_some()),
            ..self.clone()
        }
    }

    pub fn max_upload_bytes(&self) -> usize {
        self.max_upload_mb as usize * 1_048_576
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatSettings {
    /// Prepended as a system message when set; otherwise the model template's default applies.
    pub system_prompt: Option<String>,
    /// How often a streaming answer is written to the database.
    pub persist_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,stoa=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

/// One OpenAI-compatible provider (OpenAI, vLLM, llama.cpp server, Ollama, another Stoa…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// Unique name; its models are offered as `<name>/<model>`.
    pub name: String,
    /// Base URL of the API, up to and including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// More base URLs serving the same models (replicas of vLLM or llama.cpp server): each
    /// answer goes to the healthy one with the fewest answers in flight.
    pub endpoints: Vec<String>,
    /// Name of the environment variable that holds the API key. The key itself is never
    /// read from a file, logged or returned by any API.
    pub api_key_env: Option<String>,
    /// Models to offer; empty means discover them from `GET <base_url>/models`.
    pub models: Vec<ModelSetting>,
    /// Time to open a connection.
    pub connect_timeout_secs: u64,
    /// Time from the request to the first token; past it the next provider is tried.
    pub first_token_timeout_secs: u64,
    /// Longest silence between two chunks of an answer once it has started.
    pub idle_timeout_secs: u64,
    /// Answers in flight at once; beyond that the provider counts as busy.
    pub max_concurrent: usize,
    /// Extra attempts, with exponential backoff, when the provider fails before the first token.
    pub retries: u32,
    /// Provider (or `local`) that answers when this one fails before the first token.
    pub fallback: Option<String>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            base_url: String::new(),
            endpoints: Vec::new(),
            api_key_env: None,
            models: Vec::new(),
            connect_timeout_secs: 5,
            first_token_timeout_secs: 60,
            idle_timeout_secs: 120,
            max_concurrent: 16,
            retries: 1,
            fallback: None,
        }
    }
}

/// A provider's model: a name, or a name with its context window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSetting {
    Id(String),
    Spec {
        id: String,
        /// Tokens of prompt + answer; when unset, known OpenAI models' sizes, what the
        /// provider's `/models` reports, or 8192.
        context_window: Option<u32>,
    },
}

impl ModelSetting {
    pub fn id(&self) -> &str {
        match self {
            ModelSetting::Id(id) | ModelSetting::Spec { id, .. } => id,
        }
    }

    pub fn context_window(&self) -> Option<u32> {
        match self {
            ModelSetting::Id(_) => None,
            ModelSetting::Spec { context_window, .. } => *context_window,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// Model of new conversations, as `provider/model`; when unset the local model, or the
    /// first provider's first model.
    pub default_model: Option<String>,
    /// Provider that answers when the local model is busy or fails before its first token.
    pub local_fallback: Option<String>,
    /// Model of small jobs (rewriting follow-up questions before searching documents,
    /// judging passages with `rag.rerank.mode = "llm"`), as `provider/model`; when unset
    /// the embedded model, or the default model without one.
    pub task_model: Option<String>,
    /// Seconds between health checks of remote providers.
    pub probe_interval_secs: u64,
    /// First wait between retries; doubled at each further attempt.
    pub retry_backoff_ms: u64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        Self {
            default_model: None,
            local_fallback: None,
            task_model: None,
            probe_interval_secs: 30,
            retry_backoff_ms: 250,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        Self {
            model_dir: home.join(".cache/stoa/models"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            local_model: LocalModelSettings::default(),
            embedding: EmbeddingSettings::default(),
            rag: RagSettings::default(),
            chat: ChatSettings::default(),
            log: LogSettings::default(),
            providers: Vec::new(),
            routing: RoutingSettings::default(),
            auth: AuthSettings::default(),
            limits: LimitSettings::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            addr: None,
            data_dir: PathBuf::from("data"),
            shutdown_grace_secs: 10,
            allow_unauthenticated_network: false,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for LocalModelSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            context_size: 4096,
            threads: 0,
            batch_size: 512,
            queue_capacity: 8,
            seed: 42,
            repeat_penalty: 1.1,
            prompt_cache: true,
            parallel: 4,
        }
    }
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            system_prompt: None,
            persist_interval_ms: 250,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".into(),
        }
    }
}

impl Settings {
    /// Defaults, then the config file (if any), then `STOA_*` environment variables.
    pub fn load() -> Result<Self, Box<figment::Error>> {
        Ok(Self::figment(config_file()?.as_deref()).extract()?)
    }

    fn figment(file: Option<&Path>) -> Figment {
        let figment = Figment::from(Serialized::defaults(Settings::default()));
        // `file_exact`: figment's `file` would search every parent directory too.
        let figment = match file {
            Some(file) => figment.merge(Toml::file_exact(file)),
            None => figment,
        };
        figment.merge(Env::prefixed("STOA_").ignore(&["CONFIG"]).split("__"))
    }

    /// The chat model file actually used.
    pub fn chat_model_path(&self) -> PathBuf {
        self.local_model
            .path
            .clone()
            .unwrap_or_else(|| self.model_dir.join(DEFAULT_CHAT_MODEL_FILE))
    }

    /// The embedding model directory actually used.
    pub fn embedding_model_dir(&self) -> PathBuf {
        self.embedding.path.clone().unwrap_or_else(|| {
            self.model_dir
                .join(crate::server::embed::local::DEFAULT_EMBEDDING_MODEL_DIR)
        })
    }

    /// The database URL actually used.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.server.data_dir.join("stoa.db").display()))
    }

    /// Decoding threads actually used.
    pub fn threads(&self) -> usize {
        match self.local_model.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The settings as printed at start, with every secret replaced by `***`: passwords
    /// and tokens inside URLs (the database's, providers'). Provider API keys are never
    /// in the settings at all: providers name the environment variable that holds one.
    pub fn redacted(&self) -> String {
        let mut copy = self.clone();
        if let Some(url) = &mut copy.database.url {
            *url = redact_url(url);
        }
        if let Some(url) = &mut copy.rag.rerank.url {
            *url = redact_url(url);
        }
        for p in &mut copy.providers {
            p.base_url = redact_url(&p.base_url);
            for e in &mut p.endpoints {
                *e = redact_url(e);
            }
        }
        serde_json::to_string(&copy).unwrap_or_default()
    }

    /// Refuses a listen address other than loopback in single-user mode (every
    /// conversation and document would be open to the network), and beyond loopback
    /// without `server.allowed_hosts` (the names people will use must be listed).
    pub fn check_listen_address(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() {
            return Ok(());
        }
        if self.auth.mode == AuthMode::SingleUser && !self.server.allow_unauthenticated_network {
            return Err(format!(
                "refusing to listen on {addr}: in single-user mode there is no sign-in, so every \
                 conversation and document would be open to anyone who can reach it. Set \
                 auth.mode = \"accounts\" (STOA_AUTH__MODE=accounts), listen on 127.0.0.1 \
                 (LEPTOS_SITE_ADDR or server.addr), or set server.allow_unauthenticated_network = true \
                 behind an authenticating proxy"
            ));
        }
        if self.server.allowed_hosts.is_empty() {
            return Err(format!(
                "refusing to listen on {addr} without server.allowed_hosts: Stoa answers only to \
                 the host names listed there (besides loopback names and IP addresses), so that \
                 no web page can reach it through a name of its own (DNS rebinding). Set \
                 server.allowed_hosts = [\"stoa.example.com\"] (STOA_SERVER__ALLOWED_HOSTS='[\"stoa.example.com\"]') \
                 to the names people use"
            ));
        }
        Ok(())
    }

    /// Whether the session cookie is marked `Secure`.
    pub fn secure_cookies(&self, addr: std::net::SocketAddr) -> bool {
        self.auth.secure_cookies.unwrap_or(!addr.ip().is_loopback())
    }

    /// Checks what the types cannot: provider names, URLs and fallback chains, the
    /// embedding provider, the document settings.
    pub fn check(&self) -> Result<(), String> {
        crate::server::auth::proxies::TrustedProxies::parse(&self.server.trusted_proxies)?;
        crate::server::http::security::AllowedHosts::parse(&self.server.allowed_hosts)?;
        let mut names = vec![crate::server::llm::local::LOCAL_PROVIDER.to_owned()];
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            check_provider(&at, p)?;
            if names.contains(&p.name) {
                return Err(format!("{at}.name '{}' is used twice (or is reserved)", p.name));
            }
            names.push(p.name.clone());
        }
        self.check_fallbacks(&names)?;
        if let Some(name) = &self.embedding.provider {
            if !self.providers.iter().any(|p| &p.name == name) {
                return Err(format!("embedding.provider '{name}' is not one of [[providers]]"));
            }
            if self.embedding.model.is_none() {
                return Err("embedding.model must name the provider's embedding model".into());
            }
        }
        check_rag(&self.rag)
    }

    /// Every fallback names a provider (or the local model).
    fn check_fallbacks(&self, names: &[String]) -> Result<(), String> {
        let fallbacks = std::iter::once((
            crate::server::llm::local::LOCAL_PROVIDER,
            self.routing.local_fallback.as_deref(),
        ))
        .chain(
            self.providers
                .iter()
                .map(|p| (p.name.as_str(), p.fallback.as_deref())),
        );
        for (from, to) in fallbacks {
            if let Some(to) = to
                && !names.iter().any(|n| n == to)
            {
                return Err(format!(
                    "the fallback of '{from}' is '{to}', which is not a provider (known: {})",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// One provider's own settings (`at` is where it stands, `providers[2]`).
fn check_provider(at: &str, p: &ProviderSettings) -> Result<(), String> {
    let valid_name = !p.name.is_empty()
        && p.name.len() <= 40
        && p.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "{at}.name must be 1 to 40 letters, digits, '-' or '_' (got '{}')",
            p.name
        ));
    }
    let urls = std::iter::once(("base_url".to_owned(), &p.base_url)).chain(
        p.endpoints
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("endpoints[{i}]"), u)),
    );
    for (key, url) in urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "{at}.{key} must start with http:// or https:// (got '{url}')"
            ));
        }
    }
    if p.endpoints.len() > 32 {
        return Err(format!(
            "{at}.endpoints has at most 32 entries (got {})",
            p.endpoints.len()
        ));
    }
    if p.max_concurrent == 0 {
        return Err(format!("{at}.max_concurrent must be at least 1"));
    }
    if p.retries > 5 {
        return Err(format!("{at}.retries is at most 5 (got {})", p.retries));
    }
    Ok(())
}

/// Chunking, retrieval and extraction limits that make sense together.
fn check_rag(rag: &RagSettings) -> Result<(), String> {
    if rag.chunk_tokens < 32 || rag.chunk_tokens > 256 {
        return Err(format!(
            "rag.chunk_tokens must be 32 to 256 (got {})",
            rag.chunk_tokens
        ));
    }
    if rag.chunk_overlap >= rag.chunk_tokens / 2 {
        return Err("rag.chunk_overlap must be under half of rag.chunk_tokens".into());
    }
    if rag.top_k == 0 || rag.top_k > rag.candidates {
        return Err("rag.top_k must be 1 to rag.candidates".into());
    }
    if rag.max_documents == 0 {
        return Err("rag.max_documents must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&rag.min_confidence) {
        return Err(format!(
            "rag.min_confidence must be 0 to 1 (got {})",
            rag.min_confidence
        ));
    }
    if rag.rerank.mode == RerankMode::Remote && rag.rerank.url.is_none() {
        return Err("rag.rerank.mode = \"remote\" needs rag.rerank.url".into());
    }
    if rag.extract_memory_mb < 64 {
        return Err(format!(
            "rag.extract_memory_mb must be at least 64 (got {})",
            rag.extract_memory_mb
        ));
    }
    if rag.extract_cpu_secs == 0 || rag.extract_timeout_secs == 0 {
        return Err("rag.extract_cpu_secs and rag.extract_timeout_secs must be at least 1".into());
    }
    let language =
        |l: &str| !l.is_empty() && l.len() <= 32 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !rag.ocr_languages.is_empty() && !rag.ocr_languages.split('+').all(language) {
        return Err(format!(
            "rag.ocr_languages must be Tesseract language names joined by '+', e.g. \"deu+eng\" (got {:?})",
            rag.ocr_languages
        ));
    }
    Ok(())
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_defaults_file_and_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "stoa.toml",
                "[local_model]\ncontext_size = 2048\nthreads = 3\n[server]\ndata_dir = \"/tmp/x\"\n",
            )?;
            jail.set_env("STOA_LOCAL_MODEL__CONTEXT_SIZE", "1024");
            jail.set_env("STOA_MODEL_DIR", "/models");
            let s: Settings = Settings::figment(Some(Path::new("stoa.toml"))).extract()?;
            assert_eq!(s.local_model.context_size, 1024, "env wins over the file");
            assert_eq!(s.local_model.threads, 3, "file wins over defaults");
            assert_eq!(s.local_model.batch_size, 512, "defaults fill the rest");
            assert_eq!(s.database_url(), "sqlite:///tmp/x/stoa.db");
            assert_eq!(
                s.chat_model_path(),
                PathBuf::from("/models").join(DEFAULT_CHAT_MODEL_FILE)
            );
            Ok(())
        });
    }

    #[test]
    fn refuses_a_public_address_without_accounts_unless_told() {
        let mut s = Settings::default();
        assert!(s.check_listen_address("127.0.0.1:3000".parse().unwrap()).is_ok());
        assert!(s.check_listen_address("[::1]:3000".parse().unwrap()).is_ok());
        let any = "0.0.0.0:3000".parse().unwrap();
        let e = s.check_listen_address(any).unwrap_err();
        assert!(e.contains("allow_unauthenticated_network"), "{e}");
        s.server.allow_unauthenticated_network = true;
        let e = s.check_listen_address(any).unwrap_err();
        assert!(
            e.contains("allowed_hosts"),
            "beyond loopback the names must be listed: {e}"
        );
        s.server.allowed_hosts = vec!["stoa.example.com".into()];
        assert!(s.check_listen_address(any).is_ok());
        s.server.allow_unauthenticated_network = false;
        assert!(s.check_listen_address(any).is_err());
        s.auth.mode = AuthMode::Accounts;
        assert!(s.check_listen_address(any).is_ok());
        s.server.allowed_hosts.clear();
        let e = s.check_listen_address(any).unwrap_err();
        assert!(e.contains("allowed_hosts"), "in accounts mode too: {e}");
    }

    #[test]
    fn a_config_file_in_a_parent_directory_is_not_read() {
        Jail::expect_with(|jail| {
            jail.create_file("stoa.toml", "[local_model]\ncontext_size = 1234\n")?;
            jail.change_dir(jail.create_dir("work")?)?;
            assert_eq!(config_file().unwrap(), None, "no stoa.toml here");
            let s = Settings::load().unwrap();
            assert_eq!(s.local_model.context_size, 4096, "the parent's file is ignored");
            // The one in the working directory is read.
            jail.create_file("stoa.toml", "[local_model]\ncontext_size = 2048\n")?;
            assert_eq!(config_file().unwrap(), Some(PathBuf::from("stoa.toml")));
            assert_eq!(Settings::load().unwrap().local_model.context_size, 2048);
            // STOA_CONFIG must name a file that is there.
            jail.set_env("STOA_CONFIG", "missing.toml");
            let e = Settings::load().unwrap_err();
            assert!(e.to_string().contains("missing.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn printed_settings_hold_no_password_or_token() {
        let mut s = Settings::default();
        s.database.url = Some("postgres://stoa:hunter2@db.internal:5432/stoa".into());
        s.providers.push(ProviderSettings {
            name: "lab".into(),
            base_url: "https://user:s3cret@llm.internal/v1?api_key=k3y&region=eu".into(),
            endpoints: vec!["http://other:pa55@10.0.0.6:8000/v1".into()],
            ..ProviderSettings::default()
        });
        let printed = s.redacted();
        for secret in ["hunter2", "s3cret", "k3y", "pa55"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(
            printed.contains("postgres://stoa:***@db.internal:5432/stoa"),
            "{printed}"
        );
        assert!(printed.contains("region=eu"), "other parameters stay: {printed}");
        assert_eq!(redact_url("stoa:pw@host/db"), "***@host/db");
    }

    #[test]
    fn rejects_unknown_keys() {
        Jail::expect_with(|jail| {
            jail.create_file("stoa.toml", "[local_model]\ncontext_sise = 2048\n")?;
            let err = Settings::figment(Some(Path::new("stoa.toml")))
                .extract::<Settings>()
                .unwrap_err();
            assert!(err.to_string().contains("context_sise"), "{err}");
            Ok(())
        });
    }
}
