//! Settings are layered: built-in defaults, then a TOML file (`stoa.toml` in the working
//! directory, or the file named by `STOA_CONFIG`), then environment variables
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
    /// Sign-in and sign-up attempts per client IP address.
    pub sign_ins_per_ip: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            generations_per_user: 60,
            generations_per_ip: 120,
            uploads_per_user: 60,
            uploads_per_ip: 120,
            sign_ins_per_ip: 10,
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
    /// Stoa has no accounts yet, so it refuses to listen on anything but loopback unless
    /// this is set (e.g. behind an authenticating reverse proxy).
    pub allow_unauthenticated_network: bool,
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
    /// Requests that may wait behind the running one; beyond that callers get "busy".
    pub queue_capacity: usize,
    /// Seed of the sampler, for reproducible answers at temperature > 0.
    pub seed: u32,
    /// Penalty on tokens repeated within the last 64 (1.0 = off). Small models loop without it.
    pub repeat_penalty: f32,
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
    /// Candidates taken from each of keyword and vector search.
    pub candidates: u32,
    /// Passages given to the model.
    pub top_k: u32,
    /// Cosine similarity a passage needs to be used; below it the answer says the
    /// documents do not cover the question.
    pub min_similarity: f32,
}

impl Default for RagSettings {
    fn default() -> Self {
        Self {
            max_upload_mb: 20,
            chunk_tokens: 200,
            chunk_overlap: 40,
            candidates: 20,
            top_k: 4,
            min_similarity: 0.3,
        }
    }
}

impl RagSettings {
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
        let file = std::env::var_os("STOA_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("stoa.toml"));
        Ok(Self::figment(&file).extract()?)
    }

    fn figment(file: &Path) -> Figment {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("STOA_").ignore(&["CONFIG"]).split("__"))
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

    /// The settings as printed at start. They hold no secrets: providers name the
    /// environment variable of their API key, never the key.
    pub fn redacted(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Refuses a listen address other than loopback in single-user mode: every
    /// conversation and document would be open to the network.
    pub fn check_listen_address(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback()
            || self.auth.mode == AuthMode::Accounts
            || self.server.allow_unauthenticated_network
        {
            return Ok(());
        }
        Err(format!(
            "refusing to listen on {addr}: in single-user mode there is no sign-in, so every \
             conversation and document would be open to anyone who can reach it. Set \
             auth.mode = \"accounts\" (STOA_AUTH__MODE=accounts), listen on 127.0.0.1 \
             (LEPTOS_SITE_ADDR or server.addr), or set server.allow_unauthenticated_network = true \
             behind an authenticating proxy"
        ))
    }

    /// Whether the session cookie is marked `Secure`.
    pub fn secure_cookies(&self, addr: std::net::SocketAddr) -> bool {
        self.auth.secure_cookies.unwrap_or(!addr.ip().is_loopback())
    }

    /// Checks what the types cannot: provider names, URLs and fallback chains.
    pub fn check(&self) -> Result<(), String> {
        crate::server::auth::proxies::TrustedProxies::parse(&self.server.trusted_proxies)?;
        let mut names = vec![crate::server::llm::local::LOCAL_PROVIDER.to_owned()];
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
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
            if names.contains(&p.name) {
                return Err(format!("{at}.name '{}' is used twice (or is reserved)", p.name));
            }
            names.push(p.name.clone());
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
        }
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
        if let Some(name) = &self.embedding.provider {
            if !self.providers.iter().any(|p| &p.name == name) {
                return Err(format!("embedding.provider '{name}' is not one of [[providers]]"));
            }
            if self.embedding.model.is_none() {
                return Err("embedding.model must name the provider's embedding model".into());
            }
        }
        let rag = &self.rag;
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
        Ok(())
    }
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
            let s: Settings = Settings::figment(Path::new("stoa.toml")).extract()?;
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
        let e = s
            .check_listen_address("0.0.0.0:3000".parse().unwrap())
            .unwrap_err();
        assert!(e.contains("allow_unauthenticated_network"), "{e}");
        s.server.allow_unauthenticated_network = true;
        assert!(s.check_listen_address("0.0.0.0:3000".parse().unwrap()).is_ok());
        s.server.allow_unauthenticated_network = false;
        s.auth.mode = AuthMode::Accounts;
        assert!(s.check_listen_address("0.0.0.0:3000".parse().unwrap()).is_ok());
    }

    #[test]
    fn rejects_unknown_keys() {
        Jail::expect_with(|jail| {
            jail.create_file("stoa.toml", "[local_model]\ncontext_sise = 2048\n")?;
            let err = Settings::figment(Path::new("stoa.toml"))
                .extract::<Settings>()
                .unwrap_err();
            assert!(err.to_string().contains("context_sise"), "{err}");
            Ok(())
        });
    }
}
