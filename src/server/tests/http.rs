//! The whole application over real HTTP: router, server functions, SSR.

use super::support::{App, spawn_app};
use crate::api::events::ChatEvent;

async fn call(app: &App, endpoint: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/{endpoint}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn server_functions_stream_validate_and_render() {
    let app = spawn_app().await;

    // Every response carries a request id.
    let home = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(home.headers().contains_key("x-request-id"));
    assert!(home.text().await.unwrap().contains("What can I help with?"));

    let created: serde_json::Value = call(&app, "conversations/create", serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    // Bad input: 400 naming the field, never a 500.
    let bad = call(
        &app,
        "chat/send",
        serde_json::json!({"req": {"conversation_id": id, "message": "hi", "params": {"temperature": 0.0, "max_tokens": 0}}}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let err: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(err["field"], "max_tokens");
    assert_eq!(err["code"], "invalid_input");

    // A body that is not the contract at all is also the caller's fault.
    assert_eq!(
        post_raw(&format!("{}/api/chat/send", app.base), "{not json").await,
        400
    );

    let missing = call(&app, "conversations/get", serde_json::json!({"id": "nope"})).await;
    assert_eq!(missing.status(), 404);

    // A real answer, as newline-delimited events over one chunked response.
    let reply = call(
        &app,
        "chat/send",
        serde_json::json!({"req": {"conversation_id": id, "message": "What is 2 + 2?", "params": {"temperature": 0.0, "max_tokens": 24}}}),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let body = reply.text().await.unwrap();
    let events: Vec<ChatEvent> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(matches!(events.first(), Some(ChatEvent::Started { .. })));
    let Some(ChatEvent::Done { message }) = events.last() else {
        panic!("ends with Done: {body}");
    };

    // The conversation page is rendered on the server with its history.
    let page = reqwest::get(format!("{}/c/{id}", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("What is 2 + 2?"));
    let first_words: String = message
        .content
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        page.contains(&first_words) || page.contains(&leptos_escape(&first_words)),
        "SSR page holds the answer {first_words:?}"
    );
}

pub(super) async fn v1_models(app: &App) -> serde_json::Value {
    let res = reqwest::get(format!("{}/v1/models", app.base)).await.unwrap();
    res.json().await.unwrap()
}

/// Status of a POST of `body` sent as JSON, whatever it holds.
async fn post_raw(url: &str, body: &'static str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The JSON chunks of an OpenAI SSE stream, which must end with `[DONE]`.
pub(super) fn sse_chunks(body: &str) -> Vec<serde_json::Value> {
    let data: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// An OpenAI-style error object with this status, naming this parameter.
pub(super) async fn expect_openai_error(res: reqwest::Response, status: u16, param: &str) {
    assert_eq!(res.status(), status);
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["error"]["param"], param, "{err}");
}

fn leptos_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[tokio::test]
async fn openai_compatible_api_answers_streams_and_rejects_with_param() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let models = v1_models(&app).await;
    let model = models["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(model.contains("SmolLM2"));
    let post = |body: serde_json::Value| {
        client
            .post(format!("{}/v1/chat/completions", app.base))
            .json(&body)
            .send()
    };

    let whole: serde_json::Value = post(serde_json::json!({
        "model": model, "temperature": 0, "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]
    }))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(whole["object"], "chat.completion");
    let content = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(content.contains("Paris"), "{whole}");
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Streaming gives the same greedy text, chunk by chunk, then [DONE].
    let res = post(serde_json::json!({
        "model": model, "temperature": 0, "max_tokens": 16, "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "What is the capital of France?"}]
    }))
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let chunks = sse_chunks(&res.text().await.unwrap());
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, content);
    assert!(chunks.len() > 4, "several chunks");
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, &whole["choices"][0]["finish_reason"]);
    assert!(finish == "stop" || finish == "length", "{finish}");
    assert_eq!(chunks.last().unwrap()["usage"], whole["usage"]);

    // Bad requests: OpenAI-style error objects naming the parameter, never a 500.
    for (body, status, param) in [
        (
            serde_json::json!({"model": model, "temperature": 7, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "temperature",
        ),
        (
            serde_json::json!({"model": "gpt-nope", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model",
        ),
        (
            serde_json::json!({"model": model, "messages": []}),
            400,
            "messages",
        ),
        (
            serde_json::json!({"model": model, "max_tokens": 8000, "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "max_tokens",
        ),
    ] {
        expect_openai_error(post(body).await.unwrap(), status, param).await;
    }
    let url = format!("{}/v1/chat/completions", app.base);
    assert_eq!(post_raw(&url, "{\"model\": 3").await, 400);
}

#[tokio::test]
async fn embeddings_are_unit_vectors_that_rank_meaning_and_reject_bad_input() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{}/v1/embeddings", app.base))
            .json(&body)
            .send()
    };
    let model = "local/all-MiniLM-L6-v2";
    let texts = [
        "How do I reset my password?",
        "I forgot my login credentials",
        "The stock market fell sharply today",
    ];
    let res: serde_json::Value = post(serde_json::json!({"model": model, "input": texts}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vectors: Vec<Vec<f32>> = res["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 384));
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for v in &vectors {
        assert!((dot(v, v) - 1.0).abs() < 1e-4, "unit length");
    }
    let (related, unrelated) = (dot(&vectors[0], &vectors[1]), dot(&vectors[0], &vectors[2]));
    assert!(related > unrelated + 0.3, "{related} vs {unrelated}");
    assert!(res["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    assert_eq!(res["model"], model);

    // base64 (what the official Python client asks for) carries the same floats.
    let b64: serde_json::Value =
        post(serde_json::json!({"model": model, "input": texts[0], "encoding_format": "base64"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        (dot(&decoded, &vectors[0]) - 1.0).abs() < 1e-4,
        "same text, same vector"
    );

    let too_long = "word ".repeat(400);
    for (body, status, param) in [
        (serde_json::json!({"model": model, "input": []}), 400, "input"),
        (
            serde_json::json!({"model": model, "input": [[1, 2, 3]]}),
            400,
            "input",
        ),
        (
            serde_json::json!({"model": model, "input": ["ok", too_long]}),
            400,
            "input[1]",
        ),
        (
            serde_json::json!({"model": model, "input": ["ok", " "]}),
            400,
            "input[1]",
        ),
        (
            serde_json::json!({"model": model, "input": "x", "dimensions": 10}),
            400,
            "dimensions",
        ),
        (
            serde_json::json!({"model": model, "input": "x", "encoding_format": "hex"}),
            400,
            "encoding_format",
        ),
        (
            serde_json::json!({"model": "text-embedding-3-small", "input": "x"}),
            404,
            "model",
        ),
    ] {
        expect_openai_error(post(body).await.unwrap(), status, param).await;
    }

    // /v1/models lists the embedding model, marked as such.
    let models = v1_models(&app).await;
    let listed = models["data"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|m| m["id"] == model && m["type"] == "embedding")
    );
}

#[tokio::test]
async fn the_embedded_model_answers_to_local_and_its_file_name() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let models = v1_models(&app).await;
    assert!(
        models["data"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("local/SmolLM2"),
        "/v1/models keeps the full ids: {models}"
    );
    for model in [
        "local",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct.Q4_1",
    ] {
        let res = client
            .post(format!("{}/v1/chat/completions", app.base))
            .json(&serde_json::json!({
                "model": model, "max_tokens": 4,
                "messages": [{"role": "user", "content": "Hi"}]
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}: {}", res.text().await.unwrap());
    }
    let conv: serde_json::Value = client
        .post(format!("{}/api/v1/conversations", app.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rest = client
        .post(format!("{}/api/v1/conversations/{}/messages", app.base, conv["id"].as_str().unwrap()))
        .json(&serde_json::json!({"message": "Hi", "model": "local", "params": {"temperature": 0.0, "max_tokens": 4}}))
        .send()
        .await
        .unwrap();
    assert!(rest.status().is_success(), "{}", rest.text().await.unwrap());
}
