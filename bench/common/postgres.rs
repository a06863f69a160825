//! A throw-away PostgreSQL with pgvector for a benchmark (`.ci/postgres.sh`, installed by
//! setup), on a loopback port, stopped and removed when dropped.

pub struct Postgres {
    /// The server's directory (`data/` in it).
    pub dir: std::path::PathBuf,
    /// `postgres://stoa@127.0.0.1:PORT` (add `/postgres` or another database).
    pub url: String,
}

impl Postgres {
    pub fn start(port: u16) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("stoa-bench-pg-{}-{port}", std::process::id()));
        let out = std::process::Command::new(".ci/postgres.sh")
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "PostgreSQL not started (run .ci/setup.sh): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Self {
            dir,
            url: format!("postgres://stoa@127.0.0.1:{port}"),
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(".ci/postgres.sh")
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}
