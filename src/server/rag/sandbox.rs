//! Text extraction in a child process. Uploaded files are hostile input: a parser may
//! recurse until the stack overflows, a PDF may inflate a few kilobytes into gigabytes, a
//! page may take minutes. So the server never parses them itself: it runs its own binary
//! as `stoa extract KIND` with the file on stdin, under an address-space cap
//! (`RLIMIT_DATA`), a processor-time limit (`RLIMIT_CPU`) and no files to write, in a
//! process group of its own (with the programs it runs: poppler, Tesseract, which inherit
//! its limits), and kills the group after a wall-clock timeout without a sign of progress,
//! or when the document is cancelled. Whatever the child does, the server keeps its
//! memory and keeps serving; the document fails with a reason a person can act on.
//!
//! Every format plugs in here: the child calls [`super::extract::extract`].

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::extract::{Extracted, Kind, Ocr, extract_with};

/// The subcommand the child runs.
pub const SUBCOMMAND: &str = "extract";

/// How the child is run and bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    /// The `stoa` binary: this process's own executable (tests and benchmarks, whose own
    /// binary is not Stoa, name it).
    pub program: PathBuf,
    /// Writable memory the child may map, in MiB.
    pub memory_mb: u32,
    /// Processor time the child may use, in seconds.
    pub cpu_secs: u32,
    /// Wall-clock time before the child is killed, in seconds.
    pub timeout_secs: u32,
    /// Most text (as JSON) the child may hand back, in bytes.
    pub max_output_bytes: usize,
    /// Tesseract's languages (`eng`, `deu+eng`); empty: no OCR.
    pub ocr_languages: String,
}

/// A child reading a file for longer than this many times its timeout is stopped even
/// while it reports progress (an OCR of hundreds of pages).
const MAX_TIMEOUTS: u32 = 30;

/// Kills the child's process group (it and the programs it started) unless disarmed: on a
/// timeout, and when the document is cancelled and the reading dropped.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// What the child writes on stdout: one JSON object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Extracted(Extracted),
    Failed(String),
}

impl Sandbox {
    /// The child as the settings bound it: this executable unless `extractor` names one.
    pub fn from_settings(settings: &crate::server::config::RagSettings) -> Result<Self, String> {
        let program = match &settings.extractor {
            Some(program) => program.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find Stoa's own executable to read uploads with: {e}"))?,
        };
        Ok(Self {
            program,
            memory_mb: settings.extract_memory_mb,
            cpu_secs: settings.extract_cpu_secs,
            timeout_secs: settings.extract_timeout_secs,
            // Room for the text of a whole upload several times over, as JSON.
            max_output_bytes: settings.max_upload_bytes().saturating_mul(4).max(16 * 1_048_576),
            ocr_languages: settings.ocr_languages.clone(),
        })
    }

