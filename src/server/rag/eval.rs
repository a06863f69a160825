//! The retrieval evaluation (`stoa eval-rag`, `make eval`): 212 real documents from
//! Debian's documentation packages (`bench/eval/corpus.tsv`, fetched by
//! `bench/eval/fetch.sh`) and 155 questions in four kinds (`bench/eval/questions/*.jsonl`):
//! keyword, paraphrase, follow-up (with the conversation's earlier questions) and
//! unanswerable near misses.
//!
//! Every question is asked of several retrieval set-ups in one run: keyword search alone
//! and vector search alone (the baselines), the pipeline as configured, and variants of
//! it. Each answerable question is scored at the document level (recall@1/5/10, MRR@10
//! of the first document that answers it), the pipeline's decision to decline is scored
//! on both kinds (declined when unanswerable, wrongly declined when answerable), and the
//! passages it selects by how many come from a document that answers (source precision).
//!
//! The corpus is ingested once into a cached database (`~/.cache/stoa/eval/index-*`),
//! keyed by the corpus list, the chunking settings and the code that reads and splits
//! files, so later runs only search.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    index::VectorIndex,
    ingest::IngestService,
    rerank::{EmbeddingReranker, LlmReranker, Reranker},
    retrieve::{Ask, Options, Retrieval, Retriever},
    rewrite::RewriteMode,
    select::Evidence,
    task::TaskModel,
};
use crate::{
    api::documents::{DocumentMetadata, DocumentStatus},
    server::{
        auth::UserId,
        background::Background,
        config::RagSettings,
        embed::Embedder,
        storage::{
            DocumentStore,
            documents::{Scope, VectorSearch},
            sqlite::SqliteStore,
        },
    },
};

/// The kinds of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Keyword,
    Paraphrase,
    Followup,
    Unanswerable,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    pub id: String,
    pub kind: Kind,
    pub question: String,
    /// Earlier user messages, oldest first (follow-ups).
    #[serde(default)]
    pub history: Vec<String>,
    /// Documents that answer it (`package/file`), best first; empty when none does.
    pub answers: Vec<AnswerDoc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AnswerDoc {
    pub doc: String,
}

/// Where the evaluation finds its inputs and keeps its index.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `package/file` documents (`bench/eval/fetch.sh` puts them in `~/.cache/stoa/eval/docs`).
    pub corpus: PathBuf,
    /// `*.jsonl` question files.
    pub questions: PathBuf,
    /// Where the ingested corpus is cached.
    pub cache: PathBuf,
    /// The `stoa` binary that reads files (`None`: this executable).
    pub extractor: Option<PathBuf>,
}

impl Paths {
    /// The repository's set and the user's cache.
    pub fn default_for(repo: &Path) -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        let eval =
            std::env::var_os("STOA_EVAL_DIR").map_or_else(|| home.join(".cache/stoa/eval"), PathBuf::from);
        Self {
            corpus: eval.join("docs"),
            questions: repo.join("bench/eval/questions"),
            cache: eval,
            extractor: None,
        }
    }
}

/// How one set-up did on one kind of question.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    pub questions: usize,
    pub recall_1: f32,
    pub recall_5: f32,
    pub recall_10: f32,
    pub mrr_10: f32,
    /// Unanswerable: share declined. Answerable: share wrongly declined.
    pub declined: Option<f32>,
    /// Share of selected passages from a document that answers (answerable, not declined).
    pub source_precision: Option<f32>,
    /// Median milliseconds per question.
    pub median_ms: u64,
}

/// Scores of one set-up, by kind and over all answerable questions.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub name: String,
    pub by_kind: BTreeMap<Kind, Score>,
    pub answerable: Score,
    /// Median milliseconds per question.
    pub median_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub documents: usize,
    pub chunks: usize,
    pub setups: Vec<SetupReport>,
}

