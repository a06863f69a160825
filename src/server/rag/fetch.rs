//! Server-side fetching of a URL a user gave (a web page to add as a document), safe
//! against SSRF by construction: only http(s) without credentials; the name resolved once,
//! every address checked ([`super::fetch_guard`]), the connection pinned to the checked
//! address (no second lookup, so no DNS rebinding between check and connect), no proxy,
//! redirects followed by hand and each checked the same way, a size and a time limit.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use ipnet::IpNet;
use url::{Host, Url};

use super::fetch_guard;

/// Resolves a host name to addresses: the system's resolver, or a test's.
#[async_trait]
pub trait Resolve: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// Called with the one address a request is about to connect to (tests record it and
/// refuse anything but loopback, so a broken guard fails a test instead of dialling out).
pub type Gate = Arc<dyn Fn(SocketAddr) -> Result<(), String> + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub timeout: Duration,
    pub max_redirects: usize,
}

/// What a fetch got: the final address (after redirects), its media type and body.
#[derive(Debug)]
pub struct Fetched {
    pub url: Url,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

pub struct Fetcher {
    resolver: Arc<dyn Resolve>,
    allowed: Vec<IpNet>,
    limits: Limits,
    gate: Gate,
}

impl Fetcher {
    pub fn new(allowed: Vec<IpNet>, limits: Limits) -> Self {
        Self {
            resolver: Arc::new(SystemResolver),
            allowed,
            limits,
            gate: Arc::new(|_| Ok(())),
        }
    }

