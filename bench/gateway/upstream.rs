//! The scripted upstream of the gateway benchmark: an OpenAI-compatible server that
//! answers every streaming chat completion with `tokens` content chunks, one every
//! `interval`, then a finish chunk and `[DONE]`. It exists only for benchmarks (house rule
//! 1): it lets both gateways relay the same, predictable stream, so what the benchmark
//! measures is the gateway, not a model.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// Suffix of the model name that asks for tokens without pacing.
pub const UNPACED: &str = "-unpaced";

/// A Stoa configuration whose only provider is this upstream on `port` (paced and
/// unpaced models, no concurrency cap, no retries), written into `dir`.
pub fn stoa_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let config = dir.join("stoa.toml");
    std::fs::write(
        &config,
        format!(
            "[[providers]]\nname = \"bench\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
             models = [\"scripted\", \"scripted{UNPACED}\"]\nmax_concurrent = 100000\nretries = 0\n\
             [routing]\ndefault_model = \"bench/scripted\"\n"
        ),
    )
    .expect("a config file");
    config
}

#[derive(Clone, Copy)]
pub struct Script {
    pub tokens: usize,
    pub interval: Duration,
}

pub async fn serve(port: u16, script: Script) {
    let app = Router::new().route("/v1/models", get(models)).route(
        "/v1/chat/completions",
        post(move |body: Bytes| completions(body, script)),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the upstream port is free")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await.expect("the upstream serves");
}

async fn models() -> Json<Value> {
    let model = |id: String| json!({"id": id, "object": "model", "created": 0, "owned_by": "bench"});
    Json(json!({"object": "list", "data": [model("scripted".into()), model(format!("scripted{UNPACED}"))]}))
}

fn event(delta: Value, finish: Option<&str>) -> Bytes {
    let chunk = json!({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
        "model": "scripted", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    Bytes::from(format!("data: {chunk}\n\n"))
}

async fn completions(body: Bytes, script: Script) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req["stream"] != json!(true) {
        let text = (0..script.tokens).map(|i| format!("w{i} ")).collect::<String>();
        return Json(
            json!({"id": "chatcmpl-scripted", "object": "chat.completion", "created": 0,
            "model": "scripted", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": script.tokens,
            "total_tokens": 10 + script.tokens}}),
        )
        .into_response();
    }
    let first = futures::stream::once(async { event(json!({"role": "assistant", "content": ""}), None) });
    // The model `scripted-unpaced` streams as fast as the machine allows (saturation).
    let paced = req["model"].as_str().is_none_or(|m| !m.ends_with(UNPACED));
    let mut ticker = tokio::time::interval(script.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tokens = futures::stream::unfold((ticker, 0usize), move |(mut ticker, i)| async move {
        if i >= script.tokens {
            return None;
        }
        if paced {
            ticker.tick().await;
        } else {
            tokio::task::yield_now().await;
        }
        Some((event(json!({"content": format!("w{i} ")}), None), (ticker, i + 1)))
    });
    let end = futures::stream::iter([
        event(json!({}), Some("stop")),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]);
    let stream = first.chain(tokens).chain(end).map(Ok::<_, Infallible>);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}
