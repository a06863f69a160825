//! Predictable response shapes through `/v1/chat/completions`: every standard parameter
//! relayed to an OpenAI-compatible upstream exactly as sent, tool-call deltas, log
//! probabilities and refusals streamed back in OpenAI's shape, answers checked against
//! the caller's JSON Schema (retried once, then refused naming the path), and the
//! embedded model honouring stop strings, seeds, JSON Schemas and tool calls itself.
//!
//! The upstream here is a test double ([`ScriptedUpstream`]): it records each request
//! body and answers with a scripted SSE stream.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Json, Router, extract::State, response::IntoResponse, routing};
use serde_json::{Value, json};

use super::{
    http::{expect_openai_error, sse_chunks},
    support::{App, get_json, post_json, spawn_app, spawn_app_with},
};
use crate::server::{chat::structured::compile, config::ProviderSettings};

/// An OpenAI-compatible upstream that records each request body and answers each one
/// with the next scripted stream (a list of `chat.completion.chunk` objects); the last
/// script repeats.
#[derive(Clone, Default)]
struct ScriptedUpstream {
    received: Arc<Mutex<Vec<Value>>>,
    scripts: Arc<Mutex<Vec<Vec<Value>>>>,
}

impl ScriptedUpstream {
    async fn start(scripts: Vec<Vec<Value>>) -> (Self, String) {
        let double = ScriptedUpstream {
            received: Arc::default(),
            scripts: Arc::new(Mutex::new(scripts)),
        };
        let app = Router::new()
            .route(
                "/v1/models",
                routing::get(|| async {
                    Json(json!({"object": "list", "data": [{"id": "m", "object": "model"}]}))
                }),
            )
            .route("/v1/chat/completions", routing::post(answer))
            .with_state(double.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (double, url)
    }

    fn requests(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn answer(State(double): State<ScriptedUpstream>, Json(body): Json<Value>) -> impl IntoResponse {
    double.received.lock().unwrap().push(body);
    let script = {
        let mut scripts = double.scripts.lock().unwrap();
        if scripts.len() > 1 {
            scripts.remove(0)
        } else {
            scripts[0].clone()
        }
    };
    let mut text = String::new();
    for chunk in script {
        text.push_str(&format!("data: {chunk}\n\n"));
    }
    text.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], text)
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// A whole scripted answer of `text`.
fn says(text: &str) -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": text}), None),
        chunk(json!({}), Some("stop")),
        json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
               "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
    ]
}

async fn gateway(scripts: Vec<Vec<Value>>) -> (ScriptedUpstream, App) {
    let (double, url) = ScriptedUpstream::start(scripts).await;
    let app = spawn_app_with(move |s| {
        s.local_model.enabled = false;
        s.providers = vec![ProviderSettings {
            name: "up".into(),
            base_url: url,
            retries: 0,
            ..ProviderSettings::default()
        }];
    })
    .await;
    (double, app)
}

async fn post(app: &App, body: Value) -> reqwest::Response {
    post_json(&format!("{}/v1/chat/completions", app.base), &body).await
}

async fn ok_json(app: &App, body: Value) -> Value {
    let res = post(app, body).await;
    let status = res.status();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

#[tokio::test]
async fn every_standard_parameter_reaches_the_upstream_as_sent() {
    let (double, app) = gateway(vec![says(r#"{"name": "Ada", "year": 1815}"#)]).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
                        "required": ["name", "year"], "additionalProperties": false});
    let sent = json!({
        "model": "up/m", "max_tokens": 50, "temperature": 0.3,
        "stop": ["\n\n", "END"], "top_p": 0.9, "seed": 1234, "presence_penalty": 0.5, "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100}, "user": "user-7",
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}},
        "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"}
        ]
    });
    let answer = ok_json(&app, sent.clone()).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        r#"{"name": "Ada", "year": 1815}"#
    );
    let got = &double.requests()[0];
    for field in [
        "stop",
        "top_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
    ] {
        assert_eq!(got[field], sent[field], "{field}: {got}");
    }
    assert_eq!(got["model"], "m");
    assert!((got["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(got["stream"], true);
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(
        messages[1]["content"][1], sent["messages"][1]["content"][1],
        "{got}"
    );
    assert_eq!(messages[2]["tool_calls"], sent["messages"][2]["tool_calls"]);
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    assert_eq!(messages[3]["content"], "18 °C");
    // Options the caller did not give are not invented.
    for absent in ["logprobs", "top_logprobs", "n"] {
        assert!(got.get(absent).is_none(), "{absent} was not asked for: {got}");
    }
}

/// A tool call streamed in three pieces, as OpenAI streams them.
fn tool_call_script() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": null}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
    ]
}

