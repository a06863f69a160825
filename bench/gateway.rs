//! Gateway overhead: Stoa's `/v1/chat/completions` against a FastAPI + Pydantic v2 +
//! uvicorn equivalent (bench/fastapi_baseline/), both relaying the same scripted
//! OpenAI-compatible upstream (bench/gateway/upstream.rs), side by side in one run.
//!
//! For 1, 64 and 1,000 concurrent streams: completed streams/s, time to first token and
//! gaps between tokens (each minus the same figure measured straight against the
//! upstream, so what is left is what the gateway adds), resident memory and CPU time.
//! `make bench-gateway` builds what it needs and runs it; results go to
//! bench/results/gateway.md and gateway.json.
//!
//! `cargo bench --bench gateway -- upstream PORT TOKENS INTERVAL_MS` runs the scripted
//! upstream alone (the benchmark starts it that way, as its own process).

#[path = "gateway/load.rs"]
mod load;
#[path = "common/machine.rs"]
mod machine;
#[path = "common/process.rs"]
mod process;
#[path = "gateway/upstream.rs"]
mod upstream;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use load::{Outcome, Window, mean, percentile};
use process::{Children, spawn, tree_usage, wait_ready};
use serde_json::json;

const UPSTREAM_PORT: u16 = 3990;
const STOA_PORT: u16 = 3991;
const FASTAPI_PORT: u16 = 3992;
const TOKENS: usize = 32;
const INTERVAL_MS: u64 = 20;
/// Concurrent streams, and whether the upstream paces its tokens. The last level is the
/// saturation test: tokens as fast as the upstream can send them.
const LEVELS: [(usize, bool); 4] = [(1, true), (64, true), (1000, true), (1000, false)];

struct Target {
    name: &'static str,
    url: String,
    model: &'static str,
    /// The gateway's process (its workers are its children); none for the upstream itself.
    pid: Option<u32>,
}

const TICKS_PER_SEC: f64 = 100.0;

struct Cell {
    target: &'static str,
    concurrency: usize,
    paced: bool,
    outcome: Outcome,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    cpu_secs: f64,
    wall_secs: f64,
}

async fn measure(target: &Target, (concurrency, paced): (usize, bool), idle_rss_kib: u64) -> Cell {
    let model = if paced {
        target.model.to_owned()
    } else {
        format!("{}{}", target.model, upstream::UNPACED)
    };
    let body = json!({
        "model": model, "stream": true, "temperature": 0.7, "max_tokens": 256,
        "messages": [{"role": "system", "content": "You are a terse assistant."},
                     {"role": "user", "content": "Write one sentence about the sea."}],
    })
    .to_string();
    let window = Window {
        warmup: Duration::from_secs(if concurrency >= 1000 { 4 } else { 2 }),
        measure: Duration::from_secs(if concurrency >= 1000 { 15 } else { 10 }),
    };
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = target.pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(tree_usage(pid).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let cpu_before = target.pid.map(|p| tree_usage(p).1).unwrap_or(0);
    let outcome = load::run(&target.url, &body, concurrency, &window).await;
    let cpu_after = target.pid.map(|p| tree_usage(p).1).unwrap_or(0);
    if let Some(s) = sampler {
        s.abort();
    }
    let peak = peak.load(Ordering::Relaxed);
    Cell {
        target: target.name,
        concurrency,
        paced,
        outcome,
        idle_rss_kib,
        peak_rss_kib: peak,
        cpu_secs: (cpu_after - cpu_before) as f64 / TICKS_PER_SEC,
        wall_secs: (window.warmup + window.measure).as_secs_f64(),
    }
}

fn stoa(bin: &Path, dir: &Path) -> Child {
    let config = upstream::stoa_config(dir, UPSTREAM_PORT);
    spawn(&mut process::stoa(bin, dir, &config, STOA_PORT), "stoa")
}

fn fastapi(python: &Path) -> Child {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    spawn(
        Command::new(python)
            .args(["-m", "uvicorn", "app:app", "--app-dir", "bench/fastapi_baseline"])
            .args(["--host", "127.0.0.1", "--port", &FASTAPI_PORT.to_string()])
            .args([
                "--workers",
                &workers.to_string(),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ])
            .args(["--no-access-log", "--log-level", "warning", "--backlog", "4096"])
            .env(
                "UPSTREAM_BASE_URL",
                format!("http://127.0.0.1:{UPSTREAM_PORT}/v1"),
            ),
        "uvicorn",
    )
}

fn f1(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.1}")
    }
}
fn f2(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.2}")
    }
}