    /// From `rag.fetch_allow_networks`, `rag.fetch_timeout_secs` and `rag.max_upload_mb`.
    pub fn from_settings(settings: &crate::server::config::RagSettings) -> Result<Self, String> {
        let allowed = settings
            .fetch_allow_networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|e| format!("rag.fetch_allow_networks: {n} is not a network: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(
            allowed,
            Limits {
                max_bytes: settings.max_upload_bytes(),
                timeout: Duration::from_secs(u64::from(settings.fetch_timeout_secs)),
                max_redirects: 5,
            },
        ))
    }

    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = gate;
        self
    }

    /// The address one request may connect to, or why not.
    async fn address(&self, url: &Url) -> Result<SocketAddr, String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "only http and https addresses can be fetched, not {}:",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the address carries credentials; they are not sent".into());
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let candidates: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(Host::Domain(name)) => self
                .resolver
                .resolve(name, port)
                .await
                .map_err(|e| format!("{name} could not be resolved: {e}"))?,
            None => return Err("the address has no host".into()),
        };
        if candidates.is_empty() {
            return Err("the host has no address".into());
        }
        // Every address the name has must be allowed: one private among public ones is
        // how a rebinding attack looks.
        for addr in &candidates {
            fetch_guard::check(addr.ip(), &self.allowed).map_err(|r| r.reason().to_owned())?;
        }
        Ok(candidates[0])
    }

    /// Fetches `url`, following up to `max_redirects` redirects, each checked.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, String> {
        let mut url = Url::parse(url).map_err(|e| format!("not a valid address: {e}"))?;
        for _ in 0..=self.limits.max_redirects {
            let addr = self.address(&url).await?;
            (self.gate)(addr)?;
            let mut builder = crate::server::tls::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(self.limits.timeout);
            if let Some(Host::Domain(name)) = url.host() {
                builder = builder.resolve(name, addr);
            }
            let client = builder.build().map_err(|e| e.to_string())?;
            let mut res = client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| format!("the page could not be fetched: {e}"))?;
            if res.status().is_redirection() {
                let location = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or("a redirect without a Location")?;
                url = url
                    .join(location)
                    .map_err(|e| format!("the redirect goes to an invalid address: {e}"))?;
                continue;
            }
            if !res.status().is_success() {
                return Err(format!("the server answered {}", res.status()));
            }
            let content_type = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut bytes = Vec::new();
            while let Some(chunk) = res
                .chunk()
                .await
                .map_err(|e| format!("the page could not be read: {e}"))?
            {
                if bytes.len() + chunk.len() > self.limits.max_bytes {
                    return Err(format!(
                        "the page is larger than {} MB",
                        self.limits.max_bytes >> 20
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(Fetched {
                url,
                content_type,
                bytes,
            });
        }
        Err(format!("more than {} redirects", self.limits.max_redirects))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{Router, response::Redirect, routing::get};

    use super::*;

    /// Names the test made up, resolved to loopback addresses only.
    struct Names(HashMap<&'static str, IpAddr>);

    #[async_trait]
    impl Resolve for Names {
        async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            self.0
                .get(host)
                .map(|ip| vec![SocketAddr::new(*ip, port)])
                .ok_or_else(|| std::io::Error::other("unknown test name"))
        }
    }

    /// A page server on `ip`, counting requests; `/to/{path}` redirects to 127.0.0.1.
    async fn server(ip: &str) -> (u16, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let counted = Arc::clone(&hits);
        let app = Router::new()
            .route(
                "/page",
                get(|| async { "<h1>Ferry</h1><p>Boats leave hourly.</p>" }),
            )
            .route("/big", get(|| async { vec![b'a'; 2 << 20] }))
            .route(
                "/to-loopback",
                get(move || async move { Redirect::to(&format!("http://127.0.0.1:{port}/page")) }),
            )
            .layer(axum::middleware::from_fn(
                move |req, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { next.run(req).await }
                },
            ));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, hits)
    }

    fn limits() -> Limits {
        Limits {
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            max_redirects: 3,
        }
    }

    /// Records every address a request was about to dial; anything but loopback fails.
    fn gate(dialled: &Arc<Mutex<Vec<SocketAddr>>>) -> Gate {
        let dialled = Arc::clone(dialled);
        Arc::new(move |addr: SocketAddr| {
            dialled.lock().unwrap().push(addr);
            assert!(addr.ip().is_loopback(), "the fetcher was about to dial {addr}");
            Ok(())
        })
    }

    #[tokio::test]
    async fn forbidden_addresses_are_refused_before_any_connection() {
        let (port, hits) = server("127.0.0.1").await;
        let dialled = Arc::new(Mutex::new(Vec::new()));
        let names = Names(HashMap::from([
            ("intranet.test", "127.0.0.1".parse().unwrap()),
            ("public.test", "127.0.0.2".parse().unwrap()),
        ]));
        // 127.0.0.2 stands for a public server (allowed by name); 127.0.0.1 is not allowed.
        let fetcher = Fetcher::new(vec!["127.0.0.2/32".parse().unwrap()], limits())
            .with_resolver(Arc::new(names))
            .with_gate(gate(&dialled));
        let (public_port, public_hits) = server("127.0.0.2").await;
        for (url, reason) in [
            (format!("http://127.0.0.1:{port}/page"), "loopback"),
            (format!("http://[::1]:{port}/page"), "loopback"),
            ("http://169.254.169.254/latest/meta-data/".into(), "metadata"),
            ("http://10.0.0.1/".into(), "private network"),
            (format!("http://[::ffff:127.0.0.1]:{port}/page"), "loopback"),
            (format!("http://2130706433:{port}/page"), "loopback"),
            (format!("http://intranet.test:{port}/page"), "loopback"),
            (
                format!("http://public.test:{public_port}/to-loopback"),
                "loopback",
            ),
            ("ftp://public.test/file".into(), "only http and https"),
            (
                format!("http://user:pw@public.test:{public_port}/page"),
                "credentials",
            ),
        ] {
            let e = fetcher.fetch(&url).await.unwrap_err();
            assert!(e.contains(reason), "{url}: {e}");
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "nothing reached the forbidden server"
        );
        assert_eq!(
            public_hits.load(Ordering::SeqCst),
            1,
            "only the redirect was served"
        );
        assert!(
            dialled
                .lock()
                .unwrap()
                .iter()
                .all(|a| a.ip().to_string() == "127.0.0.2")
        );
    }

    #[tokio::test]
    async fn an_allowed_server_is_fetched_within_the_size_limit() {
        let (port, _) = server("127.0.0.1").await;
        let dialled = Arc::new(Mutex::new(Vec::new()));
        let fetcher = Fetcher::new(vec!["127.0.0.0/8".parse().unwrap()], limits()).with_gate(gate(&dialled));
        let page = fetcher
            .fetch(&format!("http://127.0.0.1:{port}/to-loopback"))
            .await
            .unwrap();
        assert_eq!(page.url.path(), "/page");
        assert_eq!(page.bytes, b"<h1>Ferry</h1><p>Boats leave hourly.</p>");
        let e = fetcher
            .fetch(&format!("http://127.0.0.1:{port}/big"))
            .await
            .unwrap_err();
        assert!(e.contains("larger than 1 MB"), "{e}");
    }
}

#[cfg(test)]
mod name_tests {
    use crate::server::rag::ingest::file_name_for;

    #[test]
    fn fetched_files_are_named_from_the_address_or_the_media_type() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(
            file_name_for(&u("https://example.org/docs/guide.pdf"), None),
            "guide.pdf"
        );
        assert_eq!(
            file_name_for(
                &u("https://example.org/docs/intro"),
                Some("text/html; charset=utf-8")
            ),
            "intro.html"
        );
        assert_eq!(
            file_name_for(&u("https://example.org/"), Some("application/pdf")),
            "example.org.pdf"
        );
    }
}