#[tokio::test]
async fn tool_call_deltas_logprobs_and_refusals_come_back_in_openai_shape() {
    let mut logprob_chunk = chunk(json!({"content": "Hi"}), None);
    logprob_chunk["choices"][0]["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": []}], "refusal": null});
    let refusal = vec![
        chunk(json!({"role": "assistant"}), None),
        chunk(json!({"refusal": "I can't help with that."}), None),
        chunk(json!({}), Some("stop")),
    ];
    let logprobs = vec![logprob_chunk, chunk(json!({}), Some("stop"))];
    let (double, app) = gateway(vec![
        tool_call_script(),
        tool_call_script(),
        logprobs.clone(),
        logprobs,
        refusal,
    ])
    .await;
    let ask = |stream: bool| {
        json!({"model": "up/m", "stream": stream, "tools": [weather_tool()], "logprobs": true, "top_logprobs": 2,
               "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    };

    // Streamed: the deltas keep their index, id and pieces; the finish is tool_calls.
    let res = post(&app, ask(true)).await;
    assert_eq!(res.status(), 200);
    let chunks = sse_chunks(&res.text().await.unwrap());
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls.len(), 3, "{chunks:?}");
    assert_eq!(calls[0]["id"], "call_abc");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls.iter().all(|c| c["index"] == 0));
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"city": "Paris"}"#);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Whole: one message with the assembled call and no content.
    let whole = ok_json(&app, ask(false)).await;
    let message = &whole["choices"][0]["message"];
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"city": "Paris"}"#
    );

    // Log probabilities ride on their content chunk, and are gathered in the whole answer.
    let res = post(&app, ask(true)).await;
    let chunks = sse_chunks(&res.text().await.unwrap());
    let with_logprobs = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["content"] == "Hi")
        .unwrap();
    assert_eq!(
        with_logprobs["choices"][0]["logprobs"]["content"][0]["logprob"],
        -0.25
    );
    let whole = ok_json(&app, ask(false)).await;
    assert_eq!(whole["choices"][0]["logprobs"]["content"][0]["token"], "Hi");

    // A refusal is a refusal, not content.
    let whole = ok_json(&app, ask(false)).await;
    assert_eq!(
        whole["choices"][0]["message"]["refusal"],
        "I can't help with that."
    );
    assert_eq!(whole["choices"][0]["message"]["content"], "");

    // Log probabilities were asked of the upstream exactly as the caller asked for them.
    for got in double.requests() {
        assert_eq!(got["logprobs"], true, "{got}");
        assert_eq!(got["top_logprobs"], 2, "{got}");
    }
}

/// The official `openai` Python client (`TEST_PYTHON`, the test virtualenv `make test`
/// installs) through Stoa to the scripted upstream: the streamed tool call it assembles from
/// Stoa's deltas is the upstream's, and the round trip (call, tool result, answer) reaches
/// the upstream intact.
#[tokio::test]
async fn the_official_client_relays_a_tool_call_round_trip_through_stoa() {
    let (double, app) = gateway(vec![tool_call_script(), says("It is sunny in Paris.")]).await;
    let python = std::env::var("TEST_PYTHON")
        .expect("TEST_PYTHON names a Python with the `openai` package (make test-rust sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("end2end/clients/openai_relay.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("{}/v1", app.base))
        .arg("up/m")
        .output()
        .await
        .expect("python runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("ok"), "{log}");
    let requests = double.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let messages = requests[1]["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_abc", "{}", requests[1]);
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        r#"{"city": "Paris"}"#
    );
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["tool_call_id"], "call_abc");
    assert_eq!(messages[2]["content"], "Sunny, 18 C");
}

