//! Logging: `tracing` with an env filter, pretty for people or JSON for machines.
//! Every HTTP request runs in a span carrying its request id (see `startup`).
//!
//! OpenTelemetry: when the standard variables name a collector (`OTEL_EXPORTER_OTLP_ENDPOINT`
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), the same spans are exported as traces over
//! OTLP/HTTP (protobuf), batched on a background thread. `OTEL_SERVICE_NAME` (default
//! `stoa`), `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` apply;
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use super::config::{LogFormat, LogSettings};

/// What must be flushed before the process exits.
#[derive(Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces {
            // The exporter's blocking HTTP client must not run on the async runtime.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// Installs the global subscriber. Calling it twice is harmless (the second is ignored),
/// which keeps tests that start several servers simple.
pub fn init(settings: &LogSettings) -> Telemetry {
    super::tls::install();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let traces = otlp_traces();
    // Spans at info and above, whatever the log filter; never the exporter's own HTTP
    // client (its requests would be traced, exported, traced…).
    let otel = traces.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("stoa"))
            .with_filter(EnvFilter::new(
                "info,h2=off,hyper=off,hyper_util=off,reqwest=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off",
            ))
    });
    let registry = tracing_subscriber::registry().with(otel);
    let result = match settings.format {
        LogFormat::Pretty => registry
            .with(fmt::layer().with_target(false).with_filter(filter))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_filter(filter),
            )
            .try_init(),
    };
    // Already installed (tests): keep the first one.
    if result.is_err() {
        return Telemetry::default();
    }
    if let Some(endpoint) = endpoint() {
        tracing::info!(endpoint = %super::config::redact_url(&endpoint), "exporting traces over OTLP/HTTP");
    }
    Telemetry { traces }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The collector the standard variables name, unless they turn tracing off.
fn endpoint() -> Option<String> {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

fn otlp_traces() -> Option<SdkTracerProvider> {
    endpoint()?;
    if let Some(protocol) = var("OTEL_EXPORTER_OTLP_PROTOCOL").filter(|p| p != "http/protobuf") {
        eprintln!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported; Stoa exports http/protobuf");
    }
    // The blocking HTTP client of the exporter is built off the async runtime.
    let built = std::thread::spawn(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map(|exporter| {
                let service = var("OTEL_SERVICE_NAME").unwrap_or_else(|| "stoa".into());
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build()
            })
    })
    .join();
    match built {
        Ok(Ok(provider)) => Some(provider),
        Ok(Err(e)) => {
            eprintln!("OpenTelemetry export is off: {e}");
            None
        }
        Err(_) => None,
    }
}
