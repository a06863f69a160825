//! The thread that owns the llama.cpp context. A context is not `Send`, so one thread
//! owns it; tokens leave over each job's own channel.
//!
//! Continuous batching: up to `parallel` answers run at once, each in its own sequence of
//! the context (its own part of the KV cache). Every step decodes one llama.cpp batch
//! holding the next token of every answer under way and, within what is left of the
//! batch, a piece of the prompt of each answer that has just joined (a small piece while
//! others are decoding, so a long prompt does not stall them). A job joins at the next
//! step; when its listener goes away (Stop, closed tab, dropped stream) its sequence is
//! freed at once. A listener that reads slowly holds back its own answer only.
//!
//! The prompt cache: each sequence keeps what its last job evaluated (the prompt and the
//! tokens generated); a new job goes to the free sequence whose tokens share the longest
//! prefix with its prompt and evaluates only what follows, so a follow-up in a
//! conversation does not evaluate the whole history again. The same tokens evaluated in
//! batches of other sizes round differently in llama.cpp's kernels, so a near tie between
//! two tokens can go the other way with the cache or beside other answers than alone (as
//! llama.cpp's own server documents for `cache_prompt` and parallel slots).

use std::{
    collections::VecDeque,
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use llama_cpp_2::{
    context::{LlamaContext, params::LlamaContextParams},
    llama_batch::LlamaBatch,
    model::LlamaModel,
    sampling::LlamaSampler,
    token::{LlamaToken, logit_bias::LlamaLogitBias},
};
use tokio::sync::{
    OwnedSemaphorePermit,
    mpsc::{self, error::TryRecvError, error::TrySendError},
};

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
    /// Tokens each answer may hold (prompt and answer).
    pub n_ctx: u32,
    pub n_batch: u32,
    pub threads: i32,
    pub seed: u32,
    pub repeat_penalty: f32,
    pub prompt_cache: bool,
    /// Answers decoded together.
    pub parallel: u32,
}

type Event = Result<TokenEvent, LlmError>;

/// One sequence of the context.
struct Slot {
    seq: i32,
    /// The tokens whose keys and values this sequence holds, at positions 0...
    cached: Vec<LlamaToken>,
    answer: Option<Answer>,
}

/// An answer under way in a slot.
struct Answer {
    job: Job,
    sampler: LlamaSampler,
    text: TextOut,
    /// The next prompt token to evaluate.
    next: usize,
    /// The sampled token to evaluate at the next step.
    last: Option<LlamaToken>,
    completion: u32,
    /// Where this answer's logits are in the batch just decoded.
    logits: Option<i32>,
    /// Events its channel had no room for yet.
    pending: VecDeque<Event>,
    /// The answer has ended; the slot is freed once `pending` has left.
    ended: bool,
}

impl Answer {
    fn send(&mut self, event: Event) {
        self.pending.push_back(event);
    }

    fn end(&mut self, finish: FinishReason) {
        let rest = self.text.stops.rest();
        if !rest.is_empty() {
            self.send(Ok(TokenEvent::Token(rest)));
        }
        self.send(Ok(TokenEvent::Done {
            prompt_tokens: self.job.tokens.len() as u32,
            completion_tokens: self.completion,
            finish,
        }));
        self.ended = true;
    }

    fn fail(&mut self, error: LlmError) {
        self.send(Err(error));
        self.ended = true;
    }

