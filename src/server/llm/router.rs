//! Which provider answers: model ids `provider/model`, fallback chains, retries with
//! backoff before the first token, and each provider's health.
//!
//! An answer is "open" once its first item has arrived. Until then a failure that may
//! pass (connection refused, timeout, 5xx, 429, busy) is retried on the same provider
//! with exponential backoff, then handed to the next provider of the chain. After it,
//! nothing is retried: a failure ends the answer.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;

use super::{ChatProvider, GenerationRequest, LlmError, ModelSpec, TokenEvent, TokenStream};
use crate::api::types::ModelInfo;
use crate::server::metrics;

/// A provider with its routing settings and health.
pub struct Entry {
    provider: Arc<dyn ChatProvider>,
    fallback: Option<String>,
    retries: u32,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Entry {
    pub fn new(provider: Arc<dyn ChatProvider>, fallback: Option<String>, retries: u32) -> Self {
        Self {
            provider,
            fallback,
            retries,
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        }
    }

    fn mark(&self, result: Result<(), &LlmError>) {
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = result.err().map(ToString::to_string);
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// One model of one provider.
#[derive(Clone)]
pub struct Target {
    entry: Arc<Entry>,
    pub model: ModelSpec,
}

impl Target {
    pub fn provider(&self) -> &dyn ChatProvider {
        self.entry.provider.as_ref()
    }

    pub fn provider_name(&self) -> &str {
        self.entry.provider.name()
    }

    /// `provider/model`, the id users and the API see.
    pub fn id(&self) -> String {
        qualified(self.provider_name(), &self.model.id)
    }

    pub fn count_prompt_tokens(&self, messages: &[super::PromptMessage]) -> Result<u32, LlmError> {
        self.provider().count_prompt_tokens(&self.model.id, messages)
    }

    /// Checks prompt + max_tokens against the context window.
    pub fn check_fits(&self, prompt_tokens: u32, max_tokens: u32) -> Result<(), LlmError> {
        if prompt_tokens.saturating_add(max_tokens) > self.model.context_window {
            return Err(LlmError::ContextOverflow {
                prompt_tokens,
                max_tokens,
                context_window: self.model.context_window,
            });
        }
        Ok(())
    }

    /// Starts the request on this target (no I/O yet: see [`ChatProvider::stream`]).
    pub async fn start(&self, request: &GenerationRequest) -> Result<TokenStream, LlmError> {
        let request = GenerationRequest {
            model: self.model.id.clone(),
            ..request.clone()
        };
        self.provider().stream(request).await
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.id()).finish()
    }
}

pub fn qualified(provider: &str, model: &str) -> String {
    format!("{provider}/{model}")
}

/// What the caller already did for the first target of a chain.
pub struct Primed {
    /// Prompt tokens of the request for `chain[0]`, counted with its tokenizer.
    pub prompt_tokens: u32,
    /// A stream already started on `chain[0]`, used for the first attempt.
    pub stream: Option<TokenStream>,
}

/// An answer whose first item has arrived.
pub struct Opened {
    pub target: Target,
    /// The first item again, then the rest.
    pub tokens: TokenStream,
    pub prompt_tokens: u32,
    /// What went wrong on the way, for the user ("x failed: …; answered by y").
    pub notice: Option<String>,
}

pub struct Router {
    entries: Vec<Arc<Entry>>,
    default_model: Option<String>,
    backoff: Duration,
}

impl Router {
    /// `entries` in preference order (the local model first when there is one).
    pub fn new(entries: Vec<Entry>, default_model: Option<String>, backoff: Duration) -> Self {
        Self {
            entries: entries.into_iter().map(Arc::new).collect(),
            default_model,
            backoff,
        }
    }

    fn entry(&self, name: &str) -> Option<&Arc<Entry>> {
        self.entries.iter().find(|e| e.provider.name() == name)
    }

    /// The target of a model id: `provider/model`, or a bare model name any provider serves.
    pub fn resolve(&self, id: &str) -> Result<Target, String> {
        let find = |entry: &Arc<Entry>, model: &str| {
            entry
                .provider
                .models()
                .into_iter()
                .find(|m| m.id == model)
                .map(|model| Target {
                    entry: Arc::clone(entry),
                    model,
                })
        };
        if let Some((provider, model)) = id.split_once('/')
            && let Some(entry) = self.entry(provider)
        {
            return find(entry, model).ok_or_else(|| {
                let known = entry.provider.models();
                if known.is_empty() {
                    format!("model '{id}' is unknown: provider '{provider}' has not listed its models (is it reachable?)")
                } else {
                    format!("model '{id}' does not exist; GET /v1/models lists the models")
                }
            });
        }
        // A provider's name alone is its model when it serves one (`local`: the embedded
        // model, what an OpenAI client's newcomer types first); a bare model name is
        // looked up everywhere (the embedded model's file name too, `.gguf` and all).
        if let Some(entry) = self.entry(id)
            && let [only] = entry.provider.models().as_slice()
        {
            return Ok(Target {
                entry: Arc::clone(entry),
                model: only.clone(),
            });
        }
        let bare = id.strip_suffix(".gguf").unwrap_or(id);
        self.entries
            .iter()
            .find_map(|e| find(e, bare))
            .ok_or_else(|| format!("model '{id}' does not exist; GET /v1/models lists the models"))
    }

    /// The model of new conversations.
    pub fn default_target(&self) -> Option<Target> {
        if let Some(id) = &self.default_model
            && let Ok(target) = self.resolve(id)
        {
            return Some(target);
        }
        self.entries.iter().find_map(|e| {
            let model = e.provider.models().into_iter().next()?;
            Some(Target {
                entry: Arc::clone(e),
                model,
            })
        })
    }

    pub fn default_id(&self) -> Option<String> {
        self.default_target().map(|t| t.id())
    }

    /// The primary target, then the default model of each fallback provider in turn.
    pub fn chain(&self, primary: Target) -> Vec<Target> {
        let mut chain = vec![primary];
        let mut seen = vec![chain[0].provider_name().to_owned()];
        while let Some(next) = chain.last().and_then(|t| t.entry.fallback.clone()) {
            if seen.contains(&next) {
                break;
            }
            seen.push(next.clone());
            let Some(entry) = self.entry(&next) else { break };
            if let Some(model) = entry.provider.models().into_iter().next() {
                chain.push(Target {
                    entry: Arc::clone(entry),
                    model,
                });
            }
        }
        chain
    }

    /// Every model of every provider, marked available when its provider is healthy.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .flat_map(|e| {
                let healthy = e.is_healthy();
                let provider = e.provider.name().to_owned();
                let local = e.provider.is_local();
                e.provider.models().into_iter().map(move |m| ModelInfo {
                    id: qualified(&provider, &m.id),
                    provider: provider.clone(),
                    model: m.id,
                    context_window: m.context_window,
                    local,
                    available: healthy,
                })
            })
            .collect()
    }

    /// Checks every remote provider once (and refreshes discovered model lists).
    pub async fn probe_all(&self) {
        let probes = self
            .entries
            .iter()
            .filter(|e| !e.provider.is_local())
            .map(|e| async move {
                let result = e.provider.probe().await;
                if let Err(err) = &result {
                    tracing::warn!(provider = e.provider.name(), error = %err, "provider is unavailable");
                }
                e.mark(result.as_ref().map(|_| ()));
            });
        futures::future::join_all(probes).await;
    }

    /// Opens the answer on the first target of `chain` that produces a first item.
    /// `primed` is what the caller already did for `chain[0]`: it counted the prompt (to
    /// check the window before storing anything), and may have started a stream.
    pub async fn open(
        &self,
        chain: &[Target],
        request: &GenerationRequest,
        mut primed: Primed,
    ) -> Result<Opened, LlmError> {
        let asked = std::time::Instant::now();
        let mut failures: Vec<String> = Vec::new();
        let mut last_error = LlmError::Unavailable("no provider to ask".into());
        for (i, target) in chain.iter().enumerate() {
            let counted = match i {
                0 => Ok(primed.prompt_tokens),
                _ => target.count_prompt_tokens(&request.messages),
            };
            let prompt_tokens = match counted {
                Ok(n) => n,
                Err(e) => {
                    failures.push(format!("{}: {e}", target.id()));
                    last_error = e;
                    continue;
                }
            };
            if let Err(e) = target.check_fits(prompt_tokens, request.max_tokens) {
                if i == 0 && chain.len() == 1 {
                    return Err(e);
                }
                failures.push(format!(
                    "{}: the conversation does not fit its context window",
                    target.id()
                ));
                last_error = e;
                continue;
            }
            for attempt in 0..=target.entry.retries {
                if attempt > 0 {
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                }
                let opened = match primed.stream.take() {
                    Some(stream) => Ok(stream),
                    None => target.start(request).await,
                };
                let outcome = match opened {
                    Ok(mut stream) => match stream.next().await {
                        Some(Ok(first)) => {
                            metrics::first_token(target.provider_name(), asked.elapsed());
                            return Ok(Opened::answering(target, first, stream, prompt_tokens, &failures));
                        }
                        Some(Err(e)) => e,
                        None => LlmError::Unavailable("the stream ended before the answer began".into()),
                    },
                    Err(e) => e,
                };
                metrics::provider_error(target.provider_name(), &outcome);
                if !outcome.is_retryable() {
                    if failures.is_empty() {
                        return Err(outcome);
                    }
                    failures.push(format!("{}: {outcome}", target.id()));
                    return Err(summary(&failures, outcome));
                }
                tracing::warn!(target = %target.id(), attempt, error = %outcome, "provider failed before the first token");
                target.entry.mark(Err(&outcome));
                let busy = outcome == LlmError::Busy;
                last_error = outcome;
                if busy {
                    break; // another attempt at once would be just as busy
                }
            }
            let tries = target.entry.retries + 1;
            failures.push(match &last_error {
                LlmError::Busy => format!("{}: busy", target.id()),
                e if tries > 1 => format!("{} failed {tries} times: {e}", target.id()),
                e => format!("{} failed: {e}", target.id()),
            });
        }
        if failures.len() <= 1 {
            return Err(last_error);
        }
        Err(summary(&failures, last_error))
    }
}