fn person_request(stream: bool) -> Value {
    json!({"model": "up/m", "stream": stream, "messages": [{"role": "user", "content": "Who wrote the first program?"}],
           "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {
               "type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
               "required": ["name", "year"]}}}})
}

#[tokio::test]
async fn an_answer_that_breaks_its_schema_is_retried_once_then_refused_naming_the_path() {
    let bad = says(r#"{"name": "Ada", "year": "1815"}"#);
    let good = says(r#"{"name": "Ada", "year": 1815}"#);
    let (double, app) = gateway(vec![bad.clone(), good, bad.clone(), bad.clone(), bad]).await;

    // Wrong once: asked again, and the second answer is returned, saying so.
    let whole = ok_json(&app, person_request(false)).await;
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        r#"{"name": "Ada", "year": 1815}"#
    );
    assert_eq!(whole["usage"]["stoa"]["retries"], 1);
    assert_eq!(double.requests().len(), 2);

    // Wrong twice: a 502 naming the path, never a 200 with invalid JSON.
    let res = post(&app, person_request(false)).await;
    assert_eq!(res.status(), 502);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_output", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("$.year") && message.contains("integer"),
        "{message}"
    );
    assert_eq!(double.requests().len(), 4);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["valid", "invalid"] {
        let line =
            format!(r#"stoa_structured_answers_total{{provider="up",grammar="false",outcome="{outcome}"}}"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    // Streamed, the tokens are already out: the stream ends with the error event instead
    // of a finish chunk.
    let res = post(&app, person_request(true)).await;
    let body = res.text().await.unwrap();
    let last = body.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["error"]["code"], "invalid_output", "{body}");
    assert!(!body.contains("[DONE]"));
}

#[tokio::test]
async fn malformed_parameters_are_refused_naming_them_before_any_token() {
    let (double, app) = gateway(vec![says("unused")]).await;
    let user = json!([{"role": "user", "content": "hi"}]);
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (json!({"top_p": 1.5}), "top_p"),
        (json!({"presence_penalty": -3}), "presence_penalty"),
        (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"logit_bias": {"abc": 1}}), "logit_bias.abc"),
        (json!({"logit_bias": {"12": 300}}), "logit_bias.12"),
        (json!({"tool_choice": "required"}), "tool_choice"),
        (
            json!({"tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice.function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "has space"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "bogus"}}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "https://example.com/s.json"}}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"response_format": {"type": "xml"}}),
            "response_format.type",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "18"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "messages[0].content[0]",
        ),
    ] {
        let mut body = json!({"model": "up/m", "messages": user});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        expect_openai_error(post(&app, body).await, 400, param).await;
    }
    assert!(double.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn every_listed_model_can_be_retrieved_by_id() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let list = get_json(&format!("{}/v1/models", app.base)).await;
    let models = list["data"].as_array().unwrap();
    assert!(models.len() >= 2, "{list}");
    for m in models {
        let id = m["id"].as_str().unwrap();
        let res = client
            .get(format!("{}/v1/models/{id}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{id}");
        let got: Value = res.json().await.unwrap();
        assert_eq!(&got, m);
    }
    let res = client
        .get(format!("{}/v1/models/local/nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "model_not_found", "{err}");
}

/// The embedded model, as `/v1/models` names it.
async fn local_model(app: &App) -> String {
    let list = get_json(&format!("{}/v1/models", app.base)).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .find(|id| id.contains("SmolLM2"))
        .unwrap()
        .to_owned()
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test]
async fn the_embedded_model_writes_schema_valid_json_on_demand() {
    let app = spawn_app().await;
    let model = local_model(&app).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                        "year": {"type": "integer"}}, "required": ["name", "year"], "additionalProperties": false});
    let validator = compile(&schema).unwrap();
    let subjects = [
        "the Eiffel Tower",
        "Ada Lovelace",
        "the first Moon landing",
        "the Python language",
        "the printing press",
        "Marie Curie",
        "the Great Fire of London",
        "the telephone",
        "the Berlin Wall",
        "the French Revolution",
        "Isaac Newton",
        "the World Wide Web",
        "the Titanic",
        "Mozart",
        "the steam engine",
        "Linux",
        "the Magna Carta",
        "Albert Einstein",
        "the first iPhone",
        "the Olympic Games",
    ];
    let mut grammar_used = 0;
    for subject in subjects {
        let answer = ok_json(&app, json!({
            "model": model, "temperature": 0, "max_tokens": 80,
            "messages": [{"role": "user", "content": format!("Give the name and the year of {subject}.")}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "fact", "schema": schema}}
        }))
        .await;
        let value: Value = serde_json::from_str(content(&answer))
            .unwrap_or_else(|e| panic!("{subject}: not JSON ({e}): {answer}"));
        assert!(validator.is_valid(&value), "{subject}: {value}");
        if answer["usage"]["stoa"]["grammar"] == true {
            grammar_used += 1;
        }
    }
    assert_eq!(
        grammar_used,
        subjects.len(),
        "each answer says a grammar shaped it"
    );

    // json_object: any object.
    let answer = ok_json(
        &app,
        json!({"model": model, "temperature": 0, "max_tokens": 200,
        "messages": [{"role": "user", "content": "Give the name and the age of a cat as a JSON object."}],
        "response_format": {"type": "json_object"}}),
    )
    .await;
    assert!(
        serde_json::from_str::<Value>(content(&answer))
            .unwrap()
            .is_object(),
        "{answer}"
    );

    // A schema whose grammar would be huge is refused up front, naming it.
    let huge = json!({"type": "array", "items": {"type": "string"}, "minItems": 1000000});
    let res = post(
        &app,
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "h", "schema": huge}}}),
    )
    .await;
    expect_openai_error(res, 400, "response_format.json_schema.schema").await;
}

