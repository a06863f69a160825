//! Chat throughput with one Stoa replica against two, behind the same nginx, on one
//! PostgreSQL, under the same load, in one run.
//!
//! Each answer goes the whole stored chat path (`POST /api/v1/conversations/{id}/messages`
//! with `stream: true`: the question and the answer are stored, the answer saved while it
//! streams and finished with its usage), its tokens coming from the scripted upstream of
//! the gateway benchmark (32 tokens 20 ms apart), so what is measured is Stoa and its
//! database, not a model. Each client starts a new conversation every few turns.
//! `make bench-replicas` builds what it needs and runs it; results go to
//! bench/results/replicas.md and replicas.json.

#[path = "common/machine.rs"]
mod machine;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/process.rs"]
mod process;
#[path = "gateway/upstream.rs"]
mod upstream;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use futures::StreamExt;
use process::{Children, spawn, tree_usage, wait_ready};
use serde_json::json;

const UPSTREAM_PORT: u16 = 3970;
const REPLICA_PORTS: [u16; 2] = [3971, 3972];
/// nginx: one port in front of the first replica only, one in front of both.
const PROXY_ONE: u16 = 3973;
const PROXY_TWO: u16 = 3974;
const PG_PORT: u16 = 55498;
const TOKENS: usize = 32;
const INTERVAL_MS: u64 = 20;
/// Clients, and whether the upstream paces its tokens. Clients wait for each answer before
/// asking the next question, so paced levels below saturation only show the pacing; the
/// last two saturate the machine.
const LEVELS: [(usize, bool); 3] = [(64, true), (1000, true), (256, false)];
/// Turns per conversation before a client starts a new one.
const TURNS: usize = 4;
const WARMUP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(12);

fn replica(bin: &Path, dir: &Path, port: u16, database: &str) -> Child {
    let config = upstream::stoa_config(dir, UPSTREAM_PORT);
    spawn(
        process::stoa(bin, dir, &config, port).env("STOA_DATABASE__URL", database),
        "stoa",
    )
}

fn nginx(dir: &Path) -> Child {
    let upstream = |name: &str, ports: &[u16]| {
        let servers: String = ports.iter().map(|p| format!("server 127.0.0.1:{p};\n")).collect();
        format!("upstream {name} {{\n{servers}keepalive 256;\n}}\n")
    };
    let server = |port: u16, name: &str| {
        format!(
            "server {{\nlisten 127.0.0.1:{port} backlog=4096;\nlocation / {{\nproxy_pass http://{name};\n\
             proxy_http_version 1.1;\nproxy_set_header Connection \"\";\nproxy_set_header Host $http_host;\n\
             proxy_buffering off;\nproxy_request_buffering off;\nproxy_read_timeout 300s;\n}}\n}}\n"
        )
    };
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\nworker_rlimit_nofile 65536;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log error;\nevents {{ worker_connections 16384; }}\nhttp {{\naccess_log off;\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{}{}{}{}}}\n",
        upstream("one", &REPLICA_PORTS[..1]),
        upstream("two", &REPLICA_PORTS),
        server(PROXY_ONE, "one"),
        server(PROXY_TWO, "two"),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("nginx.conf");
    let error_log = dir.join("nginx-error.log");
    spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&path),
        "nginx (run .ci/setup.sh)",
    )
}

/// One client's answers: when each ended, its time to the first token, and whether it
/// ended with `done` (complete).
struct Answer {
    started: Instant,
    ended: Instant,
    ttft: Option<Duration>,
    ok: bool,
}

async fn conversation(client: &reqwest::Client, base: &str) -> Option<String> {
    let res = client
        .post(format!("{base}/api/v1/conversations"))
        .json(&json!({"title": "bench"}))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = res.json().await.ok()?;
    body["id"].as_str().map(str::to_owned)
}

