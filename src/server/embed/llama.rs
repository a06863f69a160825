//! all-MiniLM-L6-v2 on llama.cpp's BERT: the model's own WordPiece tokenizer (the same
//! token ids as sentence-transformers), the weights as a GGUF made from the safetensors
//! ([`super::gguf`]), many inputs encoded in one llama.cpp batch (one sequence each, no
//! padding), mean pooling in llama.cpp's graph and L2 normalisation here.

use std::{num::NonZeroU32, path::Path, sync::Arc};

use async_trait::async_trait;
use llama_cpp_2::{
    context::params::{LlamaContextParams, LlamaPoolingType},
    llama_batch::LlamaBatch,
    model::{LlamaModel, params::LlamaModelParams},
    token::LlamaToken,
};
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use super::{EmbedError, Embedded, Embedder, gguf};

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Tokens per llama.cpp batch (every input is one sequence in it). llama.cpp attends
/// over the whole batch (other sequences masked out), so that work grows with its square.
fn batch_tokens() -> usize {
    std::env::var("STOA_EMBED_BATCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
}
/// Sequences per batch at most.
const BATCH_SEQUENCES: usize = 64;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, String>>;

pub struct LlamaEmbedder {
    name: String,
    tokenizer: Arc<Tokenizer>,
    dimensions: usize,
    jobs: std::sync::mpsc::Sender<(Vec<Vec<u32>>, Reply)>,
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Unavailable(format!("{}: {e}", path.display()))
}

impl LlamaEmbedder {
    /// Loads the tokenizer, makes the GGUF if needed and starts the thread that owns the
    /// llama.cpp context. Blocking.
    pub fn load(dir: &Path, precision: gguf::Precision, threads: usize) -> Result<Self, EmbedError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| unavailable(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| unavailable(&tokenizer_path, e))?;
        let path = gguf::ensure(dir, precision).map_err(|e| unavailable(dir, e))?;
        let (jobs, receiver) = std::sync::mpsc::channel::<(Vec<Vec<u32>>, Reply)>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("embedder".into())
            .spawn(move || {
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
                    .with_n_ctx(NonZeroU32::new(batch_tokens() as u32))
                    .with_n_batch(batch_tokens() as u32)
                    .with_n_ubatch(batch_tokens() as u32)
                    .with_n_seq_max(BATCH_SEQUENCES as u32)
                    .with_embeddings(true)
                    .with_pooling_type(LlamaPoolingType::Mean)
                    .with_n_threads(threads)
                    .with_n_threads_batch(threads);
                let mut ctx = match model.new_context(backend, params) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(model.n_embd() as usize));
                let mut batch = LlamaBatch::new(batch_tokens(), 1);
                while let Ok((rows, reply)) = receiver.recv() {
                    let mut vectors = Vec::with_capacity(rows.len());
                    let mut outcome = Ok(());
                    let mut start = 0;
                    while start < rows.len() && outcome.is_ok() {
                        // As many inputs as fit in one batch.
                        let mut end = start;
                        let mut tokens = 0;
                        while end < rows.len()
                            && end - start < BATCH_SEQUENCES
                            && tokens + rows[end].len() <= batch_tokens()
                        {
                            tokens += rows[end].len();
                            end += 1;
                        }
                        batch.clear();
                        outcome = (start..end)
                            .try_for_each(|i| {
                                let seq = (i - start) as i32;
                                rows[i].iter().enumerate().try_for_each(|(pos, &id)| {
                                    batch.add(LlamaToken::new(id as i32), pos as i32, &[seq], true)
                                })
                            })
                            .map_err(|e| e.to_string())
                            .and_then(|()| ctx.encode(&mut batch).map_err(|e| e.to_string()))
                            .and_then(|()| {
                                (0..(end - start) as i32).try_for_each(|seq| {
                                    let v = ctx.embeddings_seq_ith(seq).map_err(|e| e.to_string())?;
                                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                                    vectors.push(v.iter().map(|x| x / norm).collect());
                                    Ok(())
                                })
                            });
                        start = end;
                    }
                    let _ = reply.send(outcome.map(|()| vectors));
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
            .unwrap_or_else(|| "embedding".into());
        Ok(Self {
            name,
            tokenizer: Arc::new(tokenizer),
            dimensions,
            jobs,
        })
    }

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

#[async_trait]
impl Embedder for LlamaEmbedder {
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
        self.tokenizer
            .encode_fast(text, true)
            .map(|e| e.get_ids().len())
            .unwrap_or(usize::MAX)
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        let rows = self.tokenize(&texts)?;
        let tokens = rows.iter().map(Vec::len).sum::<usize>() as u32;
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((rows, tx))
            .map_err(|_| EmbedError::Unavailable("the embedder has stopped".into()))?;
        let vectors = rx
            .await
            .map_err(|_| EmbedError::Unavailable("the embedder has stopped".into()))?
            .map_err(EmbedError::Backend)?;
        Ok(Embedded { vectors, tokens })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::embed::local::LocalEmbedder;

    /// Prints llama.cpp's speed at `STOA_EMBED_BATCH_TOKENS` (not an assertion).
    #[tokio::test]
    #[ignore = "an experiment: cargo test -- --ignored llama_batch"]
    async fn llama_batch_sizes() {
        let dir = std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/stoa/models/all-MiniLM-L6-v2");
        let words: Vec<String> = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for precision in [gguf::Precision::F32, gguf::Precision::F16] {
            let llama = LlamaEmbedder::load(&dir, precision, 2).unwrap();
            let passages: Vec<String> = (0..96)
                .map(|i| (0..150).map(|k| words[(i * 37 + k) % words.len()].as_str()).collect::<Vec<_>>().join(" "))
                .map(|t| llama.truncate(&t))
                .collect();
            let sentences: Vec<String> = (0..512)
                .map(|i| (0..18).map(|k| words[(i * 13 + k) % words.len()].as_str()).collect::<Vec<_>>().join(" "))
                .collect();
            for (label, texts) in [("passages", &passages), ("sentences", &sentences)] {
                llama.embed(texts[..16].to_vec()).await.unwrap();
                let t = std::time::Instant::now();
                llama.embed(texts.clone()).await.unwrap();
                eprintln!(
                    "batch {} {precision:?} {label}: {:.1}/s",
                    batch_tokens(),
                    texts.len() as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
    }

    /// Not a timing assertion: prints both embedders' times and checks the vectors agree.
    #[tokio::test]
    #[ignore = "an experiment: cargo test -- --ignored llama_matches"]
    async fn llama_matches_candle() {
        let dir = std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/stoa/models/all-MiniLM-L6-v2");
        let candle = LocalEmbedder::load(&dir).unwrap();
        let words: Vec<String> = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let passages: Vec<String> = (0..128)
            .map(|i| {
                let n = 150;
                (0..n).map(|k| words[(i * 37 + k) % words.len()].as_str()).collect::<Vec<_>>().join(" ")
            })
            .map(|t| candle.truncate(&t))
            .collect();
        let sentences: Vec<String> = (0..512)
            .map(|i| (0..18).map(|k| words[(i * 13 + k) % words.len()].as_str()).collect::<Vec<_>>().join(" "))
            .collect();
        for precision in [gguf::Precision::F32, gguf::Precision::F16] {
            let llama = LlamaEmbedder::load(&dir, precision, 2).unwrap();
            for (label, texts) in [("passages", &passages), ("sentences", &sentences)] {
                let t = std::time::Instant::now();
                let a = candle.embed(texts.clone()).await.unwrap().vectors;
                let candle_s = t.elapsed().as_secs_f64();
                let t = std::time::Instant::now();
                let b = llama.embed(texts.clone()).await.unwrap().vectors;
                let llama_s = t.elapsed().as_secs_f64();
                let min_cos = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
                    .fold(1.0f32, f32::min);
                eprintln!(
                    "{precision:?} {label}: candle {:.1}/s, llama {:.1}/s, min cosine {min_cos:.5}",
                    texts.len() as f64 / candle_s,
                    texts.len() as f64 / llama_s
                );
                assert!(min_cos > 0.99, "{min_cos}");
            }
        }
    }
}
