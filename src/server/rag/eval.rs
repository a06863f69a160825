//! The retrieval evaluation: a small labelled set Stoa keeps in `bench/rag-eval/`
//! (documents, questions, and a phrase of the passage that answers each), ingested into a
//! scratch database and searched. Prints recall@k and MRR (`stoa eval-rag`); a test keeps
//! them above a floor.

use std::{path::Path, sync::Arc, time::Duration};

use serde::Deserialize;

use super::{index::VectorIndex, ingest::IngestService, retrieve::Retriever};
use crate::server::{auth::UserId, background::Background};
use crate::{
    api::documents::{DocumentMetadata, DocumentStatus},
    server::{
        config::RagSettings,
        embed::Embedder,
        storage::{DocumentStore, documents::VectorSearch, sqlite::SqliteStore},
    },
};

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub question: String,
    /// File name of the document that answers it.
    pub document: String,
    /// A phrase of the answering passage.
    pub expect: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub k: usize,
    pub cases: usize,
    /// Share of questions whose passage is among the first k.
    pub recall_at_k: f32,
    /// Mean of 1 / rank of the answering passage (0 when it is not in the first k).
    pub mrr: f32,
    /// Questions whose passage was not found, with what came first instead.
    pub misses: Vec<(String, Option<String>)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "retrieval evaluation: {} questions", self.cases)?;
        writeln!(f, "  recall@{}  {:.3}", self.k, self.recall_at_k)?;
        writeln!(f, "  MRR@{}     {:.3}", self.k, self.mrr)?;
        for (q, got) in &self.misses {
            writeln!(f, "  miss: {q} (first: {})", got.as_deref().unwrap_or("nothing"))?;
        }
        Ok(())
    }
}

/// Ingests every file of `dir/docs`, asks every question of `dir/questions.json`.
/// `extractor` is the `stoa` binary that reads the files (`None`: this executable).
pub async fn run(
    dir: &Path,
    embedder: Arc<dyn Embedder>,
    k: usize,
    extractor: Option<std::path::PathBuf>,
) -> Result<Report, String> {
    let cases: Vec<Case> = serde_json::from_slice(
        &std::fs::read(dir.join("questions.json")).map_err(|e| format!("questions.json: {e}"))?,
    )
    .map_err(|e| format!("questions.json: {e}"))?;
    let scratch = std::env::temp_dir().join(format!("stoa-eval-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let result = evaluate(dir, &scratch, embedder, k, &cases, extractor).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Ingests every file of `docs` and waits for each; returns (file name, title) pairs.
async fn ingest_corpus(ingest: &IngestService, docs: &Path) -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<_> = std::fs::read_dir(docs)
        .map_err(|e| format!("docs: {e}"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut titles = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).map_err(|e| format!("{name}: {e}"))?;
        let (doc, _) = ingest
            .submit(UserId::single_user(), &name, bytes, &DocumentMetadata::default())
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let doc = ingest
            .wait(UserId::single_user(), &doc.id, Duration::from_secs(300))
            .await
            .map_err(|e| e.to_string())?;
        if doc.status != DocumentStatus::Ready {
            return Err(format!("{name}: {:?}", doc.error));
        }
        titles.push((name, doc.title));
    }
    Ok(titles)
}

async fn evaluate(
    dir: &Path,
    scratch: &Path,
    embedder: Arc<dyn Embedder>,
    k: usize,
    cases: &[Case],
    extractor: Option<std::path::PathBuf>,
) -> Result<Report, String> {
    let url = format!("sqlite://{}", scratch.join("eval.db").display());
    let store: Arc<dyn DocumentStore> = Arc::new(SqliteStore::open(&url).await.map_err(|e| e.to_string())?);
    let settings = RagSettings {
        top_k: k as u32,
        min_similarity: 0.0,
        extractor,
        ..RagSettings::default()
    };
    let index: Arc<dyn VectorSearch> = Arc::new(VectorIndex::default());
    let background = Background::default();
    let ingest = IngestService::start(
        Arc::clone(&store),
        Arc::clone(&embedder),
        Arc::clone(&index),
        settings.clone(),
        &background,
    )?;
    let titles = ingest_corpus(&ingest, &dir.join("docs")).await;
    background.stop().await;
    let titles = titles?;
    let retriever = Retriever::new(store, embedder, index, settings);
    let (mut found, mut reciprocal, mut misses) = (0usize, 0f32, Vec::new());
    for case in cases {
        let title = titles
            .iter()
            .find(|(file, _)| *file == case.document)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| format!("no document {}", case.document))?;
        let got = retriever
            .retrieve(UserId::single_user(), &case.question, None)
            .await
            .map_err(|e| e.to_string())?;
        let rank = got
            .citations
            .iter()
            .position(|c| c.document_title == title && c.text.contains(&case.expect));
        match rank {
            Some(r) => {
                found += 1;
                reciprocal += 1.0 / (r as f32 + 1.0);
            }
            None => misses.push((
                case.question.clone(),
                got.citations
                    .first()
                    .map(|c| format!("{}: {}", c.document_title, c.text)),
            )),
        }
    }
    let n = cases.len().max(1) as f32;
    Ok(Report {
        k,
        cases: cases.len(),
        recall_at_k: found as f32 / n,
        mrr: reciprocal / n,
        misses,
    })
}