async fn answer(client: &reqwest::Client, base: &str, conversation: &str, model: &str) -> Answer {
    let started = Instant::now();
    let mut a = Answer {
        started,
        ended: started,
        ttft: None,
        ok: false,
    };
    let res = client
        .post(format!("{base}/api/v1/conversations/{conversation}/messages"))
        .json(&json!({
            "message": "Write one sentence about the sea.",
            "model": model,
            "stream": true,
            "trim_history": true,
            "params": {"temperature": 0.7, "max_tokens": 256},
        }))
        .send()
        .await;
    if let Ok(res) = res
        && res.status().is_success()
    {
        let mut seen = String::new();
        let mut bytes = res.bytes_stream();
        while let Some(Ok(part)) = bytes.next().await {
            seen.push_str(&String::from_utf8_lossy(&part));
            if a.ttft.is_none() && seen.contains("event: token") {
                a.ttft = Some(started.elapsed());
            }
        }
        a.ok = seen.contains("event: done") && seen.contains("\"status\":\"complete\"");
    }
    a.ended = Instant::now();
    a
}

struct Cell {
    replicas: usize,
    concurrency: usize,
    paced: bool,
    answers_per_sec: f64,
    ttft_p50: f64,
    ttft_p99: f64,
    failed: usize,
    /// CPU seconds per second of the window: replicas, PostgreSQL, nginx.
    cpu: [f64; 3],
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((p / 100.0) * (values.len() - 1) as f64).round() as usize]
}

/// CPU ticks of each group of processes.
fn cpu_ticks(groups: &[Vec<u32>; 3]) -> [u64; 3] {
    [0, 1, 2].map(|i| groups[i].iter().map(|&p| tree_usage(p).1).sum())
}

