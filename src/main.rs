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
        /// Print retrieval quality (recall@k, MRR) on the labelled set in bench/rag-eval.
        EvalRag {
            /// Passages retrieved per question.
            #[arg(default_value_t = 4)]
            k: usize,
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
            Command::EvalRag { k } => startup::eval_rag(k).await,
        }
    });
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
