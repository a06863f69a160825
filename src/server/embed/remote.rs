//! Embeddings from an OpenAI-compatible `/embeddings` endpoint of a configured provider
//! (OpenAI, text-embeddings-inference, vLLM, Ollama, another Stoa), through async-openai.
//! Token counts are tiktoken estimates with a margin (see `llm::tokens`), since the
//! remote model's tokenizer is not here.

use async_openai::{
    Client,
    config::OpenAIConfig,
    types::embeddings::{CreateEmbeddingRequest, EmbeddingInput},
};
use async_trait::async_trait;

use super::{EmbedError, Embedded, Embedder};
use crate::{
    api::types::Role,
    server::{
        config::ProviderSettings,
        llm::{
            PromptMessage,
            openai::{Connection, connect, map_error},
            tokens::Counter,
        },
    },
};

/// Inputs per request.
const BATCH: usize = 64;

pub struct RemoteEmbedder {
    model: String,
    client: Client<OpenAIConfig>,
    counter: Counter,
    dimensions: usize,
    max_tokens: usize,
}

impl RemoteEmbedder {
    /// Connects and embeds one probe text to learn the vector size (and that it works).
    pub async fn connect(
        provider: &ProviderSettings,
        model: &str,
        max_tokens: usize,
    ) -> Result<Self, EmbedError> {
        let Connection { client, .. } = connect(provider).map_err(EmbedError::Unavailable)?;
        let mut embedder = Self {
            model: model.to_owned(),
            client,
            counter: Counter::for_model(model),
            dimensions: 0,
            max_tokens,
        };
        let probe = embedder.request(vec!["dimension probe".into()]).await?;
        embedder.dimensions = probe.first().map_or(0, Vec::len);
        tracing::info!(provider = %provider.name, model, dimensions = embedder.dimensions, "remote embedding model ready");
        Ok(embedder)
    }

    async fn request(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = texts.len();
        let response = self
            .client
            .embeddings()
            .create(CreateEmbeddingRequest {
                model: self.model.clone(),
                input: EmbeddingInput::StringArray(texts),
                ..Default::default()
            })
            .await
            .map_err(|e| EmbedError::Unavailable(map_error(e).to_string()))?;
        let mut data = response.data;
        data.sort_by_key(|d| d.index);
        if data.len() != n {
            return Err(EmbedError::Backend(format!(
                "asked for {n} vectors, got {}",
                data.len()
            )));
        }
        // Unit length, whatever the server does, so similarity stays a dot product.
        Ok(data
            .into_iter()
            .map(|d| {
                let norm = d
                    .embedding
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::EPSILON);
                d.embedding.iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}

#[async_trait]
impl Embedder for RemoteEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn count_tokens(&self, text: &str) -> usize {
        // The chat counter adds its per-message overhead; an estimate errs high, as intended.
        self.counter.count(&[PromptMessage::text(Role::User, text)]) as usize
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Embedded, EmbedError> {
        let mut tokens = 0;
        for (index, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(EmbedError::Empty { index });
            }
            let n = self.count_tokens(text);
            if n > self.max_tokens {
                return Err(EmbedError::TooLong {
                    index,
                    tokens: n,
                    limit: self.max_tokens,
                });
            }
            tokens += n as u32;
        }
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            vectors.extend(self.request(batch.to_vec()).await?);
        }
        Ok(Embedded { vectors, tokens })
    }
}