async fn measure(
    base: &str,
    replicas: usize,
    (concurrency, paced): (usize, bool),
    pids: &[Vec<u32>; 3],
) -> Cell {
    let model = if paced {
        "bench/scripted".to_owned()
    } else {
        format!("bench/scripted{}", upstream::UNPACED)
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .expect("a client");
    let t0 = Instant::now();
    let (from, to) = (t0 + WARMUP, t0 + WARMUP + MEASURE);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, base, model) = (client.clone(), base.to_owned(), model.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                let mut turn = 0;
                let mut conv = None;
                while Instant::now() < to {
                    if turn % TURNS == 0 {
                        conv = conversation(&client, &base).await;
                    }
                    turn += 1;
                    match &conv {
                        Some(c) => done.push(answer(&client, &base, c, &model).await),
                        None => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                done
            })
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let before = cpu_ticks(pids);
    tokio::time::sleep_until(to.into()).await;
    let cpu_after = cpu_ticks(pids);
    let mut ttft = Vec::new();
    let (mut ended, mut failed) = (0usize, 0usize);
    for w in workers {
        for a in w.await.expect("a client") {
            if a.ended >= from && a.ended <= to {
                ended += usize::from(a.ok);
                failed += usize::from(!a.ok);
            }
            if a.ok && a.started >= from && a.ended <= to {
                ttft.extend(a.ttft.map(|d| d.as_secs_f64() * 1000.0));
            }
        }
    }
    let secs = MEASURE.as_secs_f64();
    Cell {
        replicas,
        concurrency,
        paced,
        answers_per_sec: ended as f64 / secs,
        ttft_p50: percentile(&mut ttft, 50.0),
        ttft_p99: percentile(&mut ttft, 99.0),
        failed,
        cpu: [0, 1, 2].map(|i| (cpu_after[i] - before[i]) as f64 / 100.0 / secs),
    }
}

/// The PostgreSQL server (its backends are its children): the first line of postmaster.pid.
fn postgres_pid(pg: &postgres::Postgres) -> Vec<u32> {
    std::fs::read_to_string(pg.dir.join("data/postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse().ok())
        .into_iter()
        .collect()
}

fn main() {
    stoa::server::tls::install();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let upstream_only = args.first().map(String::as_str) == Some("upstream");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if upstream_only { 1 } else { 2 })
        .enable_all()
        .build()
        .expect("a runtime");
    if upstream_only {
        let script = upstream::Script {
            tokens: TOKENS,
            interval: Duration::from_millis(INTERVAL_MS),
        };
        rt.block_on(upstream::serve(UPSTREAM_PORT, script));
        return;
    }
    rt.block_on(bench());
}

async fn bench() {
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bin = PathBuf::from(std::env::var("BENCH_STOA_BIN").unwrap_or(format!("{target_dir}/release/stoa")));
    let out = PathBuf::from(std::env::var("BENCH_OUT").unwrap_or("bench/results".into()));
    let dir = tempfile::tempdir().expect("a temp dir");
    let pg = postgres::Postgres::start(PG_PORT).expect("PostgreSQL for the benchmark");
    let database = format!("{}/postgres", pg.url);

    let me = std::env::current_exe().expect("own path");
    let mut children = Children(vec![spawn(
        Command::new(me).arg("upstream"),
        "the scripted upstream",
    )]);
    wait_ready(
        &format!("http://127.0.0.1:{UPSTREAM_PORT}/v1/models"),
        "the upstream",
    )
    .await;
    // One after the other: the first runs the migrations.
    for port in REPLICA_PORTS {
        children.0.push(replica(&bin, dir.path(), port, &database));
        wait_ready(&format!("http://127.0.0.1:{port}/readyz"), "a replica").await;
    }
    children.0.push(nginx(dir.path()));
    for port in [PROXY_ONE, PROXY_TWO] {
        wait_ready(&format!("http://127.0.0.1:{port}/healthz"), "nginx").await;
    }
    let replica_pids = [children.0[1].id(), children.0[2].id()];
    let nginx_pid = children.0[3].id();

    let mut cells = Vec::new();
    for level in LEVELS {
        for (replicas, port) in [(1, PROXY_ONE), (2, PROXY_TWO)] {
            let pids = [
                replica_pids[..replicas].to_vec(),
                postgres_pid(&pg),
                vec![nginx_pid],
            ];
            let base = format!("http://127.0.0.1:{port}");
            let cell = measure(&base, replicas, level, &pids).await;
            eprintln!(
                "{replicas} replica(s), {} clients, paced {}: {:.1} answers/s, ttft p50 {:.1} ms p99 {:.1} ms, failed {}",
                level.0, level.1, cell.answers_per_sec, cell.ttft_p50, cell.ttft_p99, cell.failed
            );
            cells.push(cell);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    drop(children);
    drop(pg);
    write_results(&out, &cells);
}

fn write_results(out: &Path, cells: &[Cell]) {
    let (cores, cpu) = machine::machine();
    let mut md = format!(
        "# Chat throughput: one replica against two (bench/replicas.rs)\n\n\
         Machine: {cpu}, {cores} cores; everything on it: the load client, nginx, the replicas \
         (release build), PostgreSQL 18 + pgvector, the scripted upstream ({TOKENS} tokens, \
         {INTERVAL_MS} ms apart). Each answer is a stored chat turn streamed through nginx; \
         {}s warm-up, {}s measured per cell.\n\n\
         | clients | upstream | replicas | answers/s | ratio | TTFT p50 ms | TTFT p99 ms | failed | CPU replicas | CPU PostgreSQL | CPU nginx |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        WARMUP.as_secs(),
        MEASURE.as_secs()
    );
    for pair in cells.chunks(2) {
        let one = pair[0].answers_per_sec;
        for c in pair {
            md.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.2}× | {:.1} | {:.1} | {} | {:.2} | {:.2} | {:.2} |\n",
                c.concurrency,
                if c.paced { "paced" } else { "unpaced" },
                c.replicas,
                c.answers_per_sec,
                c.answers_per_sec / one,
                c.ttft_p50,
                c.ttft_p99,
                c.failed,
                c.cpu[0],
                c.cpu[1],
                c.cpu[2]
            ));
        }
    }
    md.push_str("\nCPU columns: cores busy on average over the measured window (1.00 = one core).\n");
    let json: Vec<_> = cells
        .iter()
        .map(|c| {
            json!({"replicas": c.replicas, "concurrency": c.concurrency, "paced": c.paced, "answers_per_sec": c.answers_per_sec,
                   "ttft_p50_ms": c.ttft_p50, "ttft_p99_ms": c.ttft_p99, "failed": c.failed,
                   "cpu_replicas": c.cpu[0], "cpu_postgres": c.cpu[1], "cpu_nginx": c.cpu[2]})
        })
        .collect();
    std::fs::create_dir_all(out).expect("the results directory");
    std::fs::write(out.join("replicas.md"), &md).expect("replicas.md");
    let mut f = std::fs::File::create(out.join("replicas.json")).expect("replicas.json");
    writeln!(f, "{}", serde_json::to_string_pretty(&json).unwrap()).unwrap();
    print!("{md}");
}