fn main() {
    stoa::server::tls::install();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if args.first().map(String::as_str) == Some("upstream") {
            1
        } else {
            2
        })
        .enable_all()
        .build()
        .expect("a runtime");
    if args.first().map(String::as_str) == Some("upstream") {
        let num = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
        let script = upstream::Script {
            tokens: num(2, TOKENS as u64) as usize,
            interval: Duration::from_millis(num(3, INTERVAL_MS)),
        };
        rt.block_on(upstream::serve(num(1, UPSTREAM_PORT as u64) as u16, script));
        return;
    }
    rt.block_on(bench());
}

async fn bench() {
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bin = PathBuf::from(std::env::var("BENCH_STOA_BIN").unwrap_or(format!("{target_dir}/release/stoa")));
    let python = PathBuf::from(std::env::var("BENCH_PYTHON").expect("BENCH_PYTHON: the bench venv's python"));
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap_or("bench/results".into()));
    let dir = tempfile::tempdir().expect("a temp dir");

    let me = std::env::current_exe().expect("own path");
    let mut children = Children(vec![spawn(
        Command::new(me).args([
            "upstream",
            &UPSTREAM_PORT.to_string(),
            &TOKENS.to_string(),
            &INTERVAL_MS.to_string(),
        ]),
        "the scripted upstream",
    )]);
    wait_ready(
        &format!("http://127.0.0.1:{UPSTREAM_PORT}/v1/models"),
        "the upstream",
    )
    .await;
    children.0.push(stoa(&bin, dir.path()));
    children.0.push(fastapi(&python));
    wait_ready(&format!("http://127.0.0.1:{STOA_PORT}/v1/models"), "stoa").await;
    wait_ready(&format!("http://127.0.0.1:{FASTAPI_PORT}/v1/models"), "fastapi").await;

    let targets = [
        Target {
            name: "upstream (direct)",
            url: format!("http://127.0.0.1:{UPSTREAM_PORT}/v1/chat/completions"),
            model: "scripted",
            pid: None,
        },
        Target {
            name: "Stoa",
            url: format!("http://127.0.0.1:{STOA_PORT}/v1/chat/completions"),
            model: "bench/scripted",
            pid: Some(children.0[1].id()),
        },
        Target {
            name: "FastAPI",
            url: format!("http://127.0.0.1:{FASTAPI_PORT}/v1/chat/completions"),
            model: "scripted",
            pid: Some(children.0[2].id()),
        },
    ];
    // One short stream each before measuring: first requests pay for lazy set-up.
    for t in &targets {
        load::run(
            &t.url,
            &json!({"model": t.model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
            4,
            &Window {
                warmup: Duration::ZERO,
                measure: Duration::from_secs(2),
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<u64> = targets
        .iter()
        .map(|t| t.pid.map(|p| tree_usage(p).0).unwrap_or(0))
        .collect();

    let mut cells = Vec::new();
    for level in LEVELS {
        for (t, idle) in targets.iter().zip(&idle) {
            eprintln!(
                "== {} at {} concurrent streams (paced: {})",
                t.name, level.0, level.1
            );
            let cell = measure(t, level, *idle).await;
            eprintln!(
                "   {:.1} streams/s, {} ok, {} failed",
                cell.outcome.streams_per_sec, cell.outcome.completed, cell.outcome.failed
            );
            cells.push(cell);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    drop(children);
    report(&mut cells, &out);
}

fn report(cells: &mut [Cell], out: &Path) {
    let (cores, cpu) = machine::machine();
    let mut md = String::new();
    md += "# Gateway overhead (bench/gateway.rs)\n\n";
    md += &format!(
        "Run on {cores} cores ({cpu}); upstream, both gateways and the load client share them. \
         Scripted upstream: {TOKENS} content chunks, one every {INTERVAL_MS} ms. \
         Added = the gateway's figure minus the same figure straight against the upstream at the same concurrency.\n\n"
    );
    md += "| streams | target | streams/s | TTFT p50 ms | TTFT p99 ms | added TTFT p50 / p99 ms | gap mean / p99 ms | added gap mean ms | RSS idle → peak MiB | KiB per open stream | CPU (cores busy) | failed |\n";
    md += "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    let mut rows = Vec::new();
    for (level, paced) in LEVELS {
        let (mut base50, mut base99, mut base_gap) = (f64::NAN, f64::NAN, f64::NAN);
        for cell in cells
            .iter_mut()
            .filter(|c| c.concurrency == level && c.paced == paced)
        {
            let o = &mut cell.outcome;
            let (p50, p99) = (percentile(&mut o.ttft_ms, 50.0), percentile(&mut o.ttft_ms, 99.0));
            let gap_mean = mean(&o.gaps_ms);
            let gap99 = percentile(&mut o.gaps_ms, 99.0);
            let direct = cell.target.starts_with("upstream");
            if direct {
                (base50, base99, base_gap) = (p50, p99, gap_mean);
            }
            let per_stream_kib = if direct {
                f64::NAN
            } else {
                cell.peak_rss_kib.saturating_sub(cell.idle_rss_kib) as f64 / level as f64
            };
            let cores_busy = if direct {
                f64::NAN
            } else {
                cell.cpu_secs / cell.wall_secs
            };
            md += &format!(
                "| {level}{} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |\n",
                if paced { "" } else { " unpaced" },
                cell.target,
                f1(o.streams_per_sec),
                f2(p50),
                f2(p99),
                if direct {
                    "–".into()
                } else {
                    format!("{} / {}", f2(p50 - base50), f2(p99 - base99))
                },
                f2(gap_mean),
                f2(gap99),
                if direct {
                    "–".into()
                } else {
                    f2(gap_mean - base_gap)
                },
                if direct {
                    "–".into()
                } else {
                    format!(
                        "{:.0} → {:.0}",
                        cell.idle_rss_kib as f64 / 1024.0,
                        cell.peak_rss_kib as f64 / 1024.0
                    )
                },
                f1(per_stream_kib),
                f2(cores_busy),
                o.failed,
            );
            rows.push(json!({
                "concurrency": level, "paced": paced, "target": cell.target, "streams_per_sec": o.streams_per_sec,
                "ttft_p50_ms": p50, "ttft_p99_ms": p99, "added_ttft_p50_ms": if direct { None } else { Some(p50 - base50) },
                "added_ttft_p99_ms": if direct { None } else { Some(p99 - base99) }, "gap_mean_ms": gap_mean,
                "gap_p99_ms": gap99, "idle_rss_kib": cell.idle_rss_kib, "peak_rss_kib": cell.peak_rss_kib,
                "kib_per_stream": if direct { None } else { Some(per_stream_kib) }, "cpu_cores_busy": if direct { None } else { Some(cores_busy) },
                "completed": o.completed, "failed": o.failed,
            }));
        }
    }
    std::fs::create_dir_all(out).expect("the results directory");
    std::fs::write(
        out.join("gateway.json"),
        serde_json::to_string_pretty(
            &json!({"cores": cores, "cpu": cpu, "tokens": TOKENS, "interval_ms": INTERVAL_MS, "rows": rows}),
        )
        .unwrap(),
    )
    .expect("gateway.json");
    std::fs::write(out.join("gateway.md"), &md).expect("gateway.md");
    std::io::stdout().write_all(md.as_bytes()).expect("stdout");
}