#[tokio::test]
async fn the_embedded_model_honours_stop_seed_and_refuses_what_it_cannot_do() {
    let app = spawn_app().await;
    let model = local_model(&app).await;
    let ask = |extra: Value| {
        let mut body = json!({"model": model, "temperature": 0, "max_tokens": 40,
            "messages": [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let free = ok_json(&app, ask(json!({}))).await;
    let free = content(&free).to_owned();
    let cut_at = free
        .find('5')
        .unwrap_or_else(|| panic!("the model counts past 5: {free}"));
    let stopped = ok_json(&app, ask(json!({"stop": ["5"]}))).await;
    assert_eq!(
        content(&stopped),
        &free[..cut_at],
        "the answer ends before the stop string"
    );
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");
    let tokens = |v: &Value| {
        v["usage"]["completion_tokens"]
            .as_u64()
            .expect("usage counts tokens")
    };
    assert!(
        tokens(&stopped) < tokens(&ok_json(&app, ask(json!({}))).await),
        "generation ended at the stop string"
    );

    // The same seed, the same answer, at a temperature that samples.
    let seeded = |seed: i64| ask(json!({"temperature": 1.2, "seed": seed, "max_tokens": 30}));
    let a = ok_json(&app, seeded(42)).await;
    let b = ok_json(&app, seeded(42)).await;
    assert_eq!(content(&a), content(&b));
    // And the seed is what decides it: other seeds sample other answers (one of four
    // equal to seed 42's by chance over 30 tokens at this temperature is not plausible).
    let mut others = Vec::new();
    for seed in [1, 2, 3, 4] {
        others.push(content(&ok_json(&app, seeded(seed)).await).to_owned());
    }
    assert!(
        others.iter().any(|o| o != content(&a)),
        "every seed gave the same answer: {others:?}"
    );

    // What the embedded model cannot do is refused naming the parameter.
    let image = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    expect_openai_error(post(&app, ask(image)).await, 400, "messages[0].content").await;
    expect_openai_error(post(&app, ask(json!({"logprobs": true}))).await, 400, "logprobs").await;
    expect_openai_error(
        post(&app, ask(json!({"logit_bias": {"99999999": 5}}))).await,
        400,
        "logit_bias.99999999",
    )
    .await;
}

#[tokio::test]
async fn the_embedded_model_calls_tools_and_reads_their_results() {
    let app = spawn_app().await;
    let model = local_model(&app).await;
    let tool = weather_tool();
    let parameters = compile(&tool["function"]["parameters"]).unwrap();
    let question = json!({"role": "user", "content": "What is the weather in Paris?"});
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let answer = ok_json(
            &app,
            json!({"model": model, "temperature": 0, "max_tokens": 60,
            "messages": [question], "tools": [tool], "tool_choice": choice}),
        )
        .await;
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls", "{answer}");
        let call = &answer["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(parameters.is_valid(&arguments), "{arguments}");
    }

    // Streamed, the call arrives as a tool-call delta with its id.
    let res = post(
        &app,
        json!({"model": model, "temperature": 0, "max_tokens": 60, "stream": true,
        "messages": [question], "tools": [tool], "tool_choice": "required"}),
    )
    .await;
    let chunks = sse_chunks(&res.text().await.unwrap());
    let delta = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .unwrap();
    assert!(delta["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The round trip: the call and its result go back, and the model answers in words
    // (it may choose: tool_choice auto).
    let answer = ok_json(
        &app,
        json!({"model": model, "temperature": 0, "max_tokens": 60, "tools": [tool],
        "messages": [question,
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 18 °C"}]}),
    )
    .await;
    let finish = answer["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(["stop", "tool_calls", "length"].contains(&finish), "{answer}");
    if finish == "stop" {
        assert!(!content(&answer).trim().is_empty(), "{answer}");
    }
}

#[tokio::test]
async fn a_conversation_with_a_response_schema_answers_in_json_that_follows_it() {
    use super::support::{ME, chat, collect};
    use crate::api::{
        events::ChatEvent,
        types::{ChatRequest, ConversationSettings, GenerationParams, MessageStatus},
    };
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let settings = |schema: &str| ConversationSettings {
        response_schema: Some(serde_json::from_str(schema).unwrap()),
        ..ConversationSettings::default()
    };
    for (bad, says) in [
        ("[1]", "JSON object"),
        ("{\"type\": \"nonsense\"}", "not a usable JSON Schema"),
    ] {
        let e = t
            .chat
            .set_settings(ME, &conv.id, settings(bad))
            .await
            .unwrap_err();
        let e = crate::api::ApiError::from(e);
        assert_eq!(e.field.as_deref(), Some("response_schema"), "{bad}");
        assert!(e.message.contains(says), "{bad}: {}", e.message);
    }
    let schema = r#"{"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                     "country": {"type": "string", "maxLength": 40}}, "required": ["city", "country"]}"#;
    t.chat.set_settings(ME, &conv.id, settings(schema)).await.unwrap();
    let events = t
        .chat
        .send(
            ME,
            ChatRequest {
                conversation_id: conv.id.clone(),
                message: "Name a big city and its country.".into(),
                params: GenerationParams {
                    temperature: 0.0,
                    max_tokens: 80,
                },
                model: None,
                trim_history: false,
                edit_of: None,
            },
        )
        .await
        .unwrap();
    let events = collect(events).await;
    let Some(ChatEvent::Done { message }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(message.status, MessageStatus::Complete, "{message:?}");
    let value: Value = serde_json::from_str(&message.content).unwrap();
    let validator = compile(&serde_json::from_str(schema).unwrap()).unwrap();
    assert!(validator.is_valid(&value), "{value}");
    // The setting is kept with the conversation.
    let stored = t.chat.get_conversation(ME, &conv.id).await.unwrap().settings;
    assert_eq!(
        stored.response_schema,
        Some(serde_json::from_str(schema).unwrap())
    );
}
