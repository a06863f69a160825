//! The thread that owns the llama.cpp context. A context is not `Send`, so one thread
//! owns it and serves jobs in order; tokens leave over each job's own channel. When that
//! channel's receiver is gone (Stop, closed tab, dropped stream), decoding stops at once.
//!
//! The prompt cache: the context keeps what the last job evaluated (its prompt and the
//! tokens it generated); the next job evaluates only what follows the prefix the two share,
//! so a follow-up in a conversation does not evaluate the whole history again. The same
//! tokens evaluated in batches of other sizes round differently in llama.cpp's kernels, so
//! a near tie between two tokens can go the other way with the cache than without it (as
//! llama.cpp's own server documents for its `cache_prompt`).

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use llama_cpp_2::{
    context::{LlamaContext, params::LlamaContextParams},
    llama_batch::LlamaBatch,
    model::LlamaModel,
    sampling::LlamaSampler,
    token::{LlamaToken, logit_bias::LlamaLogitBias},
};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{backend, shape::StopScan};
use crate::server::llm::{FinishReason, LlmError, TokenEvent};

/// How one answer samples its tokens.
#[derive(Debug, Clone, Default)]
pub(super) struct Sampling {
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub top_p: Option<f32>,
    /// The worker's seed when `None`.
    pub seed: Option<u32>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub logit_bias: Vec<LlamaLogitBias>,
    /// A GBNF grammar (root rule `root`) the answer must follow; checked to compile.
    pub grammar: Option<String>,
    pub stop: Vec<String>,
}

pub(super) struct Job {
    pub tokens: Vec<LlamaToken>,
    pub sampling: Sampling,
    pub max_tokens: u32,
    pub events: mpsc::Sender<Result<TokenEvent, LlmError>>,
    /// Held while the job waits and runs: the queue's capacity is the number of permits.
    pub _permit: OwnedSemaphorePermit,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct WorkerConfig {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub threads: i32,
    pub seed: u32,
    pub repeat_penalty: f32,
    pub prompt_cache: bool,
}

/// Creates the context, reports readiness, then serves jobs until every sender is gone.
pub(super) fn run(
    model: Arc<LlamaModel>,
    config: WorkerConfig,
    mut jobs: mpsc::Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), LlmError>>,
    reused: Arc<AtomicU64>,
) {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx))
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let mut ctx = match model.new_context(backend(), params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(LlmError::Unavailable(format!(
                "could not create a context: {e}"
            ))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut batch = LlamaBatch::new(config.n_batch as usize, 1);
    // The tokens whose keys and values the context holds, at positions 0.. in sequence 0.
    let mut cached: Vec<LlamaToken> = Vec::new();
    while let Some(job) = jobs.blocking_recv() {
        let events = job.events.clone();
        if let Err(e) = generate(&model, &mut ctx, &mut batch, &config, &job, &mut cached, &reused) {
            tracing::warn!(error = %e, "local generation failed");
            // What a failed evaluation left in the context is not known.
            cached.clear();
            ctx.clear_kv_cache();
            let _ = events.blocking_send(Err(e));
        }
    }
    tracing::debug!("local model worker stopped");
}

/// Tokens the repetition penalty looks back over.
const PENALTY_LAST_N: i32 = 64;

/// The sampler chain: logit biases, penalties, the grammar (which only removes tokens it
/// forbids), then greedy choice or top-k / top-p / min-p / temperature / seeded draw.
pub(super) fn sampler(
    model: &LlamaModel,
    s: &Sampling,
    config: &WorkerConfig,
) -> Result<LlamaSampler, LlmError> {
    let n_vocab = model.n_vocab();
    let mut chain = Vec::with_capacity(8);
    if !s.logit_bias.is_empty() {
        chain.push(LlamaSampler::logit_bias(n_vocab, &s.logit_bias));
    }
    // Small models loop ("a sea of words, a sea of words, …") without a repetition penalty,
    // greedy decoding most of all; the penalty keeps greedy decoding deterministic.
    chain.push(LlamaSampler::penalties(
        n_vocab,
        PENALTY_LAST_N,
        config.repeat_penalty,
        s.frequency_penalty,
        s.presence_penalty,
    ));
    if let Some(grammar) = &s.grammar {
        chain.push(LlamaSampler::grammar(model, grammar, "root").map_err(|e| backend_err("grammar", e))?);
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        chain.extend([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(s.top_p.unwrap_or(0.95), 1),
            LlamaSampler::min_p(0.05, 1),
            LlamaSampler::temp(s.temperature),
            LlamaSampler::dist(s.seed.unwrap_or(config.seed)),
        ]);
    }
    Ok(LlamaSampler::chain_simple(chain))
}

fn backend_err(what: &str, e: impl std::fmt::Display) -> LlmError {
    LlmError::Backend(format!("{what}: {e}"))
}

/// Token bytes to the text that may be sent.
struct TextOut {
    /// A token may end in the middle of a UTF-8 character: the decoder keeps the
    /// incomplete bytes until the next token completes them.
    utf8: encoding_rs::Decoder,
    stops: StopScan,
}

impl TextOut {
    /// The text of the next token's bytes that may leave now, and whether a stop string
    /// was reached.
    fn next(&mut self, bytes: &[u8]) -> (String, bool) {
        let mut text = String::with_capacity(
            self.utf8
                .max_utf8_buffer_length(bytes.len())
                .unwrap_or(bytes.len() + 4),
        );
        let _ = self.utf8.decode_to_string(bytes, &mut text, false);
        self.stops.push(&text)
    }
}

/// Keeps the context's first tokens that `prompt` starts with (all but its last token,
/// which must be evaluated for its logits) and drops the rest; returns how many are kept.
fn reuse_prefix(
    ctx: &mut LlamaContext<'_>,
    cached: &mut Vec<LlamaToken>,
    prompt: &[LlamaToken],
    enabled: bool,
) -> usize {
    let shared = if enabled {
        cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len().saturating_sub(1))
    } else {
        0
    };
    // Models whose memory cannot drop a tail (recurrent ones) answer false: start afresh.
    let kept = if shared > 0
        && matches!(
            ctx.clear_kv_cache_seq(Some(0), Some(shared as u32), None),
            Ok(true)
        ) {
        shared
    } else {
        ctx.clear_kv_cache();
        0
    };
    cached.truncate(kept);
    kept
}

