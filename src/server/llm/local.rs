//! The embedded model: any chat GGUF run in-process by llama.cpp (`llama-cpp-2`).
//!
//! An actor: one thread owns the llama.cpp context ([`worker`]); callers reach it over a
//! bounded queue. A semaphore sized like the queue turns overload into [`LlmError::Busy`]
//! up front instead of an ever-growing wait.

mod shape;
mod template;
mod worker;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use futures::StreamExt;
use llama_cpp_2::{
    LogOptions,
    llama_backend::LlamaBackend,
    model::LlamaModel,
    model::params::LlamaModelParams,
    sampling::LlamaSampler,
    send_logs_to_tracing,
    token::{LlamaToken, logit_bias::LlamaLogitBias},
};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use self::{
    shape::{Mode, Read},
    template::{ChatTemplate, Piece},
    worker::{Job, Sampling, WorkerConfig},
};
use super::{
    ChatProvider, FinishReason, GenerationRequest, LlmError, ModelSpec, PromptMessage, TokenEvent,
    TokenStream, ToolCallDelta,
};

/// The local provider's name in model ids (`local/<model>`).
pub const LOCAL_PROVIDER: &str = "local";

/// llama.cpp's backend may be initialised once per process.
pub(crate) fn backend() -> &'static LlamaBackend {
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
    /// Reuse the context of the previous request's common prefix.
    pub prompt_cache: bool,
    /// Answers decoded together in one batch (each with the whole context window).
    pub parallel: usize,
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
    /// Prompt tokens the prompt cache spared evaluating, since loading.
    reused: Arc<AtomicU64>,
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
            prompt_cache: config.prompt_cache,
            // Every answer decoding puts a token in each batch: they must fit in one.
            parallel: config
                .parallel
                .clamp(1, 64)
                .min(config.batch_size.clamp(16, context_window) as usize) as u32,
        };
        // `parallel` jobs run and `queue_capacity` wait; the semaphore makes the channel
        // never block.
        let slots = config.queue_capacity + worker_config.parallel as usize;
        let (jobs, receiver) = mpsc::channel(slots);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker_model = Arc::clone(&model);
        let reused = Arc::new(AtomicU64::new(0));
        let worker_reused = Arc::clone(&reused);
        std::thread::Builder::new()
            .name("stoa-local-model".into())
            .spawn(move || worker::run(worker_model, worker_config, receiver, ready_tx, worker_reused))
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
            reused,
        })
    }

    /// Prompt tokens the prompt cache spared evaluating since the model was loaded.
    pub fn prompt_cache_tokens(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
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

/// Largest nesting of a schema the grammar compiler is given.
const MAX_SCHEMA_DEPTH: usize = 32;
/// Largest repetition count (`maxItems`, `maxLength`, `{n}` in a pattern…) it is given: the
/// grammar spells repetitions out, so a count of a million is a grammar of millions of rules.
const MAX_SCHEMA_REPEAT: u64 = 1000;

/// Refuses schemas whose grammar would be unreasonably large or deep.
fn bounded(v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!("the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"));
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let counted = matches!(
                    k.as_str(),
                    "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties" | "maxProperties"
                );
                if counted && v.as_u64().is_none_or(|n| n > MAX_SCHEMA_REPEAT) {
                    return Err(format!(
                        "{k} is limited to {MAX_SCHEMA_REPEAT} for the embedded model"
                    ));
                }
                if k == "pattern"
                    && let Some(p) = v.as_str()
                    && p.split(|c: char| !c.is_ascii_digit())
                        .any(|n| n.len() > 4 || n.parse::<u64>().is_ok_and(|n| n > MAX_SCHEMA_REPEAT))
                {
                    return Err(format!(
                        "repetitions in a pattern are limited to {MAX_SCHEMA_REPEAT}"
                    ));
                }
                bounded(v, depth + 1)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|v| bounded(v, depth + 1)),
        _ => Ok(()),
    }
}

