//! Logging: `tracing` with an env filter, pretty for people or JSON for machines.
//! Every HTTP request runs in a span carrying its request id (see `startup`).

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use super::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Calling it twice is harmless (the second is ignored),
/// which keeps tests that start several servers simple.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true))
            .try_init(),
    };
    // Already installed (tests): keep the first one.
    let _ = result;
}
