//! all-MiniLM-L6-v2 in-process: candle's BERT on the CPU, the model's own WordPiece
//! tokenizer, mean pooling over real tokens and L2 normalisation (as sentence-transformers
//! does). Inputs are sorted by length and batched so padding stays small.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;
use tokio::sync::Semaphore;

use super::{EmbedError, Embedded, Embedder};

/// Directory name of the default model in the model directory.
pub const DEFAULT_EMBEDDING_MODEL_DIR: &str = "all-MiniLM-L6-v2";
/// sentence-transformers' `max_seq_length` for this model: longer text was never trained.
const MAX_TOKENS: usize = 256;
/// Inputs per forward pass.
const BATCH: usize = 32;

pub struct LocalEmbedder {
    name: String,
    model: Arc<BertModel>,
    tokenizer: Arc<Tokenizer>,
    dimensions: usize,
    /// One batch at a time: the CPU is the limit, and candle already uses every core.
    running: Arc<Semaphore>,
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Unavailable(format!("{}: {e}", path.display()))
}

impl LocalEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.join("model.safetensors").is_file() {
            return Err(EmbedError::Unavailable(format!(
                "no embedding model in {}: run `make models` to fetch the default one, or set \
                 STOA_EMBEDDING__PATH to a sentence-transformers BERT directory",
                dir.display()
            )));
        }
        let config_path = dir.join("config.json");
        let config: Config =
            serde_json::from_slice(&std::fs::read(&config_path).map_err(|e| unavailable(&config_path, e))?)
                .map_err(|e| unavailable(&config_path, e))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| unavailable(&tokenizer_path, e))?;
        // The file pads and truncates to 128 tokens; lengths are checked and padding is
        // done here instead, so nothing is cut silently.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| unavailable(&tokenizer_path, e))?;
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| unavailable(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| unavailable(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| unavailable(&weights_path, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL_DIR.into());
        tracing::info!(model = %name, dimensions = config.hidden_size, "embedding model loaded");
        Ok(Self {
            name,
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            dimensions: config.hidden_size,
            running: Arc::new(Semaphore::new(1)),
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
                let encoding = self
                    .tokenizer
                    .encode(text.as_str(), true)
                    .map_err(|e| EmbedError::Backend(e.to_string()))?;
                let ids = encoding.get_ids().to_vec();
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

/// One forward pass over same-sized rows: mean of the real tokens' states, unit length.
fn embed_batch(model: &BertModel, rows: &[&Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(rows.len() * width);
    let mut mask = Vec::with_capacity(rows.len() * width);
    for row in rows {
        ids.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(0, width - row.len())),
        );
        mask.extend(std::iter::repeat_n(1u32, row.len()).chain(std::iter::repeat_n(0, width - row.len())));
    }
    let shape = (rows.len(), width);
    let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
    let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
    let types = ids.zeros_like()?;
    let states = model.forward(&ids, &types, Some(&mask))?; // (rows, width, hidden)
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, width, 1)
    let summed = states.broadcast_mul(&mask)?.sum(1)?; // (rows, hidden)
    let counts = mask.sum(1)?; // (rows, 1)
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
    mean.broadcast_div(&norms)?.to_vec2::<f32>()
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
        let tokenized = self.tokenize(&texts)?;
        let tokens = tokenized.iter().map(Vec::len).sum::<usize>() as u32;
        let _turn = self
            .running
            .acquire()
            .await
            .map_err(|_| EmbedError::Unavailable("the embedder is shutting down".into()))?;
        let model = Arc::clone(&self.model);
        let vectors = tokio::task::spawn_blocking(move || {
            // Shortest first, so each batch pads to a similar length.
            let mut order: Vec<usize> = (0..tokenized.len()).collect();
            order.sort_by_key(|&i| tokenized[i].len());
            let mut vectors = vec![Vec::new(); tokenized.len()];
            for chunk in order.chunks(BATCH) {
                let rows: Vec<&Vec<u32>> = chunk.iter().map(|&i| &tokenized[i]).collect();
                for (&i, v) in chunk.iter().zip(embed_batch(&model, &rows)?) {
                    vectors[i] = v;
                }
            }
            Ok::<_, candle_core::Error>(vectors)
        })
        .await
        .map_err(|e| EmbedError::Backend(e.to_string()))?
        .map_err(|e| EmbedError::Backend(e.to_string()))?;
        Ok(Embedded { vectors, tokens })
    }
}