impl Opened {
    /// The answer `target` began with `first`; `failures` are the targets that could not.
    fn answering(
        target: &Target,
        first: TokenEvent,
        rest: TokenStream,
        prompt_tokens: u32,
        failures: &[String],
    ) -> Self {
        target.entry.mark(Ok(()));
        let notice =
            (!failures.is_empty()).then(|| format!("{}; answered by {}", failures.join("; "), target.id()));
        let tokens = futures::stream::once(async { Ok(first) }).chain(rest);
        Opened {
            target: target.clone(),
            tokens: metered(target.provider_name().to_owned(), tokens),
            prompt_tokens,
            notice,
        }
    }
}

/// The answer's stream, passed through unchanged, reporting its tokens and speed when it
/// finishes and its failure if it fails.
fn metered(
    provider: String,
    tokens: impl futures::Stream<Item = Result<TokenEvent, LlmError>> + Send + 'static,
) -> TokenStream {
    let opened = std::time::Instant::now();
    Box::pin(tokens.inspect(move |item| match item {
        Ok(TokenEvent::Done {
            completion_tokens, ..
        }) => {
            metrics::answer_done(&provider, *completion_tokens, opened.elapsed());
        }
        Err(e) => metrics::provider_error(&provider, e),
        Ok(_) => {}
    }))
}

