//! The `stoa` binary: `stoa` (or `stoa serve`) serves; `stoa backup FILE` copies the SQLite
//! database online; `stoa migrate-db FROM TO` copies SQLite into PostgreSQL; `stoa eval-rag
//! [K]` prints the retrieval evaluation. `stoa extract …` is the child process the server
//! reads each uploaded file in (never run by hand). `stoa --help` says the same.

#[cfg(feature = "ssr")]
mod cli {
    use clap::{Parser, Subcommand};

    /// Stoa: a self-hosted AI chat that answers from your documents.
    ///
    /// Settings come from ./stoa.toml (or the file STOA_CONFIG names) and STOA_* variables;
    /// docs/configuration.md lists them.
    #[derive(Parser)]
    #[command(name = "stoa", version)]
    pub struct Cli {
        #[command(subcommand)]
        pub command: Option<Command>,
    }

    #[derive(Subcommand)]
    pub enum Command {
        /// Serve the web app and the APIs (what `stoa` without a command does).
        Serve,
        /// Copy the SQLite database, while Stoa runs, into a new file.
        Backup {
            /// The copy to write (must not exist).
            file: std::path::PathBuf,
        },
        /// Copy a SQLite database into PostgreSQL (run again after an interruption: nothing
        /// is doubled).
        MigrateDb {
            /// sqlite://PATH/stoa.db
            from: String,
            /// postgres://USER@HOST/DB
            to: String,
        },
        /// Print retrieval quality (recall, MRR, abstention, source precision per kind of
        /// question, against keyword-only and vector-only search) on the labelled set in
        /// bench/eval (fetch its documents first: bench/eval/fetch.sh).
        EvalRag {
            /// Also write every question's outcome under every set-up here, as JSON lines.
            #[arg(long)]
            dump: Option<std::path::PathBuf>,
            /// Only the set-ups whose name contains this (e.g. `default`).
            #[arg(long)]
            only: Option<String>,
            /// Also the pipeline with each re-ranker that runs here (slow: minutes).
            #[arg(long)]
            rerankers: bool,
        },
    }
}

#[cfg(feature = "ssr")]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    use cli::{Cli, Command};
    use stoa::server::{rag::sandbox, startup};

    // The extraction child runs before any runtime or thread exists: it limits itself and
    // reads one file.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(sandbox::SUBCOMMAND) {
        return sandbox::child_main(&args[1..]);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stoa: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => startup::run().await,
            Command::Backup { file } => startup::backup(&file).await,
            Command::MigrateDb { from, to } => startup::migrate_db(&from, &to).await,
            Command::EvalRag {
                dump,
                only,
                rerankers,
            } => startup::eval_rag(dump.as_deref(), only.as_deref(), rerankers).await,
        }
    });
    // Work still running on blocking threads (a batch being embedded, a text being split)
    // has been told to stop with the tasks that owned it; it gets a moment, not a veto.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stoa: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser bundle is built from the library (see `hydrate`); this binary needs `ssr`.
}
