//! TLS for the connections Stoa opens (providers, remote embedders, an OTLP collector):
//! rustls with ring as its crypto provider, installed once per process before the first
//! client is built. (ring builds in seconds; aws-lc-sys, rustls' default, compiles C for
//! minutes, on every fresh machine.)

/// Installs ring as the process's default crypto provider; later calls do nothing.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the provider installed: how Stoa's own clients start.
pub fn client_builder() -> reqwest::ClientBuilder {
    install();
    reqwest::Client::builder()
}
