//! Embeddings: Stoa's local embedder (all-MiniLM-L6-v2 on llama.cpp, F16 matrices as Stoa
//! runs it and F32 for comparison; the bench target's release build) against Python sentence-transformers (torch, CPU) with the same weights (the same
//! model directory), the same texts and the same CPU, one after the other in one run.
//! Two sets: passages of ~200 tokens (Stoa's chunk size) and short sentences (~24 tokens,
//! queries). Each side: a warm-up, then RUNS timed passes in batches of 32; the median is
//! reported. Both sides' first vectors are compared (cosine), to show they compute the same.
//! `make bench-embeddings` runs it; results go to bench/results/embeddings.md and .json.

#[path = "common/machine.rs"]
mod machine;

use std::{path::PathBuf, process::Command, time::Instant};

use serde_json::{Value, json};
use stoa::server::embed::{Embedder, gguf::Precision, local::LocalEmbedder};

const RUNS: usize = 3;
const PASSAGES: usize = 256;
const SENTENCES: usize = 1024;

/// Text from the repository's own documents: README files and the evaluation documents.
fn words() -> Vec<String> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("bench/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir("bench/rag-eval/docs")
        .expect("bench/rag-eval/docs")
        .flatten()
        .map(|e| e.path())
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("a text file");
            text.split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric) && w.len() < 30)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `count` windows of about `tokens` model tokens, each starting `stride` words further.
fn windows(
    embedder: &LocalEmbedder,
    words: &[String],
    count: usize,
    tokens: usize,
    stride: usize,
) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    let mut start = 0;
    while out.len() < count {
        let from = start % words.len();
        let mut n = tokens;
        let take = |n: usize| {
            (0..n)
                .map(|i| words[(from + i) % words.len()].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut text = take(n);
        while embedder.count_tokens(&text) > tokens && n > 4 {
            n -= 2;
            text = take(n);
        }
        out.push(text);
        start += stride;
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let model_dir =
        PathBuf::from(std::env::var("STOA_MODEL_DIR").expect("STOA_MODEL_DIR")).join("all-MiniLM-L6-v2");
    let python = std::env::var("BENCH_PYTHON").expect("BENCH_PYTHON: the bench venv's python");
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap_or("bench/results".into()));
    let spare = tempfile::tempdir().expect("a temp dir");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let load = |precision| LocalEmbedder::load_with(&model_dir, spare.path(), precision, threads);
    let embedder = load(Precision::F16).expect("the embedding model");
    let words = words();
    let sets = [
        (
            "passages (~200 tokens)",
            windows(&embedder, &words, PASSAGES, 200, 37),
        ),
        (
            "sentences (~24 tokens)",
            windows(&embedder, &words, SENTENCES, 24, 11),
        ),
    ];
    let tmp = tempfile::tempdir().expect("a temp dir");
    let texts_path = tmp.path().join("texts.json");
    let py_out = tmp.path().join("python.json");
    let sets_json: serde_json::Map<String, Value> =
        sets.iter().map(|(n, t)| (n.to_string(), json!(t))).collect();
    std::fs::write(&texts_path, json!({ "sets": sets_json }).to_string()).expect("texts.json");

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let engines: Vec<(&str, Box<dyn Embedder>)> = vec![
        ("llama.cpp F16 (Stoa)", Box::new(embedder)),
        (
            "llama.cpp F32",
            Box::new(load(Precision::F32).expect("llama.cpp F32")),
        ),
    ];
    let embedder = &engines[0].1;
    let mut stoa = Vec::new();
    for (name, texts) in &sets {
        let tokens: usize = texts.iter().map(|t| embedder.count_tokens(t)).sum();
        for (engine, e) in &engines {
            rt.block_on(e.embed(texts[..64].to_vec())).expect("warm-up");
            let mut seconds = Vec::new();
            let mut first = Vec::new();
            for _ in 0..RUNS {
                let t = Instant::now();
                let out = rt.block_on(e.embed(texts.clone())).expect("embeddings");
                seconds.push(t.elapsed().as_secs_f64());
                first = out.vectors[..8].to_vec();
            }
            eprintln!("== Stoa ({engine}) {name}: {:.2} s", median(seconds.clone()));
            stoa.push((*name, *engine, texts.len(), tokens / texts.len(), seconds, first));
        }
    }

    let status = Command::new(&python)
        .arg("bench/embeddings.py")
        .arg(&model_dir)
        .arg(&texts_path)
        .arg(&py_out)
        .arg(RUNS.to_string())
        .status()
        .expect("python runs");
    assert!(status.success(), "bench/embeddings.py failed");
    let py: Value = serde_json::from_slice(&std::fs::read(&py_out).expect("python.json")).expect("json");

    let (cores, cpu) = machine::machine();
    let mut md = format!(
        "# Embeddings (bench/embeddings.rs)\n\nRun on {cores} cores ({cpu}). all-MiniLM-L6-v2, the same model directory for both; \
         batches of 32, normalised; median of {RUNS} passes after a warm-up. sentence-transformers {} on torch {} ({} threads, CPU).\n\n\
         | texts | count | mean tokens | Stoa engine | Stoa texts/s | sentence-transformers texts/s | ratio | cosine of the first 8 vectors (min) |\n\
         | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n",
        pkg_version(&python, "sentence_transformers"),
        py["torch"].as_str().unwrap_or("?"),
        py["threads"],
    );
    let mut rows = Vec::new();
    for (name, engine, count, mean_tokens, seconds, first) in stoa {
        let theirs = &py["sets"][name.to_string()];
        let py_secs: Vec<f64> = serde_json::from_value(theirs["seconds"].clone()).expect("seconds");
        let py_first: Vec<Vec<f32>> = serde_json::from_value(theirs["first"].clone()).expect("vectors");
        let cos = first
            .iter()
            .zip(&py_first)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
            .fold(f32::INFINITY, f32::min);
        let (ours, theirs) = (count as f64 / median(seconds), count as f64 / median(py_secs));
        md += &format!(
            "| {name} | {count} | {mean_tokens} | {engine} | {ours:.1} | {theirs:.1} | {:.2}× | {cos:.4} |\n",
            ours / theirs
        );
        rows.push(
            json!({"set": name, "engine": engine, "count": count, "mean_tokens": mean_tokens, "stoa_per_sec": ours,
            "sentence_transformers_per_sec": theirs, "ratio": ours / theirs, "min_cosine": cos}),
        );
    }
    std::fs::create_dir_all(&out).expect("results directory");
    std::fs::write(out.join("embeddings.md"), &md).expect("embeddings.md");
    std::fs::write(
        out.join("embeddings.json"),
        serde_json::to_string_pretty(&json!({"cores": cores, "cpu": cpu, "rows": rows})).expect("json"),
    )
    .expect("embeddings.json");
    print!("{md}");
}

fn pkg_version(python: &str, module: &str) -> String {
    Command::new(python)
        .args(["-c", &format!("import {module}; print({module}.__version__)")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
