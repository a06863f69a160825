//! The `stoa` binary: `stoa` serves; `stoa backup FILE` copies the SQLite database online;
//! `stoa migrate-db FROM TO` copies SQLite into PostgreSQL;
//! `stoa eval-rag [k]` prints the retrieval evaluation. `stoa extract …` is the child
//! process the server reads each uploaded file in (never run by hand).

#[cfg(feature = "ssr")]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The extraction child runs before any runtime or thread exists: it limits itself and
    // reads one file.
    if args.first().map(String::as_str) == Some(stoa::server::rag::sandbox::SUBCOMMAND) {
        return stoa::server::rag::sandbox::child_main(&args[1..]);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stoa: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let arg = |i: usize| args.get(i).map(String::as_str);
        match arg(0) {
            None => stoa::server::startup::run().await,
            Some("eval-rag") => stoa::server::startup::eval_rag(arg(1)).await,
            Some("backup") => stoa::server::startup::backup(arg(1)).await,
            Some("migrate-db") => stoa::server::startup::migrate_db(arg(1), arg(2)).await,
            Some(other) => Err(format!(
                "unknown command '{other}'; use no argument to serve, backup FILE, migrate-db FROM TO, or eval-rag [k]"
            )
            .into()),
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