    /// Hands pending events to the channel as far as it has room; false once the
    /// listener is gone.
    fn flush(&mut self) -> bool {
        while let Some(event) = self.pending.pop_front() {
            match self.job.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        !self.job.events.is_closed()
    }

    fn decoding(&self) -> bool {
        !self.ended && self.pending.is_empty() && self.last.is_some()
    }

    fn prefilling(&self) -> bool {
        !self.ended && self.next < self.job.tokens.len()
    }
}

/// Creates the context, reports readiness, then serves jobs until every sender is gone.
pub(super) fn run(
    model: Arc<LlamaModel>,
    config: WorkerConfig,
    mut jobs: mpsc::Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<(), LlmError>>,
    reused: Arc<AtomicU64>,
) {
    let parallel = config.parallel.max(1);
    // Every sequence gets the whole window (llama.cpp splits n_ctx between them).
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx * parallel))
        .with_n_seq_max(parallel)
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
    let mut slots: Vec<Slot> = (0..parallel as i32)
        .map(|seq| Slot {
            seq,
            cached: Vec::new(),
            answer: None,
        })
        .collect();
    let mut open = true;
    // Held while answers are under way: background embedding waits (crate::server::cpu).
    let mut foreground = None;
    let under_way = |slots: &[Slot]| slots.iter().any(|s| s.answer.is_some());
    loop {
        // New jobs join while there is a free slot; with nothing under way, wait for one.
        while open && slots.iter().any(|s| s.answer.is_none()) {
            let job = if slots.iter().all(|s| s.answer.is_none()) {
                jobs.blocking_recv()
            } else {
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            match job {
                Some(job) => start(&model, &mut ctx, &mut slots, &config, job, &reused),
                None => open = false,
            }
        }
        if !open && slots.iter().all(|s| s.answer.is_none()) {
            break;
        }
        if foreground.is_none() && under_way(&slots) {
            foreground = Some(crate::server::cpu::SHARE.foreground());
        }
        // Events out; answers whose listener left or that have ended free their slot.
        for slot in &mut slots {
            if let Some(answer) = &mut slot.answer {
                let listening = answer.flush();
                if !listening || (answer.ended && answer.pending.is_empty()) {
                    slot.answer = None;
                }
            }
        }
        if !under_way(&slots) {
            foreground = None;
        }
        if !step(&model, &mut ctx, &mut batch, &mut slots, &config) {
            // Nothing to decode: answers are waiting for slow listeners.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    tracing::debug!("local model worker stopped");
}

/// Gives `job` the free slot whose tokens share the longest prefix with its prompt, keeps
/// that prefix (all but the prompt's last token, which must be evaluated for its logits)
/// and drops the rest of the slot's tokens.
fn start(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    slots: &mut [Slot],
    config: &WorkerConfig,
    job: Job,
    reused: &AtomicU64,
) {
    // A job that cannot run is answered at once and takes no slot (nor its cached tokens).
    let prompt_len = job.tokens.len();
    let checked = if prompt_len == 0 || prompt_len >= config.n_ctx as usize {
        Err(LlmError::Backend(format!(
            "prompt of {prompt_len} tokens does not fit the context of {}",
            config.n_ctx
        )))
    } else {
        sampler(model, &job.sampling, config)
    };
    let sampler = match checked {
        Ok(sampler) => sampler,
        Err(e) => {
            // The job's own channel is new and empty: the error always fits.
            let _ = job.events.try_send(Err(e));
            return;
        }
    };
    let shared = |slot: &Slot| {
        slot.cached
            .iter()
            .zip(&job.tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(job.tokens.len().saturating_sub(1))
    };
    let Some(slot) = slots
        .iter_mut()
        .filter(|s| s.answer.is_none())
        .max_by_key(|s| if config.prompt_cache { shared(s) } else { 0 })
    else {
        return;
    };
    let keep = if config.prompt_cache { shared(slot) } else { 0 };
    // Models whose memory cannot drop a tail (recurrent ones) answer false: start afresh.
    let kept = if keep > 0
        && matches!(
            ctx.clear_kv_cache_seq(Some(slot.seq as u32), Some(keep as u32), None),
            Ok(true)
        ) {
        keep
    } else {
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        0
    };
    slot.cached.truncate(kept);
    reused.fetch_add(kept as u64, Ordering::Relaxed);
    slot.answer = Some(Answer {
        text: TextOut {
            utf8: encoding_rs::UTF_8.new_decoder(),
            stops: StopScan::new(job.sampling.stop.clone()),
        },
        job,
        sampler,
        next: kept,
        last: None,
        completion: 0,
        logits: None,
        pending: VecDeque::new(),
        ended: false,
    });
}

/// One llama.cpp batch: the next token of every answer decoding, then prompt pieces.
/// False when there was nothing to decode.
fn step(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    slots: &mut [Slot],
    config: &WorkerConfig,
) -> bool {
    batch.clear();
    // What each slot put in the batch: (slot index, tokens added).
    let mut added: Vec<(usize, Vec<LlamaToken>)> = Vec::new();
    let mut add =
        |batch: &mut LlamaBatch, slot: &mut Slot, index: usize, tokens: &[LlamaToken], last_logits: bool| {
            let answer = slot.answer.as_mut().expect("an answer");
            // A slot is in a batch once: decoding or taking a prompt piece.
            let start = slot.cached.len();
            for (k, token) in tokens.iter().enumerate() {
                let logits = last_logits && k + 1 == tokens.len();
                if logits {
                    answer.logits = Some(batch.n_tokens());
                }
                batch
                    .add(*token, (start + k) as i32, &[slot.seq], logits)
                    .map_err(|e| backend_err("batch", e))?;
            }
            added.push((index, tokens.to_vec()));
            Ok::<(), LlmError>(())
        };
    let mut outcome = Ok(());
    for (index, slot) in slots.iter_mut().enumerate() {
        if let Some(token) = slot.answer.as_ref().filter(|a| a.decoding()).and_then(|a| a.last) {
            outcome = outcome.and_then(|()| add(batch, slot, index, &[token], true));
        }
    }
    // Prompt pieces: the whole batch when nothing decodes, a quarter of it otherwise.
    let decoding = batch.n_tokens() as usize;
    let mut room = if decoding == 0 {
        config.n_batch as usize
    } else {
        (config.n_batch as usize / 4)
            .max(1)
            .min(config.n_batch as usize - decoding)
    };
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(answer) = slot.answer.as_ref().filter(|a| a.prefilling()) else {
            continue;
        };
        if room == 0 {
            break;
        }
        let piece = answer.job.tokens[answer.next..]
            .iter()
            .take(room)
            .copied()
            .collect::<Vec<_>>();
        let ends_prompt = answer.next + piece.len() == answer.job.tokens.len();
        room -= piece.len();
        outcome = outcome.and_then(|()| add(batch, slot, index, &piece, ends_prompt));
    }
    if batch.n_tokens() == 0 {
        return false;
    }
    let outcome = outcome.and_then(|()| ctx.decode(batch).map_err(|e| backend_err("decode", e)));
    if let Err(e) = outcome {
        // What a failed evaluation left in these sequences is not known.
        tracing::warn!(error = %e, "local generation failed");
        for slot in slots.iter_mut() {
            if let Some(answer) = &mut slot.answer {
                answer.logits = None;
            }
        }
        for (index, _) in &added {
            let slot = &mut slots[*index];
            let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cached.clear();
            if let Some(answer) = &mut slot.answer
                && !answer.ended
            {
                answer.fail(e.clone());
            }
        }
        return true;
    }
    for (index, tokens) in added {
        let slot = &mut slots[index];
        slot.cached.extend_from_slice(&tokens);
        if let Some(answer) = &mut slot.answer
            && answer.last.is_none()
        {
            answer.next += tokens.len();
        }
    }
    let vocab = model.vocab();
    for slot in slots.iter_mut() {
        let position = slot.cached.len();
        let Some(answer) = &mut slot.answer else { continue };
        let Some(index) = answer.logits.take() else {
            continue;
        };
        let token = answer.sampler.sample(ctx, index);
        if vocab.is_eog(token) {
            answer.end(FinishReason::Stop);
            continue;
        }
        answer.completion += 1;
        let (piece, stopped) = answer.text.next(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() {
            answer.send(Ok(TokenEvent::Token(piece)));
        }
        if stopped {
            answer.end(FinishReason::Stop);
        } else if answer.completion >= answer.job.max_tokens || position + 1 >= config.n_ctx as usize {
            answer.end(FinishReason::Length);
        } else {
            answer.last = Some(token);
        }
    }
    true
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
