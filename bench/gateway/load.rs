//! The load side of the gateway benchmark: `concurrency` clients, each opening one
//! streaming chat completion after another for the length of a window, timing every
//! stream: time to the first content chunk, the gaps between content chunks, whether it
//! ended with `[DONE]`. oha and wrk report whole responses only; the numbers asked for
//! here (time to first token, gaps between tokens) need the SSE events, so the client is
//! this small loop over reqwest (hyper), the same for every target.

use std::time::{Duration, Instant};

use futures::StreamExt;

pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

#[derive(Default)]
pub struct Outcome {
    /// Streams that ended inside the measured window, per second.
    pub streams_per_sec: f64,
    /// Time to the first content chunk of streams started inside the window, in ms.
    pub ttft_ms: Vec<f64>,
    /// Gaps between consecutive content chunks of those streams, in ms.
    pub gaps_ms: Vec<f64>,
    pub failed: usize,
    pub completed: usize,
}

struct Stream {
    started: Instant,
    ended: Instant,
    ttft: Option<Duration>,
    gaps: Vec<Duration>,
    ok: bool,
}

/// Content chunks carry `"content":"<something>"`; the role chunk's content is empty.
fn content_events(buf: &mut Vec<u8>, mut on_event: impl FnMut(bool)) {
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&event);
        if text.contains("data: [DONE]") {
            on_event(false);
        } else if let Some(at) = text.find("\"content\":\"")
            && text.as_bytes().get(at + 11) != Some(&b'"')
        {
            on_event(true);
        }
    }
}

async fn one(client: &reqwest::Client, url: &str, body: &str) -> Stream {
    let started = Instant::now();
    let mut s = Stream {
        started,
        ended: started,
        ttft: None,
        gaps: Vec::new(),
        ok: false,
    };
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await;
    let Ok(res) = res else {
        s.ended = Instant::now();
        return s;
    };
    if !res.status().is_success() {
        s.ended = Instant::now();
        return s;
    }
    let mut last: Option<Instant> = None;
    let mut buf = Vec::new();
    let mut bytes = res.bytes_stream();
    while let Some(Ok(part)) = bytes.next().await {
        let now = Instant::now();
        buf.extend_from_slice(&part);
        content_events(&mut buf, |content| {
            if !content {
                s.ok = true;
                return;
            }
            match last {
                None => s.ttft = Some(now - started),
                Some(prev) => s.gaps.push(now - prev),
            }
            last = Some(now);
        });
    }
    s.ended = Instant::now();
    s
}

pub async fn run(url: &str, body: &str, concurrency: usize, window: &Window) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .expect("a client");
    let t0 = Instant::now();
    let (from, to) = (t0 + window.warmup, t0 + window.warmup + window.measure);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.to_owned());
            tokio::spawn(async move {
                let mut done = Vec::new();
                while Instant::now() < to {
                    done.push(one(&client, &url, &body).await);
                }
                done
            })
        })
        .collect();
    let mut out = Outcome::default();
    let mut ended_in_window = 0usize;
    for w in workers {
        for s in w.await.expect("a worker") {
            if s.ended >= from && s.ended <= to {
                ended_in_window += usize::from(s.ok);
            }
            if s.started < from || s.ended > to {
                continue;
            }
            if !s.ok {
                out.failed += 1;
                continue;
            }
            out.completed += 1;
            out.ttft_ms.extend(s.ttft.map(ms));
            out.gaps_ms.extend(s.gaps.iter().copied().map(ms));
        }
    }
    out.streams_per_sec = ended_in_window as f64 / window.measure.as_secs_f64();
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank]
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}