/// One set-up: a baseline or the pipeline with some options.
#[derive(Clone)]
pub enum Setup {
    /// Keyword search alone, the question as typed.
    Keyword,
    /// Vector search alone, the question as typed.
    Vector,
    Pipeline {
        name: String,
        options: Options,
    },
    /// The pipeline with the settings' options and this re-ranker.
    Reranked {
        name: String,
        options: Options,
        reranker: Arc<dyn Reranker>,
    },
}

impl Setup {
    pub fn name(&self) -> &str {
        match self {
            Setup::Keyword => "keyword only (BM25)",
            Setup::Vector => "vector only",
            Setup::Pipeline { name, .. } | Setup::Reranked { name, .. } => name,
        }
    }

    /// The baselines, the pipeline as `settings` configure it, and its variants.
    pub fn all(settings: &RagSettings) -> Vec<Setup> {
        let base = Options::from_settings(settings);
        vec![
            Setup::Keyword,
            Setup::Vector,
            Setup::Pipeline {
                name: "pipeline (default settings)".into(),
                options: base.clone(),
            },
            Setup::Pipeline {
                name: "  rewrite: model (the task model)".into(),
                options: Options {
                    rewrite: RewriteMode::Model,
                    ..base.clone()
                },
            },
            Setup::Pipeline {
                name: "  rewrite: context".into(),
                options: Options {
                    rewrite: RewriteMode::Context,
                    ..base.clone()
                },
            },
            Setup::Pipeline {
                name: "  rewrite: off".into(),
                options: Options {
                    rewrite: RewriteMode::Off,
                    ..base.clone()
                },
            },
            Setup::Pipeline {
                name: "  candidates by chunk, not document".into(),
                options: Options {
                    by_document: false,
                    ..base.clone()
                },
            },
        ]
    }

    /// The pipeline with each re-ranker that runs here: the embedding model's similarity,
    /// and the task model judging (slow on 2 cores: `stoa eval-rag --rerankers`).
    pub fn rerankers(settings: &RagSettings, embedder: Arc<dyn Embedder>) -> Vec<Setup> {
        let options = Options::from_settings(settings);
        vec![
            Setup::Reranked {
                name: "  re-ranked: embedding".into(),
                options: options.clone(),
                reranker: Arc::new(EmbeddingReranker::new(embedder)),
            },
            Setup::Reranked {
                name: "  re-ranked: llm (the task model)".into(),
                options,
                reranker: Arc::new(LlmReranker::new(None)),
            },
        ]
    }
}

/// One question's outcome under one set-up, for the report and for `--dump`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub kind: Kind,
    pub setup: String,
    /// Documents in ranked order (first occurrence), at most 10.
    pub documents: Vec<String>,
    /// 1-based rank of the first answering document, if in the first 10.
    pub rank: Option<usize>,
    pub declined: Option<bool>,
    pub selected: Vec<String>,
    pub confidence: Option<f32>,
    pub evidence: Option<Evidence>,
    /// The query searched first, when not the question as typed (follow-ups).
    pub query: Option<String>,
    pub ms: u64,
}

/// The corpus in a database: its store, index, and document ids by `package/file`.
pub struct Indexed {
    pub store: Arc<SqliteStore>,
    pub index: Arc<VectorIndex>,
    pub ids: HashMap<String, String>,
    pub chunks: usize,
}