/// Runs one job. Returning early without an error means the receiver went away.
fn generate(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    config: &WorkerConfig,
    job: &Job,
    cached: &mut Vec<LlamaToken>,
    reused: &AtomicU64,
) -> Result<(), LlmError> {
    if job.events.is_closed() {
        return Ok(());
    }
    let vocab = model.vocab();
    let n_ctx = ctx.n_ctx() as usize;
    let prompt_len = job.tokens.len();
    if prompt_len == 0 || prompt_len >= n_ctx {
        return Err(LlmError::Backend(format!(
            "prompt of {prompt_len} tokens does not fit the context of {n_ctx}"
        )));
    }

    // Prompt evaluation of what the context does not hold yet, one batch at a time; logits
    // only for the last prompt token.
    let mut pos = reuse_prefix(ctx, cached, &job.tokens, config.prompt_cache);
    reused.fetch_add(pos as u64, Ordering::Relaxed);
    for chunk in job.tokens[pos..].chunks(config.n_batch as usize) {
        if job.events.is_closed() {
            return Ok(());
        }
        batch.clear();
        for token in chunk {
            batch
                .add(*token, pos as i32, &[0], pos == prompt_len - 1)
                .map_err(|e| backend_err("batch", e))?;
            pos += 1;
        }
        ctx.decode(batch)
            .map_err(|e| backend_err("prompt evaluation", e))?;
        cached.extend_from_slice(chunk);
    }

    let mut sampler = sampler(model, &job.sampling, config)?;
    let mut text = TextOut {
        utf8: encoding_rs::UTF_8.new_decoder(),
        stops: StopScan::new(job.sampling.stop.clone()),
    };
    let mut logits_index = batch.n_tokens() - 1;
    let mut completion = 0u32;
    let finish = loop {
        if completion >= job.max_tokens || pos >= n_ctx {
            break FinishReason::Length;
        }
        let token = sampler.sample(ctx, logits_index);
        if vocab.is_eog(token) {
            break FinishReason::Stop;
        }
        completion += 1;
        let (piece, stopped) = text.next(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() && job.events.blocking_send(Ok(TokenEvent::Token(piece))).is_err() {
            return Ok(()); // the listener is gone: stop decoding now
        }
        if stopped {
            break FinishReason::Stop;
        }

        batch.clear();
        batch
            .add(token, pos as i32, &[0], true)
            .map_err(|e| backend_err("batch", e))?;
        pos += 1;
        ctx.decode(batch).map_err(|e| backend_err("decode", e))?;
        cached.push(token);
        logits_index = 0;
    };
    let rest = text.stops.rest();
    if !rest.is_empty() && job.events.blocking_send(Ok(TokenEvent::Token(rest))).is_err() {
        return Ok(());
    }
    let _ = job.events.blocking_send(Ok(TokenEvent::Done {
        prompt_tokens: prompt_len as u32,
        completion_tokens: completion,
        finish,
    }));
    Ok(())
}
