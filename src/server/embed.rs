//! Text embeddings: the [`Embedder`] trait, and the embedded all-MiniLM-L6-v2 model
//! ([`local::LocalEmbedder`], BERT on llama.cpp's CPU kernels), or any OpenAI-compatible
//! `/embeddings` endpoint ([`remote::RemoteEmbedder`]). Used by `/v1/embeddings` and, with
//! documents, by ingestion and retrieval.

pub mod gguf;
pub mod local;
pub mod remote;

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    #[error("input {index} is {tokens} tokens long; the embedding model takes at most {limit}")]
    TooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    #[error("input {index} is empty")]
    Empty { index: usize },
    #[error("the embedding model is unavailable: {0}")]
    Unavailable(String),
    #[error("embedding failed: {0}")]
    Backend(String),
}

/// Vectors in input order, and the tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: u32,
}

#[async_trait]
pub trait Embedder: Send + Sync + 'static {
    /// Model name, e.g. `all-MiniLM-L6-v2`.
    fn model(&self) -> &str;

    /// Length of every vector.
    fn dimensions(&self) -> usize;

    /// Longest input, in the model's tokens.
    fn max_tokens(&self) -> usize;

    /// Tokens `text` takes for this model (special tokens included).
    fn count_tokens(&self, text: &str) -> usize;

    /// The longest prefix of `text` (whole words) that fits [`Self::max_tokens`].
    fn truncate(&self, text: &str) -> String {
        if self.count_tokens(text) <= self.max_tokens() {
            return text.to_owned();
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        let (mut lo, mut hi) = (0, words.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.count_tokens(&words[..mid].join(" ")) <= self.max_tokens() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        words[..lo].join(" ")
    }

    /// Unit-length vectors (cosine similarity is a dot product), one per input.
    /// Fails as a whole, before any work, when an input is empty or too long.
    async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError>;

    /// [`Self::embed`] for work nobody is waiting on (documents being read): an embedder
    /// sharing the cores with the chat model lets chat go first.
    async fn embed_background(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        self.embed(texts).await
    }
}