/// Ingests the corpus into the cached database, unless it is there already.
pub async fn index(
    paths: &Paths,
    embedder: Arc<dyn Embedder>,
    settings: &RagSettings,
) -> Result<Indexed, String> {
    let files = corpus_files(&paths.corpus)?;
    if files.is_empty() {
        return Err(format!(
            "no documents in {}: run bench/eval/fetch.sh (make eval-corpus)",
            paths.corpus.display()
        ));
    }
    let key = cache_key(&files, settings, embedder.model());
    let dir = paths.cache.join(format!("index-{key}"));
    let ids_file = dir.join("documents.json");
    let url = format!("sqlite://{}", dir.join("eval.db").display());
    if let Ok(bytes) = std::fs::read(&ids_file) {
        let ids: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let store = Arc::new(SqliteStore::open(&url).await.map_err(|e| e.to_string())?);
        let vectors = store.chunk_vectors().await.map_err(|e| e.to_string())?;
        let chunks = vectors.len();
        return Ok(Indexed {
            store,
            index: Arc::new(VectorIndex::new(vectors)),
            ids,
            chunks,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = Arc::new(SqliteStore::open(&url).await.map_err(|e| e.to_string())?);
    let index = Arc::new(VectorIndex::default());
    let background = Background::default();
    let ingest = IngestService::start(
        Arc::clone(&store) as Arc<dyn DocumentStore>,
        embedder,
        Arc::clone(&index) as Arc<dyn VectorSearch>,
        RagSettings {
            extractor: paths.extractor.clone(),
            ..settings.clone()
        },
        &background,
    )?;
    let ids = ingest_all(&ingest, &paths.corpus, &files).await;
    background.stop().await;
    let ids = ids?;
    std::fs::write(&ids_file, serde_json::to_vec(&ids).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let chunks = index.len();
    Ok(Indexed {
        store,
        index,
        ids,
        chunks,
    })
}

/// Every `package/file` of the corpus, sorted.
fn corpus_files(corpus: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    let Ok(packages) = std::fs::read_dir(corpus) else {
        return Ok(files);
    };
    for package in packages.filter_map(Result::ok).filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(package.path())
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
        {
            files.push(format!(
                "{}/{}",
                package.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// What the cached index depends on: the files, the chunking and embedding, and the
/// code that reads (HTML and text in `extract.rs`, PDFs in `extract/ocr.rs`), splits and
/// embeds them (the local embedder and the weights it runs).
fn cache_key(files: &[String], settings: &RagSettings, model: &str) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_bytes());
        h.update([0]);
    }
    h.update(format!("{}:{}:{model}", settings.chunk_tokens, settings.chunk_overlap).as_bytes());
    h.update(include_str!("extract.rs").as_bytes());
    h.update(include_str!("extract/ocr.rs").as_bytes());
    h.update(include_str!("chunk.rs").as_bytes());
    h.update(include_str!("../embed/local.rs").as_bytes());
    h.update(include_str!("../embed/gguf.rs").as_bytes());
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

async fn ingest_all(
    ingest: &IngestService,
    corpus: &Path,
    files: &[String],
) -> Result<HashMap<String, String>, String> {
    let me = UserId::single_user();
    let mut submitted = Vec::new();
    for name in files {
        let bytes = std::fs::read(corpus.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let (doc, _) = ingest
            .submit(
                me,
                name.rsplit('/').next().unwrap_or(name),
                bytes,
                &DocumentMetadata::default(),
            )
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        submitted.push((name.clone(), doc.id));
    }
    let mut ids = HashMap::new();
    for (i, (name, id)) in submitted.into_iter().enumerate() {
        let doc = ingest
            .wait(me, &id, Duration::from_secs(1800))
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if doc.status != DocumentStatus::Ready {
            return Err(format!("{name}: {:?}", doc.error));
        }
        eprintln!("== eval: {}/{} documents ready ({name})", i + 1, files.len());
        ids.insert(name, id);
    }
    Ok(ids)
}

/// The labelled questions of every `*.jsonl` file in `dir`.
pub fn questions(dir: &Path) -> Result<Vec<Question>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| e.to_string())?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            all.push(serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", f.display(), n + 1))?);
        }
    }
    Ok(all)
}

/// Asks every question of every set-up.
pub async fn evaluate(
    indexed: &Indexed,
    retriever: &Retriever,
    task: Option<&dyn TaskModel>,
    questions: &[Question],
    setups: &[Setup],
) -> Result<(Report, Vec<Outcome>), String> {
    let by_id: HashMap<&str, &str> = indexed
        .ids
        .iter()
        .map(|(k, v)| (v.as_str(), k.as_str()))
        .collect();
    let mut outcomes = Vec::new();
    let mut reports = Vec::new();
    for setup in setups {
        let mut mine = Vec::new();
        for q in questions {
            let started = std::time::Instant::now();
            let (documents, retrieval) = ranked(indexed, retriever, task, setup, q).await?;
            let ms = started.elapsed().as_millis() as u64;
            let documents: Vec<String> = documents
                .iter()
                .filter_map(|d| by_id.get(d.as_str()).map(|s| (*s).to_owned()))
                .collect();
            let answers: Vec<&str> = q.answers.iter().map(|a| a.doc.as_str()).collect();
            let rank = documents
                .iter()
                .position(|d| answers.contains(&d.as_str()))
                .map(|p| p + 1);
            let selected: Vec<String> = retrieval
                .as_ref()
                .map(|r| {
                    r.citations
                        .iter()
                        .filter_map(|c| by_id.get(c.document_id.as_str()).map(|s| (*s).to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            mine.push(Outcome {
                id: q.id.clone(),
                kind: q.kind,
                setup: setup.name().to_owned(),
                documents,
                rank,
                declined: retrieval.as_ref().map(|r| r.declined),
                selected,
                confidence: retrieval.as_ref().map(|r| r.confidence),
                evidence: retrieval.as_ref().and_then(|r| r.evidence),
                query: retrieval.as_ref().and_then(|r| r.query.clone()),
                ms,
            });
        }
        reports.push(score(setup.name(), questions, &mine));
        outcomes.extend(mine);
    }
    Ok((
        Report {
            documents: indexed.ids.len(),
            chunks: indexed.chunks,
            setups: reports,
        },
        outcomes,
    ))
}

/// Document ids in ranked order (first occurrence, at most 10), and the pipeline's
/// retrieval when the set-up is the pipeline.
async fn ranked(
    indexed: &Indexed,
    retriever: &Retriever,
    task: Option<&dyn TaskModel>,
    setup: &Setup,
    q: &Question,
) -> Result<(Vec<String>, Option<Retrieval>), String> {
    let me = UserId::single_user();
    let chunk_ids: Vec<i64> = match setup {
        Setup::Keyword => indexed
            .store
            .keyword_search(me, &q.question, Scope::ALL, 50)
            .await
            .map_err(|e| e.to_string())?,
        Setup::Vector => {
            let embedder = retriever.embedder();
            let v = embedder
                .embed(vec![embedder.truncate(&q.question)])
                .await
                .map_err(|e| e.to_string())?;
            indexed
                .index
                .nearest(me, &v.vectors[0], Scope::ALL, 50)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        }
        Setup::Pipeline { options, .. } | Setup::Reranked { options, .. } => {
            let ask = Ask {
                owner: me,
                question: &q.question,
                history: &q.history,
                scope: Scope::ALL,
            };
            let reranked;
            let retriever = match setup {
                Setup::Reranked { reranker, .. } => {
                    reranked = retriever.reranked_by(Some(Arc::clone(reranker)));
                    &reranked
                }
                _ => retriever,
            };
            let retrieval = retriever
                .retrieve_with(ask, task, options)
                .await
                .map_err(|e| e.to_string())?;
            let docs = first_documents(retrieval.ranked.iter().map(|r| r.document_id.clone()));
            return Ok((docs, Some(retrieval)));
        }
    };
    let hits = indexed
        .store
        .get_chunks(&chunk_ids)
        .await
        .map_err(|e| e.to_string())?;
    Ok((first_documents(hits.into_iter().map(|h| h.document_id)), None))
}

fn first_documents(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut docs = Vec::new();
    for id in ids {
        if !docs.contains(&id) {
            docs.push(id);
            if docs.len() == 10 {
                break;
            }
        }
    }
    docs
}

fn score(name: &str, questions: &[Question], outcomes: &[Outcome]) -> SetupReport {
    let answers: HashMap<&str, Vec<&str>> = questions
        .iter()
        .map(|q| (q.id.as_str(), q.answers.iter().map(|a| a.doc.as_str()).collect()))
        .collect();
    let mut by_kind: BTreeMap<Kind, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        by_kind.entry(o.kind).or_default().push(o);
    }
    let summarise = |list: &[&Outcome]| -> Score {
        let n = list.len().max(1) as f32;
        let within = |k: usize| list.iter().filter(|o| o.rank.is_some_and(|r| r <= k)).count() as f32 / n;
        let declined: Vec<bool> = list.iter().filter_map(|o| o.declined).collect();
        let answered: Vec<&&Outcome> = list.iter().filter(|o| o.declined == Some(false)).collect();
        let (good, all) = answered.iter().fold((0usize, 0usize), |(g, a), o| {
            let right = &answers[o.id.as_str()];
            (
                g + o.selected.iter().filter(|d| right.contains(&d.as_str())).count(),
                a + o.selected.len(),
            )
        });
        let mut ms: Vec<u64> = list.iter().map(|o| o.ms).collect();
        ms.sort_unstable();
        Score {
            median_ms: ms.get(ms.len() / 2).copied().unwrap_or(0),
            questions: list.len(),
            recall_1: within(1),
            recall_5: within(5),
            recall_10: within(10),
            mrr_10: list
                .iter()
                .filter_map(|o| o.rank)
                .map(|r| 1.0 / r as f32)
                .sum::<f32>()
                / n,
            declined: (!declined.is_empty())
                .then(|| declined.iter().filter(|d| **d).count() as f32 / declined.len() as f32),
            source_precision: (all > 0).then(|| good as f32 / all as f32),
        }
    };
    let answerable: Vec<&Outcome> = outcomes.iter().filter(|o| o.kind != Kind::Unanswerable).collect();
    let mut ms: Vec<u64> = outcomes.iter().map(|o| o.ms).collect();
    ms.sort_unstable();
    SetupReport {
        name: name.to_owned(),
        by_kind: by_kind.iter().map(|(k, list)| (*k, summarise(list))).collect(),
        answerable: summarise(&answerable),
        median_ms: ms.get(ms.len() / 2).copied().unwrap_or(0),
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |v: Option<f32>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
        writeln!(
            f,
            "Retrieval evaluation: {} documents, {} chunks (bench/eval).\n",
            self.documents, self.chunks
        )?;
        writeln!(
            f,
            "| set-up | questions | R@1 | R@5 | R@10 | MRR@10 | declined | source precision | ms (median) |"
        )?;
        writeln!(
            f,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )?;
        for s in &self.setups {
            let row = |f: &mut std::fmt::Formatter<'_>, label: &str, sc: &Score, ms: String| {
                writeln!(
                    f,
                    "| {} | {label} ({}) | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {ms} |",
                    s.name.trim(),
                    sc.questions,
                    sc.recall_1,
                    sc.recall_5,
                    sc.recall_10,
                    sc.mrr_10,
                    pct(sc.declined),
                    pct(sc.source_precision)
                )
            };
            row(f, "answerable", &s.answerable, s.median_ms.to_string())?;
            for (kind, sc) in &s.by_kind {
                let label = format!("{kind:?}").to_lowercase();
                if *kind == Kind::Unanswerable {
                    writeln!(
                        f,
                        "| {} | {label} ({}) | | | | | {} | | {} |",
                        s.name.trim(),
                        sc.questions,
                        pct(sc.declined),
                        sc.median_ms
                    )?;
                } else {
                    row(f, &label, sc, sc.median_ms.to_string())?;
                }
            }
        }
        writeln!(
            f,
            "\n\"declined\": for unanswerable questions the share declined (higher is better); for answerable ones the share wrongly declined (lower is better). ms: the median time to rank one question (the first row of a set-up: over all 155)."
        )
    }
}
