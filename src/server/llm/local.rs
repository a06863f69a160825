//! The embedded model: any chat GGUF run in-process by llama.cpp (`llama-cpp-2`).
//!
//! An actor: one thread owns the llama.cpp context ([`worker`]); callers reach it over a
//! bounded queue. A semaphore sized like the queue turns overload into [`LlmError::Busy`]
//! up front instead of an ever-growing wait.

mod template;
mod worker;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use async_trait::async_trait;
use futures::StreamExt;
use llama_cpp_2::{
    LogOptions, llama_backend::LlamaBackend, model::LlamaModel, model::params::LlamaModelParams,
    send_logs_to_tracing, token::LlamaToken,
};
use tokio::sync::{Semaphore, mpsc};

use self::{
    template::{ChatTemplate, Piece},
    worker::{Job, WorkerConfig},
};
use super::{ChatProvider, GenerationRequest, LlmError, ModelSpec, PromptMessage, TokenStream};

/// The local provider's name in model ids (`local/<model>`).
pub const LOCAL_PROVIDER: &str = "local";

/// llama.cpp's backend may be initialised once per process.
fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        send_logs_to_tracing(LogOptions::default());
        LlamaBackend::init().expect("llama.cpp backend initialises once")
    })
}

/// How to run the local model.
#[derive(Debug, Clone)]
pub struct LocalModelConfig {
    pub path: PathBuf,
    pub context_size: u32,
    pub batch_size: u32,
    pub threads: usize,
    pub queue_capacity: usize,
    pub seed: u32,
    /// 1.0 disables the repetition penalty.
    pub repeat_penalty: f32,
}

pub struct LocalModel {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    /// Text of the BOS token, to avoid a double BOS when the template writes it too.
    bos_text: String,
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    spec: ModelSpec,
    slots: usize,
}

impl LocalModel {
    /// Loads the GGUF and starts the worker thread. Blocking: call it from
    /// `spawn_blocking` in async code.
    pub fn load(config: &LocalModelConfig) -> Result<Self, LlmError> {
        let path = &config.path;
        if !path.is_file() {
            return Err(LlmError::Unavailable(format!(
                "no chat model at {}: run `make models` to fetch the default one, or set \
                 STOA_LOCAL_MODEL__PATH to a GGUF file",
                path.display()
            )));
        }
        let model = LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default())
            .map_err(|e| LlmError::Unavailable(format!("could not load {}: {e}", path.display())))?;
        let model = Arc::new(model);

        let vocab = model.vocab();
        let token_text = |t: LlamaToken| {
            vocab
                .text(t)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let bos_text = token_text(vocab.bos());
        let eos_text = token_text(vocab.eos());
        let source = model
            .chat_template(None)
            .map_err(|e| LlmError::Unavailable(format!("{} has no chat template: {e}", path.display())))?
            .to_string()
            .map_err(|e| LlmError::Template(e.to_string()))?;
        let template = ChatTemplate::new(source, bos_text.clone(), eos_text)?;

        let context_window = config.context_size.min(model.n_ctx_train()).max(64);
        let worker_config = WorkerConfig {
            n_ctx: context_window,
            n_batch: config.batch_size.clamp(16, context_window),
            threads: config.threads.max(1) as i32,
            seed: config.seed,
            repeat_penalty: config.repeat_penalty,
        };
        // One job runs and `queue_capacity` wait; the semaphore makes the channel never block.
        let slots = config.queue_capacity + 1;
        let (jobs, receiver) = mpsc::channel(slots);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker_model = Arc::clone(&model);
        std::thread::Builder::new()
            .name("stoa-local-model".into())
            .spawn(move || worker::run(worker_model, worker_config, receiver, ready_tx))
            .map_err(|e| LlmError::Unavailable(format!("could not start the model thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| LlmError::Unavailable("the model thread died while starting".into()))??;

        let spec = ModelSpec {
            id: model_name(path),
            context_window,
        };
        tracing::info!(model = %spec.id, context_window, threads = worker_config.threads, "local model loaded");
        Ok(Self {
            model,
            template,
            bos_text,
            jobs,
            permits: Arc::new(Semaphore::new(slots)),
            spec,
            slots,
        })
    }

    /// Requests running or queued right now (a queue-depth gauge, and how tests see that a
    /// dropped stream really freed the model).
    pub fn in_flight(&self) -> usize {
        self.slots - self.permits.available_permits()
    }

    /// The prompt's tokens. Only the chat template's own markup may produce special
    /// tokens (`<|im_start|>`…); the text of every message, the user's, a document's or
    /// an earlier answer's, is tokenized as plain text, so markup inside it stays text.
    fn tokenize(&self, messages: &[PromptMessage]) -> Result<Vec<LlamaToken>, LlmError> {
        let text = self.template.render(messages)?;
        // BOS is added here where the model wants one; drop a BOS the template wrote.
        let text = match text.strip_prefix(self.bos_text.as_str()) {
            Some(rest) if !self.bos_text.is_empty() => rest,
            _ => text.as_str(),
        };
        let vocab = self.model.vocab();
        let mut tokens = Vec::with_capacity(text.len() / 3 + 1);
        if vocab.should_add_bos() {
            tokens.push(vocab.bos());
        }
        for piece in template::pieces(text) {
            let (part, special) = match piece {
                Piece::Markup(part) => (part, true),
                Piece::Text(part) => (part, false),
            };
            vocab.tokenize_into(part.as_bytes(), &mut tokens, false, special);
        }
        Ok(tokens)
    }
}

#[cfg(test)]
impl LocalModel {
    /// How many control tokens (`<|im_start|>`…) the prompt for `messages` holds.
    pub fn control_tokens_in_prompt(&self, messages: &[PromptMessage]) -> Result<usize, LlmError> {
        let vocab = self.model.vocab();
        Ok(self
            .tokenize(messages)?
            .into_iter()
            .filter(|t| vocab.is_control(*t))
            .count())
    }
}

fn model_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".into())
}

#[async_trait]
impl ChatProvider for LocalModel {
    fn name(&self) -> &str {
        LOCAL_PROVIDER
    }

    fn is_local(&self) -> bool {
        true
    }

    fn models(&self) -> Vec<ModelSpec> {
        vec![self.spec.clone()]
    }

    fn count_prompt_tokens(&self, _model: &str, messages: &[PromptMessage]) -> Result<u32, LlmError> {
        Ok(self.tokenize(messages)?.len() as u32)
    }

    async fn stream(&self, request: GenerationRequest) -> Result<TokenStream, LlmError> {
        let tokens = self.tokenize(&request.messages)?;
        let prompt_tokens = tokens.len() as u32;
        let context_window = self.spec.context_window;
        if prompt_tokens.saturating_add(request.max_tokens) > context_window {
            return Err(LlmError::ContextOverflow {
                prompt_tokens,
                max_tokens: request.max_tokens,
                context_window,
            });
        }
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| LlmError::Busy)?;
        let (events, receiver) = mpsc::channel(64);
        let job = Job {
            tokens,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            events,
            _permit: permit,
        };
        let jobs = self.jobs.clone();
        // Lazy: the job is queued on the first poll, so callers can persist first.
        let start = futures::stream::once(async move {
            jobs.send(job)
                .await
                .map_err(|_| LlmError::Unavailable("the model thread has stopped".into()))
        })
        .filter_map(|sent| async move { sent.err().map(Err) });
        let tokens = futures::stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(start.chain(tokens)))
    }
}
