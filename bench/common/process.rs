//! Processes a benchmark starts: spawned quietly, awaited until they answer, measured
//! (memory and CPU of the whole process tree), and stopped however the benchmark ends.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// The release Stoa of a benchmark: providers from `config` only (no embedded model, no
/// embedder), limits out of the way, warnings only, on `port`, its data in `dir`.
pub fn stoa(bin: &Path, dir: &Path, config: &Path, port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("STOA_CONFIG", config)
        .env("STOA_SERVER__DATA_DIR", dir.join(format!("data-{port}")))
        .env("STOA_LOCAL_MODEL__ENABLED", "false")
        .env("STOA_EMBEDDING__ENABLED", "false")
        .env("STOA_LIMITS__GENERATIONS_PER_USER", "100000000")
        .env("STOA_LIMITS__GENERATIONS_PER_IP", "100000000")
        .env("STOA_LOG__FILTER", "warn")
        .env("LEPTOS_OUTPUT_NAME", "stoa")
        .env("LEPTOS_SITE_ROOT", dir)
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"));
    cmd
}

/// Resident memory (KiB) and CPU time (clock ticks) of a process and its descendants.
pub fn tree_usage(pid: u32) -> (u64, u64) {
    let mut rss = 0;
    let mut ticks = 0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            rss += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Fields after the command name: state is field 3, utime 14, stime 15.
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        let tasks = std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten();
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    (rss, ticks)
}

/// The processes the benchmark started, killed however it ends (a panic included).
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        // SIGTERM first: uvicorn's master then stops its workers too.
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn spawn(cmd: &mut Command, what: &str) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

pub async fn wait_ready(url: &str, what: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not answer on {url}");
}
