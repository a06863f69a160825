//! all-MiniLM-L6-v2 (or another sentence-transformers BERT directory) in-process on
//! llama.cpp's BERT: the model's own WordPiece tokenizer (the token ids
//! sentence-transformers uses), the weights as a GGUF made once from the safetensors
//! ([`super::gguf`]), many inputs encoded in one llama.cpp batch (one sequence each, no
//! padding), mean pooling in llama.cpp's graph and L2 normalisation here.
//!
//! One thread owns the llama.cpp context and takes jobs over a channel; the smallest
//! waiting job goes first, so a question's embedding is not queued behind a document's.

use std::{
    num::NonZeroU32,
    path::Path,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use llama_cpp_2::{
    context::{LlamaContext, params::LlamaContextParams, params::LlamaPoolingType},
    llama_batch::LlamaBatch,
    model::{LlamaModel, params::LlamaModelParams},
    token::LlamaToken,
};
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use super::{EmbedError, Embedded, Embedder, gguf};

/// Directory name of the default model in the model directory.
pub const DEFAULT_EMBEDDING_MODEL_DIR: &str = "all-MiniLM-L6-v2";
/// sentence-transformers' `max_seq_length` for this model: longer text was never trained.
const MAX_TOKENS: usize = 256;
/// Tokens per llama.cpp batch (every input is one sequence in it). llama.cpp attends over
/// the whole batch with the other sequences masked out, so that part grows with its
/// square; 256–2,048 measured the same on 200-token passages (bench/README.md). The
/// smallest: a chat that starts while a document's batch runs shares the cores with it
/// until that batch ends (see `serve`).
const BATCH_TOKENS: usize = MAX_TOKENS;
/// Sequences per batch at most (short queries).
const BATCH_SEQUENCES: usize = 64;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, String>>;

/// While the chat model has answers under way, background embedding waits in slices this
/// long (serving any question that arrives meanwhile)…
const YIELD_SLICE: Duration = Duration::from_millis(20);
/// …and runs one batch at least this often, so documents still move under steady chat
/// (about half their idle speed; 500 ms gave chat a little more and left ingestion at a
/// fifth, which a server chatting all day would feel).
const MAX_YIELD: Duration = Duration::from_millis(150);

struct Job {
    rows: Vec<Vec<u32>>,
    /// Reading documents, which may wait for chat ([`crate::server::cpu`]).
    background: bool,
    /// Vectors of the rows before `vectors.len()`.
    vectors: Vec<Vec<f32>>,
    reply: Reply,
}

impl Job {
    fn remaining_tokens(&self) -> usize {
        self.rows[self.vectors.len()..].iter().map(Vec::len).sum()
    }
}

pub struct LocalEmbedder {
    name: String,
    tokenizer: Arc<Tokenizer>,
    dimensions: usize,
    jobs: mpsc::Sender<Job>,
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Unavailable(format!("{}: {e}", path.display()))
}

impl LocalEmbedder {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json`, `model.safetensors`) with
    /// its matrices in F16 on every core: as close to the F32 vectors as the test demands
    /// (cosine ≥ 0.999) and faster with AVX-512 (bench/README.md). The GGUF is written
    /// beside the weights the first time, or in `spare` (the data directory) when `dir`
    /// cannot be written. Blocking.
    pub fn load(dir: &Path, spare: &Path) -> Result<Self, EmbedError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::load_with(dir, spare, gguf::Precision::F16, threads)
    }

    /// [`Self::load`] at a chosen precision and thread count (the benchmark compares them).
    pub fn load_with(
        dir: &Path,
        spare: &Path,
        precision: gguf::Precision,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        if !dir.join("model.safetensors").is_file() {
            return Err(EmbedError::Unavailable(format!(
                "no embedding model in {}: run `make models` to fetch the default one, or set \
                 STOA_EMBEDDING__PATH to a sentence-transformers BERT directory",
                dir.display()
            )));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| unavailable(&tokenizer_path, e))?;
        // The file pads and truncates to 128 tokens; lengths are checked here instead, so
        // nothing is cut silently, and llama.cpp needs no padding.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| unavailable(&tokenizer_path, e))?;
        let path = gguf::ensure(dir, precision, spare).map_err(|e| unavailable(dir, e))?;
        let (jobs, receiver) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("stoa-embedder".into())
            .spawn(move || {
                // Below the chat model on busy cores (on Linux the nice value is the
                // thread's, and llama.cpp's threads, started from this one, inherit it).
                let _ = rustix::process::nice(5);
                let backend = crate::server::llm::local::backend();
                let model = match LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default()) {
                    Ok(model) => model,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{}: {e}", path.display())));
                        return;
                    }
                };
                let threads = threads.max(1) as i32;
                let params = LlamaContextParams::default()
                    .with_n_ctx(NonZeroU32::new(BATCH_TOKENS as u32))
                    .with_n_batch(BATCH_TOKENS as u32)
                    .with_n_ubatch(BATCH_TOKENS as u32)
                    .with_n_seq_max(BATCH_SEQUENCES as u32)
                    // BERT keeps no KV cache; unified, llama.cpp does not split (and round)
                    // the context between the sequences.
                    .with_kv_unified(true)
                    .with_embeddings(true)
                    .with_pooling_type(LlamaPoolingType::Mean)
                    .with_n_threads(threads)
                    .with_n_threads_batch(threads);
                match model.new_context(backend, params) {
                    Ok(mut ctx) => {
                        let _ = ready_tx.send(Ok(model.n_embd() as usize));
                        serve(&mut ctx, &receiver);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        let dimensions = ready_rx
            .recv()
            .map_err(|e| EmbedError::Unavailable(e.to_string()))?
            .map_err(EmbedError::Unavailable)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL_DIR.into());
        tracing::info!(model = %name, dimensions, ?precision, "embedding model loaded (llama.cpp)");
        Ok(Self {
            name,
            tokenizer: Arc::new(tokenizer),
            dimensions,
            jobs,
        })
    }

    /// Token ids of each text, checked against the limits.
    fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, EmbedError> {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                if text.trim().is_empty() {
                    return Err(EmbedError::Empty { index });
                }
                let ids = self
                    .tokenizer
                    .encode_fast(text.as_str(), true)
                    .map_err(|e| EmbedError::Backend(e.to_string()))?
                    .get_ids()
                    .to_vec();
                if ids.len() > MAX_TOKENS {
                    return Err(EmbedError::TooLong {
                        index,
                        tokens: ids.len(),
                        limit: MAX_TOKENS,
                    });
                }
                Ok(ids)
            })
            .collect()
    }
}

/// Serves jobs until every sender is gone, one llama.cpp batch at a time: questions before
/// documents, then the smallest job first (equal ones in order of arrival); a document's
/// batch waits while the chat model answers ([`crate::server::cpu`]); a job whose caller
/// went away (a cancelled document) is dropped.
fn serve(ctx: &mut LlamaContext<'_>, receiver: &mpsc::Receiver<Job>) {
    let mut batch = LlamaBatch::new(BATCH_TOKENS, 1);
    let mut waiting: Vec<Job> = Vec::new();
    // Since when background work has been waiting for chat.
    let mut held_back: Option<Instant> = None;
    loop {
        if waiting.is_empty() {
            match receiver.recv() {
                Ok(job) => waiting.push(job),
                Err(_) => return,
            }
        }
        waiting.extend(receiver.try_iter());
        waiting.retain(|job| !job.reply.is_closed());
        let Some(next) =
            (0..waiting.len()).min_by_key(|&i| (waiting[i].background, waiting[i].remaining_tokens()))
        else {
            continue;
        };
        if waiting[next].background {
            let idle = crate::server::cpu::SHARE.wait_while_busy(YIELD_SLICE);
            if !idle && held_back.get_or_insert_with(Instant::now).elapsed() < MAX_YIELD {
                continue;
            }
            held_back = None;
        }
        let job = &mut waiting[next];
        match encode_batch(ctx, &mut batch, job) {
            Ok(false) => {}
            Ok(true) => {
                let job = waiting.remove(next);
                let _ = job.reply.send(Ok(job.vectors));
            }
            Err(e) => {
                let job = waiting.remove(next);
                let _ = job.reply.send(Err(e));
            }
        }
    }
}

/// The next llama.cpp batch of `job`'s rows (as many as fit); whether the job is done.
fn encode_batch(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch, job: &mut Job) -> Result<bool, String> {
    let rows = &job.rows;
    let start = job.vectors.len();
    let mut end = start;
    let mut tokens = 0;
    while end < rows.len() && end - start < BATCH_SEQUENCES && tokens + rows[end].len() <= BATCH_TOKENS {
        tokens += rows[end].len();
        end += 1;
    }
    batch.clear();
    for (seq, row) in rows[start..end].iter().enumerate() {
        for (pos, &id) in row.iter().enumerate() {
            batch
                .add(LlamaToken::new(id as i32), pos as i32, &[seq as i32], true)
                .map_err(|e| e.to_string())?;
        }
    }
    ctx.encode(batch).map_err(|e| e.to_string())?;
    for seq in 0..(end - start) as i32 {
        let v = ctx.embeddings_seq_ith(seq).map_err(|e| e.to_string())?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        job.vectors.push(v.iter().map(|x| x / norm).collect());
    }
    Ok(job.vectors.len() == rows.len())
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    fn count_tokens(&self, text: &str) -> usize {
        // `encode_fast` leaves out the character offsets, which counting does not need.
        self.tokenizer
            .encode_fast(text, true)
            .map(|e| e.get_ids().len())
            .unwrap_or(usize::MAX)
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        self.run(texts, false).await
    }

    async fn embed_background(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        self.run(texts, true).await
    }
}

impl LocalEmbedder {
    async fn run(&self, texts: Vec<String>, background: bool) -> Result<Embedded, EmbedError> {
        let rows = self.tokenize(&texts)?;
        let tokens = rows.iter().map(Vec::len).sum::<usize>() as u32;
        let (reply, answer) = oneshot::channel();
        let stopped = || EmbedError::Unavailable("the embedder has stopped".into());
        let job = Job {
            vectors: Vec::with_capacity(rows.len()),
            rows,
            background,
            reply,
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        let vectors = answer
            .await
            .map_err(|_| stopped())?
            .map_err(EmbedError::Backend)?;
        Ok(Embedded { vectors, tokens })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors equal sentence-transformers' for the same texts (reference made once by
    /// `fixtures/make-minilm-reference.py`), and a batch gives each text the vector it gets
    /// alone.
    #[tokio::test]
    async fn vectors_match_sentence_transformers() {
        #[derive(serde::Deserialize)]
        struct Reference {
            texts: Vec<String>,
            vectors: Vec<Vec<f32>>,
        }
        let reference: Reference =
            serde_json::from_str(include_str!("../tests/fixtures/minilm-reference.json")).unwrap();
        let settings = crate::server::config::Settings::load().unwrap_or_default();
        let spare = tempfile::tempdir().unwrap();
        let embedder = LocalEmbedder::load(&settings.embedding_model_dir(), spare.path()).unwrap();
        let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let together = embedder.embed(reference.texts.clone()).await.unwrap();
        assert_eq!(together.vectors.len(), reference.texts.len());
        for (i, (text, expected)) in reference.texts.iter().zip(&reference.vectors).enumerate() {
            let alone = embedder
                .embed(vec![text.clone()])
                .await
                .unwrap()
                .vectors
                .remove(0);
            assert_eq!(alone.len(), 384);
            let (c_alone, c_together) = (cosine(&alone, expected), cosine(&together.vectors[i], expected));
            assert!(c_alone >= 0.999, "text {i}: cosine {c_alone} alone");
            assert!(c_together >= 0.999, "text {i}: cosine {c_together} in a batch");
            let norm = alone.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
        }
        // Limits are checked before any work.
        assert_eq!(
            embedder.embed(vec!["ok".into(), "  ".into()]).await,
            Err(EmbedError::Empty { index: 1 })
        );
        let long = "word ".repeat(400);
        assert!(matches!(
            embedder.embed(vec![long]).await,
            Err(EmbedError::TooLong {
                index: 0,
                limit: 256,
                ..
            })
        ));
    }

    /// While the chat model answers, a document's embedding lets a question that came after
    /// it go first (the order is decided batch by batch), and still finishes: waiting for
    /// chat has a bound. Its vectors are those it gets on an idle machine.
    #[tokio::test]
    async fn documents_wait_for_chat_and_questions_do_not_wait_for_documents() {
        let settings = crate::server::config::Settings::load().unwrap_or_default();
        let spare = tempfile::tempdir().unwrap();
        let embedder = Arc::new(LocalEmbedder::load(&settings.embedding_model_dir(), spare.path()).unwrap());
        // ~90 tokens each: five passages per batch, so the document takes several batches.
        let passages: Vec<String> = (0..24)
            .map(|i| {
                format!(
                    "Passage {i}: {}",
                    "the ferry to the islands leaves the harbour when the tide allows; ".repeat(5)
                )
            })
            .collect();
        let idle = embedder.embed_background(passages.clone()).await.unwrap();

        let chat = crate::server::cpu::SHARE.foreground();
        let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
        let document = tokio::spawn({
            let (embedder, finished) = (embedder.clone(), finished.clone());
            async move {
                let embedded = embedder.embed_background(passages).await.unwrap();
                finished.lock().unwrap().push("document");
                embedded
            }
        });
        tokio::task::yield_now().await;
        let question = embedder
            .embed(vec!["When does the last ferry leave?".into()])
            .await
            .unwrap();
        finished.lock().unwrap().push("question");
        assert_eq!(question.vectors.len(), 1);
        let embedded = document.await.unwrap();
        drop(chat);
        assert_eq!(*finished.lock().unwrap(), ["question", "document"]);
        assert_eq!(embedded.vectors, idle.vectors);
    }

    /// A model directory where the GGUF cannot be written (its name taken by a directory,
    /// which stops root too): it goes to the spare directory, once. Damaged weights give an
    /// error and leave no partial file.
    #[test]
    fn gguf_goes_to_the_spare_directory_and_damaged_weights_fail_cleanly() {
        let settings = crate::server::config::Settings::load().unwrap_or_default();
        let source = settings.embedding_model_dir();
        let copy = tempfile::tempdir().unwrap();
        let dir = copy.path().join("minilm");
        std::fs::create_dir(&dir).unwrap();
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::copy(source.join(f), dir.join(f)).unwrap();
        }
        std::fs::create_dir(dir.join("stoa-embedding-v1.f32.gguf")).unwrap();
        let spare = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.join("stoa-embedding-v1.f16.gguf")).unwrap();
        let made = gguf::ensure(&dir, gguf::Precision::F32, spare.path()).unwrap();
        assert!(made.starts_with(spare.path()), "{}", made.display());
        assert_eq!(std::fs::read(&made).unwrap()[..4], *b"GGUF");
        assert_eq!(
            gguf::ensure(&dir, gguf::Precision::F32, spare.path()).unwrap(),
            made
        );

        let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
        let damaged = copy.path().join("damaged");
        std::fs::create_dir(&damaged).unwrap();
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(source.join(f), damaged.join(f)).unwrap();
        }
        for bytes in [
            &weights[..weights.len() / 2],
            &b"\xff\xff\xff\xff\xff\xff\xff\x7f{"[..],
            &[][..],
        ] {
            std::fs::write(damaged.join("model.safetensors"), bytes).unwrap();
            let error = gguf::ensure(&damaged, gguf::Precision::F32, spare.path()).unwrap_err();
            assert!(error.contains("model.safetensors"), "{error}");
            let left: Vec<_> = std::fs::read_dir(&damaged)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert_eq!(left.len(), 3, "no GGUF or partial file left: {left:?}");
            assert_eq!(
                std::fs::read_dir(spare.path()).unwrap().count(),
                1,
                "only the good model's GGUF"
            );
        }
    }
}
