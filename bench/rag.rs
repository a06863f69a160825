//! Documents benchmark (`make bench-rag`): ingestion throughput of the real pipeline and
//! retrieval latency at 10k and 100k chunks on SQLite (in-memory exact vector index) and on
//! PostgreSQL (pgvector HNSW, with recall against exact search), in one run, written to
//! `bench/results/rag.md`.
//!
//! Ingestion: the real extract → chunk → MiniLM embed → store → index pipeline on the
//! evaluation documents (each repeated with a number so none is a duplicate).
//! Retrieval: `Retriever::retrieve` end to end (query embedding, BM25 over FTS5, exact
//! vector search, fusion, re-scoring, passage fetch). The 10k/100k corpora are SYNTHETIC:
//! generated sentences and random unit vectors, because embedding 100k chunks takes hours
//! on this machine; latency depends on the corpus size, not on what the text says.

#[path = "common/machine.rs"]
mod machine;
#[path = "common/postgres.rs"]
mod postgres;

use std::{sync::Arc, time::Instant};

use postgres::Postgres;

use sqlx::Connection;

/// Benchmarks act as the single-user owner.
const ME: UserId = UserId::SINGLE_USER;

use stoa::{
    api::documents::{DocumentMetadata, DocumentStatus},
    server::{
        auth::UserId,
        background::Background,
        config::{RagSettings, Settings},
        embed::{Embedder, local::LocalEmbedder},
        rag::{
            index::VectorIndex,
            ingest::IngestService,
            retrieve::{Ask, Retriever},
        },
        storage::{
            DocumentStore,
            documents::{ChunkVector, NewChunk, NewDocument, Scope, VectorSearch},
            postgres::PgStore,
            sqlite::SqliteStore,
        },
    },
};

/// A small deterministic generator (xorshift), so every run builds the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
}

fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "in", "pa", "qui", "zen", "or", "ba", "lu", "ne",
    ];
    let mut words = Vec::new();
    for a in syllables {
        for b in syllables {
            for c in syllables {
                for d in ["", "s", "ta", "ri"] {
                    words.push(format!("{a}{b}{c}{d}"));
                }
            }
        }
    }
    words
}