/// One error that tells every failure on the way, keeping the kind of the last one.
fn summary(failures: &[String], last: LlmError) -> LlmError {
    let text = format!("no provider could answer: {}", failures.join("; "));
    match last {
        LlmError::Rejected(_) => LlmError::Rejected(text),
        LlmError::Busy | LlmError::Unavailable(_) => LlmError::Unavailable(text),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{
        config::{ModelSetting, ProviderSettings},
        llm::openai::OpenAiProvider,
    };

    fn entry(name: &str, models: &[&str], fallback: Option<&str>) -> Entry {
        let settings = ProviderSettings {
            name: name.into(),
            base_url: "http://127.0.0.1:9/v1".into(),
            models: models.iter().map(|m| ModelSetting::Id((*m).into())).collect(),
            fallback: fallback.map(Into::into),
            ..ProviderSettings::default()
        };
        Entry::new(
            Arc::new(OpenAiProvider::new(&settings).unwrap()),
            settings.fallback,
            0,
        )
    }

    fn router() -> Router {
        Router::new(
            vec![
                entry("x", &["gpt-4o-mini", "shared"], Some("y")),
                entry("y", &["llama-3-8b", "shared"], Some("z")),
                entry("z", &["qwen"], Some("x")),
            ],
            Some("y/llama-3-8b".into()),
            Duration::from_millis(1),
        )
    }

    #[test]
    fn resolves_qualified_and_bare_ids() {
        let r = router();
        assert_eq!(r.resolve("y/shared").unwrap().id(), "y/shared");
        // A bare name goes to the first provider that has it.
        assert_eq!(r.resolve("shared").unwrap().id(), "x/shared");
        assert_eq!(r.resolve("qwen").unwrap().id(), "z/qwen");
        assert!(r.resolve("x/qwen").unwrap_err().contains("does not exist"));
        assert!(r.resolve("nope").is_err());
        assert_eq!(r.default_id().as_deref(), Some("y/llama-3-8b"));
        let known = r.resolve("x/gpt-4o-mini").unwrap();
        assert_eq!(known.model.context_window, 128_000);
        assert_eq!(r.resolve("z/qwen").unwrap().model.context_window, 8192);
        // A provider's name alone is its one model; of several, none is guessed.
        assert_eq!(r.resolve("z").unwrap().id(), "z/qwen");
        assert!(r.resolve("x").is_err());
        assert_eq!(r.resolve("qwen.gguf").unwrap().id(), "z/qwen");
    }

    #[test]
    fn chains_follow_fallbacks_once_each_and_stop_at_a_cycle() {
        let r = router();
        let ids: Vec<String> = r
            .chain(r.resolve("y/shared").unwrap())
            .iter()
            .map(Target::id)
            .collect();
        assert_eq!(ids, ["y/shared", "z/qwen", "x/gpt-4o-mini"]);
    }

    #[test]
    fn overflow_is_checked_against_the_target_window() {
        let t = router().resolve("z/qwen").unwrap();
        assert!(t.check_fits(8000, 192).is_ok());
        assert!(matches!(
            t.check_fits(8000, 193),
            Err(LlmError::ContextOverflow {
                context_window: 8192,
                ..
            })
        ));
    }
}