    /// Extracts `bytes` in a child process. Errors are reasons for the user, e.g. "the
    /// file needs more than 1024 MB to read". `progress` hears (pages read, pages to read)
    /// while scanned pages are read by OCR.
    pub async fn extract(
        &self,
        kind: Kind,
        bytes: Vec<u8>,
        progress: &(dyn Fn(u32, u32) + Send + Sync),
    ) -> Result<Extracted, String> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(SUBCOMMAND)
            .arg(kind.name())
            .arg(self.memory_mb.to_string())
            .arg(self.cpu_secs.to_string())
            .arg(&self.ocr_languages)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A process group of its own from the start, so that killing the group never
            // misses a program it started.
            .process_group(0)
            .kill_on_drop(true);
        // Where the child finds poppler and Tesseract.
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        let mut child = command.spawn().map_err(|e| {
            tracing::error!(program = %self.program.display(), error = %e, "cannot start the extraction process");
            "the file could not be read: the server could not start its reader".to_owned()
        })?;
        let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the file could not be read: the server could not start its reader".into());
        };
        let feed = async move {
            // The child may stop reading (it failed early); that is not an error here.
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let limit = self.max_output_bytes as u64;
        let read_out = async move {
            let mut out = Vec::new();
            // One byte past the limit tells a reply that is too long from one that fits.
            let _ = stdout.take(limit + 1).read_to_end(&mut out).await;
            out
        };
        let started = tokio::time::Instant::now();
        // Milliseconds from `started` to the child's last progress report.
        let last_progress = std::sync::atomic::AtomicU64::new(0);
        let read_err = async {
            let mut err = String::new();
            let mut lines = tokio::io::BufReader::new(stderr.take(16 << 20)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(report) = line.strip_prefix(PROGRESS) {
                    let mut numbers = report.split(' ').filter_map(|n| n.parse::<u32>().ok());
                    if let (Some(done), Some(total)) = (numbers.next(), numbers.next()) {
                        last_progress.store(
                            started.elapsed().as_millis() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        progress(done, total);
                    }
                } else if let Some(note) = line.strip_prefix(NOTE) {
                    tracing::warn!(note, "a file was read in part");
                } else if err.len() < 16 * 1024 {
                    err.push_str(&line);
                    err.push('\n');
                }
            }
            err
        };
        let timeout = Duration::from_secs(u64::from(self.timeout_secs.max(1)));
        let finished = {
            let run = async {
                let ((), out, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
                (out, err, status)
            };
            tokio::pin!(run);
            // The timeout counts from the last sign of progress, up to MAX_TIMEOUTS in all.
            let mut deadline = started + timeout;
            loop {
                tokio::select! {
                    done = &mut run => break Some(done),
                    () = tokio::time::sleep_until(deadline) => {
                        let last = started
                            + Duration::from_millis(last_progress.load(std::sync::atomic::Ordering::Relaxed));
                        if last + timeout > deadline && started.elapsed() < timeout * MAX_TIMEOUTS {
                            deadline = last + timeout;
                        } else {
                            break None;
                        }
                    }
                }
            }
        };
        let Some((out, err, status)) = finished else {
            drop(group);
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!(
                "reading the file took longer than {} s; it was stopped",
                self.timeout_secs
            ));
        };
        // The child has exited; its group is not ours to signal any more.
        group.0 = None;
        if out.len() as u64 > limit {
            let _ = child.start_kill();
            return Err(format!(
                "the file holds more than {} MB of text",
                self.max_output_bytes / 1_048_576
            ));
        }
        let status = status.map_err(|e| format!("the file could not be read: {e}"))?;
        let stderr = err;
        if !status.success() {
            return Err(self.crash_reason(status, &stderr));
        }
        // Up to tens of megabytes of JSON: parsed off the async threads.
        let reply = tokio::task::spawn_blocking(move || serde_json::from_slice::<Reply>(&out))
            .await
            .map_err(|_| "the file could not be read: its reader's answer was lost".to_owned())?;
        match reply {
            Ok(Reply::Extracted(e)) => Ok(e),
            Ok(Reply::Failed(reason)) => Err(reason),
            Err(e) => {
                tracing::error!(error = %e, stderr = %stderr, "unreadable reply from the extraction process");
                Err("the file could not be read: its reader gave no usable answer".into())
            }
        }
    }

    /// Why a child that did not exit cleanly stopped, in words for the user; the
    /// details go to the log.
    fn crash_reason(&self, status: std::process::ExitStatus, stderr: &str) -> String {
        use std::os::unix::process::ExitStatusExt;
        let signal = status.signal();
        tracing::warn!(?signal, code = ?status.code(), stderr = %stderr.chars().take(2000).collect::<String>(), "the extraction process stopped");
        let out_of_memory = stderr.contains("memory allocation of")
            || stderr.contains("capacity overflow")
            || stderr.contains("out of memory");
        if out_of_memory {
            return format!("the file needs more than {} MB of memory to read", self.memory_mb);
        }
        if stderr.contains("overflowed its stack") {
            return "the file could not be read: it is nested too deeply".into();
        }
        match signal.and_then(|s| nix::sys::signal::Signal::try_from(s).ok()) {
            Some(nix::sys::signal::Signal::SIGXCPU | nix::sys::signal::Signal::SIGKILL) => format!(
                "reading the file took more than {} s of processor time; it was stopped",
                self.cpu_secs
            ),
            _ => "the file could not be read: it is malformed (its reader stopped)".into(),
        }
    }
}