/// The grammar with JSON whitespace cut to single spaces: llama.cpp's grammars allow
/// newlines and indentation between tokens, which small models fill until `max_tokens`
/// cuts the answer; compact JSON is also fewer tokens.
fn compact(grammar: &str) -> String {
    grammar
        .lines()
        .map(|line| {
            if line.starts_with("space ::=") {
                "space ::= \" \"?"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl LocalModel {
    /// The sampler settings for a request and how its text becomes the answer, refusing
    /// what the embedded model cannot do (before anything is queued).
    fn sampling(&self, request: &GenerationRequest) -> Result<(Sampling, Mode), LlmError> {
        let o = &request.options;
        if let Some(i) = request.messages.iter().position(|m| !m.images.is_empty()) {
            return Err(LlmError::unsupported(
                format!("messages[{i}].content"),
                format!(
                    "the model local/{} reads text only; send images to a provider whose model accepts them",
                    self.spec.id
                ),
            ));
        }
        if o.logprobs {
            return Err(LlmError::unsupported(
                "logprobs",
                "the embedded model does not report log probabilities",
            ));
        }
        let n_vocab = self.model.n_vocab();
        let logit_bias = o
            .logit_bias
            .iter()
            .map(|(token, bias)| match token.parse::<i32>() {
                Ok(id) if (0..n_vocab).contains(&id) => {
                    Ok(LlamaLogitBias::new(LlamaToken(id), f32::from(*bias)))
                }
                _ => Err(LlmError::unsupported(
                    format!("logit_bias.{token}"),
                    format!("not a token id of this model (its vocabulary has {n_vocab} tokens)"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (schema, mode) = shape::plan(o);
        let param = if mode == Mode::Plain {
            "response_format.json_schema.schema"
        } else {
            "tools"
        };
        let grammar = match schema {
            None => None,
            Some(schema) => {
                bounded(&schema, 0).map_err(|e| LlmError::unsupported(param, e))?;
                let grammar = llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                    LlmError::unsupported(
                        param,
                        format!("the embedded model cannot follow this schema: {e}"),
                    )
                })?;
                let grammar = compact(&grammar);
                LlamaSampler::grammar(&self.model, &grammar, "root").map_err(|e| {
                    LlmError::unsupported(
                        param,
                        format!("the embedded model cannot follow this schema: {e}"),
                    )
                })?;
                Some(grammar)
            }
        };
        let sampling = Sampling {
            temperature: request.temperature,
            top_p: o.top_p,
            // Seeds are 32-bit in llama.cpp; larger ones keep their low bits.
            seed: o.seed.map(|s| s as u32),
            presence_penalty: o.presence_penalty.unwrap_or(0.0),
            frequency_penalty: o.frequency_penalty.unwrap_or(0.0),
            logit_bias,
            grammar,
            stop: o.stop.clone(),
        };
        Ok((sampling, mode))
    }
}

/// A tool-mode answer: the model's JSON is read whole, then sent as one tool call (finish
/// `tool_calls`) or as the answer's text. A text that is not the JSON it had to be (cut by
/// `max_tokens`) is sent as it is.
fn tool_answer(answer: TokenStream, mode: Mode) -> TokenStream {
    let mut text = String::new();
    Box::pin(
        answer
            .map(move |item| {
                let out: Vec<Result<TokenEvent, LlmError>> = match item {
                    Ok(TokenEvent::Token(t)) => {
                        text.push_str(&t);
                        Vec::new()
                    }
                    Ok(TokenEvent::Done {
                        prompt_tokens,
                        completion_tokens,
                        finish,
                    }) => {
                        let done = |finish| {
                            Ok(TokenEvent::Done {
                                prompt_tokens,
                                completion_tokens,
                                finish,
                            })
                        };
                        match shape::read(&text, &mode) {
                            Some(Read::Call { name, arguments }) => vec![
                                Ok(TokenEvent::ToolCall(ToolCallDelta {
                                    index: 0,
                                    id: Some(shape::call_id()),
                                    name: Some(name),
                                    arguments,
                                })),
                                done(FinishReason::ToolCalls),
                            ],
                            Some(Read::Content(c)) => vec![Ok(TokenEvent::Token(c)), done(finish)],
                            None => vec![Ok(TokenEvent::Token(std::mem::take(&mut text))), done(finish)],
                        }
                    }
                    other => vec![other],
                };
                futures::stream::iter(out)
            })
            .flatten(),
    )
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
        let (sampling, mode) = self.sampling(&request)?;
        let messages = shape::prompt(&request.messages, &request.options, &mode);
        let tokens = self.tokenize(&messages)?;
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
            sampling,
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
        let answer = start.chain(tokens);
        Ok(match mode {
            Mode::Plain => Box::pin(answer),
            mode => tool_answer(Box::pin(answer), mode),
        })
    }
}