/// Words drawn with a Zipf-like law (log-uniform rank), as in real text: a few words are
/// everywhere, most are rare.
fn sentence(rng: &mut Rng, words: &[String], n: usize) -> String {
    (0..n)
        .map(|_| {
            let u = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
            let rank = (words.len() as f64).powf(u) as usize - 1;
            words[rank.min(words.len() - 1)].as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn ingestion(embedder: Arc<dyn Embedder>, scratch: &std::path::Path) -> (usize, f64) {
    let store: Arc<dyn DocumentStore> = Arc::new(
        SqliteStore::open(&format!("sqlite://{}", scratch.join("ingest.db").display()))
            .await
            .unwrap(),
    );
    // Uploads are read by the release `stoa` binary (`stoa extract`), as in production.
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bin = std::env::var("BENCH_STOA_BIN").unwrap_or(format!("{target_dir}/release/stoa"));
    let ingest = IngestService::start(
        store,
        embedder,
        Arc::new(VectorIndex::default()),
        RagSettings {
            extractor: Some(bin.into()),
            ..RagSettings::default()
        },
        &Background::default(),
    )
    .expect("the ingestion service");
    let docs: Vec<(String, Vec<u8>)> = std::fs::read_dir("bench/rag-eval/docs")
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let started = Instant::now();
    let mut chunks = 0;
    for round in 0..6 {
        for (name, bytes) in &docs {
            let mut text = bytes.clone();
            text.extend_from_slice(format!("\n\nCopy {round}.\n").as_bytes());
            let (doc, _) = ingest
                .submit(ME, &format!("{round}-{name}"), text, &DocumentMetadata::default())
                .await
                .unwrap();
            let done = ingest
                .wait(ME, &doc.id, std::time::Duration::from_secs(600))
                .await
                .unwrap();
            assert_eq!(done.status, DocumentStatus::Ready);
            chunks += done.chunk_count as usize;
        }
    }
    (chunks, started.elapsed().as_secs_f64())
}

/// p50 and p99 of `times` (milliseconds).
fn summary(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Where a corpus is stored and its vectors searched.
enum Backend {
    /// SQLite (FTS5) with the in-memory exact index: the embedded default.
    Sqlite,
    /// PostgreSQL (tsvector) with pgvector's HNSW: `postgres://…` of a server to make a
    /// database on.
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite + in-memory exact",
            Backend::Postgres(_) => "PostgreSQL + pgvector (exact below 20k chunks, HNSW above)",
        }
    }
}

/// (p50, p99) of end to end, vector search alone and keyword search alone; recall@20 of
/// the vector search against exact search; seconds the first search took (on PostgreSQL
/// it builds the HNSW index).
struct Measured {
    whole: (f64, f64),
    vector: (f64, f64),
    keyword: (f64, f64),
    recall: f64,
    first_search_secs: f64,
}

async fn retrieval(
    embedder: Arc<dyn Embedder>,
    scratch: &std::path::Path,
    n: usize,
    backend: &Backend,
) -> Measured {
    let (store, in_database): (Arc<dyn DocumentStore>, Option<Arc<dyn VectorSearch>>) = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", scratch.join(format!("r{n}.db")).display());
            (Arc::new(SqliteStore::open(&url).await.unwrap()), None)
        }
        Backend::Postgres(server) => {
            let name = format!("bench_{n}");
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
            let pg = Arc::new(PgStore::open(&format!("{server}/{name}")).await.unwrap());
            (pg.clone(), Some(pg))
        }
    };
    let words = vocabulary();
    let mut rng = Rng(0x5eed + n as u64);
    let per_doc = 1000;
    // The exact answer, for recall (and the search itself on SQLite).
    let exact = Arc::new(VectorIndex::default());
    for d in 0..n / per_doc {
        let id = format!("doc-{d}");
        store
            .insert_document(NewDocument {
                owner: ME,
                id: id.clone(),
                collection_id: None,
                title: id.clone(),
                file_name: format!("{id}.txt"),
                media_type: "text/plain".into(),
                source: None,
                tags: Vec::new(),
                content_hash: id.clone(),
                size_bytes: 0,
                upload: None,
                replaces: None,
                version: 1,
                now_ms: 0,
            })
            .await
            .unwrap();
        let chunks: Vec<NewChunk> = (0..per_doc)
            .map(|i| {
                let mut v: Vec<f32> = (0..embedder.dimensions()).map(|_| rng.unit()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                NewChunk {
                    position: i as u32,
                    heading: None,
                    content: sentence(&mut rng, &words, 150),
                    start: 0,
                    end: 0,
                    tokens: 200,
                    embedding: v,
                }
            })
            .collect();
        let vectors: Vec<Vec<f32>> = chunks.iter().map(|c| c.embedding.clone()).collect();
        // Stored and marked ready in one step.
        let ids = store.store_chunks(&id, chunks, 0).await.unwrap().ids;
        exact.add(
            ids.into_iter()
                .zip(vectors)
                .map(|(chunk_id, vector)| ChunkVector {
                    owner: ME.get(),
                    chunk_id,
                    document_id: id.clone(),
                    collection_id: None,
                    vector,
                })
                .collect(),
        );
    }
    if let Backend::Postgres(server) = backend {
        // What autovacuum's ANALYZE does within a minute of a bulk insert, done at once: the
        // planner's statistics, which keyword search reads to leave very common words out.
        let mut conn = sqlx::PgConnection::connect(&format!("{server}/bench_{n}"))
            .await
            .unwrap();
        sqlx::query("ANALYZE chunks").execute(&mut conn).await.unwrap();
    }
    let dims = embedder.dimensions();
    let search: Arc<dyn VectorSearch> = match in_database {
        Some(v) => v,
        None => exact.clone(),
    };
    let probe: Vec<f32> = (0..dims).map(|_| rng.unit() / (dims as f32).sqrt()).collect();
    let t = Instant::now();
    search.nearest(ME, &probe, Scope::ALL, 20).await.unwrap();
    let first_search_secs = t.elapsed().as_secs_f64();
    let retriever = Retriever::new(
        Arc::clone(&store),
        embedder,
        Arc::clone(&search),
        RagSettings::default(),
    );
    let (mut whole, mut vector, mut keyword, mut recall) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for q in 0..220 {
        let question = sentence(&mut rng, &words, 8);
        let t = Instant::now();
        let ask = Ask {
            owner: ME,
            question: &question,
            history: &[],
            scope: Scope::ALL,
        };
        let _ = retriever.retrieve(ask, None).await.unwrap();
        let e2e = t.elapsed().as_secs_f64() * 1000.0;
        let mut query: Vec<f32> = (0..dims).map(|_| rng.unit()).collect();
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        query.iter_mut().for_each(|x| *x /= norm);
        let t = Instant::now();
        let found = search.nearest(ME, &query, Scope::ALL, 20).await.unwrap();
        let v = t.elapsed().as_secs_f64() * 1000.0;
        let truth = exact.search(ME, &query, Scope::ALL, 20);
        let hits = found
            .iter()
            .filter(|(id, _)| truth.iter().any(|(t, _)| t == id))
            .count();
        let t = Instant::now();
        let _ = store.keyword_search(ME, &question, Scope::ALL, 20).await.unwrap();
        let k = t.elapsed().as_secs_f64() * 1000.0;
        if q >= 20 {
            // the first 20 warm up
            whole.push(e2e);
            vector.push(v);
            keyword.push(k);
            recall.push(hits as f64 / truth.len().max(1) as f64);
        }
    }
    Measured {
        whole: summary(whole),
        vector: summary(vector),
        keyword: summary(keyword),
        recall: recall.iter().sum::<f64>() / recall.len() as f64,
        first_search_secs,
    }
}

#[tokio::main]
async fn main() {
    let settings = Settings::load().unwrap_or_default();
    let dir = settings.embedding_model_dir();
    let scratch = std::env::temp_dir().join(format!("stoa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let embedder: Arc<dyn Embedder> = Arc::new(LocalEmbedder::load(&dir, &scratch).expect("make models"));

    let (chunks, secs) = ingestion(Arc::clone(&embedder), &scratch).await;
    let mut report = String::from("# Documents benchmark\n\n");
    let (cores, cpu) = machine::machine();
    report.push_str(&format!(
        "Machine: {cpu}, {cores} cores. Release build. Embedding model: all-MiniLM-L6-v2 (llama.cpp, CPU).\n\n"
    ));
    report.push_str("## Ingestion (real pipeline, evaluation documents x6)\n\n| chunks | seconds | chunks/s |\n|---:|---:|---:|\n");
    report.push_str(&format!(
        "| {chunks} | {secs:.1} | {:.1} |\n\n",
        chunks as f64 / secs
    ));
    report.push_str(
        "## Retrieval (synthetic corpus, 200 queries after 20 warm-up)\n\n\
         End to end = query embedding + keyword search + vector search + fusion + re-scoring + passage fetch. \
         Recall@20: share of the exact 20 nearest chunks the vector search returns. First search: on PostgreSQL it \
         builds the HNSW index (m 16, ef_construction 64).\n\n\
         | chunks | backend | end to end p50 ms | p99 ms | vector search p50 ms | p99 ms | recall@20 | keyword p50 ms | p99 ms | first search s |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let postgres = Postgres::start(55499);
    let mut backends = vec![Backend::Sqlite];
    backends.extend(postgres.as_ref().map(|p| Backend::Postgres(p.url.clone())));
    // BENCH_RAG_SIZES=10000,100000,1000000 for the 1M row (hours on 2 cores).
    let sizes: Vec<usize> = std::env::var("BENCH_RAG_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    for &n in &sizes {
        for backend in &backends {
            let m = retrieval(Arc::clone(&embedder), &scratch, n, backend).await;
            let ((e50, e99), (v50, v99), (k50, k99)) = (m.whole, m.vector, m.keyword);
            report.push_str(&format!(
                "| {n} | {} | {e50:.1} | {e99:.1} | {v50:.1} | {v99:.1} | {:.3} | {k50:.1} | {k99:.1} | {:.1} |\n",
                backend.name(),
                m.recall,
                m.first_search_secs
            ));
            eprintln!(
                "{n} chunks, {}: end to end p50 {e50:.1} ms; vector p50 {v50:.1} (recall {:.3}); keyword p50 {k50:.1}",
                backend.name(),
                m.recall
            );
        }
    }
    drop(postgres);
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{report}");
    std::fs::write("bench/results/rag.md", report).unwrap();
}