/// The child's progress lines on stderr: `stoa-progress DONE TOTAL`.
const PROGRESS: &str = "stoa-progress ";
/// The child's notes on what it left out: `stoa-note TEXT`.
const NOTE: &str = "stoa-note ";

/// `stoa extract KIND MEMORY_MB CPU_SECS [OCR_LANGUAGES]`: the child. Limits itself, reads
/// the file from stdin, writes one [`Reply`] on stdout and its progress on stderr. Runs
/// before any async runtime or thread starts.
pub fn child_main(args: &[String]) -> std::process::ExitCode {
    let usage = || {
        eprintln!(
            "usage: stoa extract KIND MEMORY_MB CPU_SECS [OCR_LANGUAGES] < FILE (the server runs this itself)"
        );
        std::process::ExitCode::from(2)
    };
    let (Some(kind), Some(memory_mb), Some(cpu_secs)) = (
        args.first().and_then(|k| Kind::from_name(k)),
        args.get(1).and_then(|m| m.parse::<u64>().ok()),
        args.get(2).and_then(|c| c.parse::<u64>().ok()),
    ) else {
        return usage();
    };
    let languages = args.get(3).map_or("eng", String::as_str);
    if let Err(e) = limit_self(memory_mb, cpu_secs) {
        eprintln!("stoa extract: cannot set limits: {e}");
        return std::process::ExitCode::from(3);
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("stoa extract: cannot read the file: {e}");
        return std::process::ExitCode::from(3);
    }
    let ocr = Ocr {
        languages,
        progress: &|done, total| eprintln!("{PROGRESS}{done} {total}"),
        note: &|note| eprintln!("{NOTE}{note}"),
    };
    let reply = match extract_with(kind, &bytes, &ocr) {
        Ok(e) => Reply::Extracted(e),
        // Readers that allocate with `try_reserve` (the PDF reader's inflate does) give up
        // quietly at the cap and report an empty file; one that got this close to the cap
        // ran out of memory. (Growing buffers double, so a failed step leaves the peak at
        // about half the cap.)
        Err(_) if peak_memory_mb() * 100 >= memory_mb * 45 => Reply::Failed(format!(
            "the file needs more than {memory_mb} MB of memory to read"
        )),
        Err(reason) => Reply::Failed(reason),
    };
    drop(bytes);
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &reply).map(|()| out.flush()) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::from(3),
    }
}

/// The most memory this process has held, in MiB (`VmHWM`).
fn peak_memory_mb() -> u64 {
    memory_mb("VmHWM").unwrap_or(0)
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`…), in MiB.
pub(crate) fn memory_mb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// Caps writable memory and processor time; no core files, no files written; a lower
/// scheduling priority than the server's, so that a chat answer goes first on busy cores.
fn limit_self(memory_mb: u64, cpu_secs: u64) -> nix::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    rustix::process::nice(10).map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))?;
    let memory = memory_mb.saturating_mul(1_048_576);
    setrlimit(Resource::RLIMIT_DATA, memory, memory)?;
    // Past the soft limit the kernel sends SIGXCPU (which ends the process); the hard
    // limit one second later kills it should that signal be ignored.
    setrlimit(Resource::RLIMIT_CPU, cpu_secs, cpu_secs + 1)?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    setrlimit(Resource::RLIMIT_FSIZE, 0, 0)?;
    Ok(())
}
