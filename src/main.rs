//! The `stoa` binary: `stoa` serves; `stoa backup FILE` copies the SQLite database online;
//! `stoa migrate-db FROM TO` copies SQLite into PostgreSQL;
//! `stoa eval-rag [k]` prints the retrieval evaluation.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => stoa::server::startup::run().await,
        Some("eval-rag") => stoa::server::startup::eval_rag(args.get(1).map(String::as_str)).await,
        Some("backup") => stoa::server::startup::backup(args.get(1).map(String::as_str)).await,
        Some("migrate-db") => {
            let arg = |i: usize| args.get(i).map(String::as_str);
            stoa::server::startup::migrate_db(arg(1), arg(2)).await
        }
        Some(other) => Err(format!(
            "unknown command '{other}'; use no argument to serve, backup FILE, migrate-db FROM TO, or eval-rag [k]"
        )
        .into()),
    };
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
