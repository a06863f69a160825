//! The retrieval pipeline over real HTTP: follow-ups searched with the question before
//! them, re-ranking by another Stoa's `/v1/rerank` in both dialects (and the fused order
//! kept when a re-ranker is too slow), re-ranking by a chat model through the router,
//! declining questions the documents do not cover, metadata filters, and the trace each
//! answer keeps.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::{
    documents::{fixture, upload_ready},
    support::{App, post_json, spawn_app, spawn_app_with},
};
use crate::server::{
    config::{RerankMode, RerankSettings},
    rag::rerank::RerankApi,
};

async fn with_documents(app: &App) {
    upload_ready(
        app,
        vec![
            ("handbook.md", fixture("handbook.md")),
            ("recipes.html", fixture("recipes.html")),
            ("astronomy.txt", fixture("astronomy.txt")),
        ],
        None,
    )
    .await;
}

async fn passages(app: &App, body: Value) -> Value {
    let res = post_json(&format!("{}/api/v1/search/passages", app.base), &body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn step<'a>(answer: &'a Value, name: &str) -> Option<&'a Value> {
    answer["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
}

async fn new_conversation(app: &App) -> String {
    let res = post_json(&format!("{}/api/v1/conversations", app.base), &json!({})).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Posts a message; returns the stored answer.
async fn ask(app: &App, conversation: &str, message: &str) -> Value {
    let res = post_json(
        &format!("{}/api/v1/conversations/{conversation}/messages", app.base),
        &json!({"message": message, "params": {"temperature": 0.0, "max_tokens": 24}}),
    )
    .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["assistant_message"].clone()
}

#[tokio::test]
async fn answers_keep_their_trace_and_a_follow_up_searches_with_the_question_before_it() {
    let app = spawn_app().await;
    with_documents(&app).await;
    let conversation = new_conversation(&app).await;
    let first = ask(
        &app,
        &conversation,
        "How many days of paid holiday does an employee get?",
    )
    .await;
    let trace = &first["trace"];
    let steps: Vec<&str> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["search", "select", "first_token", "generate"], "{trace}");
    assert!(
        trace["query"].is_null(),
        "a first question is searched as typed: {trace}"
    );
    assert_eq!(first["citations"][0]["document_title"], "handbook", "{first}");
    // The same trace comes back when the conversation is read again.
    let stored: Value = reqwest::get(format!(
        "{}/api/v1/conversations/{conversation}/messages",
        app.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let again = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == first["id"])
        .unwrap();
    assert_eq!(again["trace"], first["trace"]);

    // "Can they be carried over?" alone says nothing about holidays; searched with the
    // question before it, it finds the handbook's passage on carrying days over.
    let follow = ask(&app, &conversation, "Can the unused ones be carried over?").await;
    let trace = &follow["trace"];
    assert_eq!(trace["steps"][0]["step"], "rewrite", "{trace}");
    let query = trace["query"].as_str().unwrap();
    assert!(
        query.contains("paid holiday") && query.contains("carried over"),
        "{query}"
    );
    assert_eq!(follow["citations"][0]["document_title"], "handbook", "{follow}");
    assert!(
        follow["citations"][0]["text"]
            .as_str()
            .unwrap()
            .contains("carry over"),
        "{follow}"
    );
}

#[tokio::test]
async fn a_question_the_documents_do_not_cover_is_declined_with_a_note_and_no_sources() {
    let app = spawn_app().await;
    with_documents(&app).await;
    let conversation = new_conversation(&app).await;
    let answer = ask(
        &app,
        &conversation,
        "How do I configure PgBouncer in transaction pooling mode?",
    )
    .await;
    assert_eq!(answer["citations"], json!([]), "{answer}");
    assert!(
        answer["notice"]
            .as_str()
            .unwrap()
            .contains("do not seem to cover"),
        "{answer}"
    );
    let select = answer["trace"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "select")
        .unwrap();
    assert!(
        select["note"].as_str().unwrap().contains("do not cover"),
        "{select}"
    );
    // The passages endpoint says the same.
    let found = passages(
        &app,
        json!({"query": "How do I configure PgBouncer in transaction pooling mode?"}),
    )
    .await;
    assert_eq!(found["declined"], true, "{found}");
}

#[tokio::test]
async fn stoa_serves_rerank_in_both_dialects() {
    let app = spawn_app().await;
    let url = format!("{}/v1/rerank", app.base);
    let texts = [
        "The sun is a star.",
        "Every employee has 27 days of paid holiday per year.",
        "Bread needs flour.",
    ];
    let cohere: Value = post_json(
        &url,
        &json!({"model": "any", "query": "How much paid holiday do employees get?", "documents": texts, "top_n": 2, "return_documents": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    let results = cohere["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{cohere}");
    assert_eq!(results[0]["index"], 1, "{cohere}");
    assert!(
        results[0]["relevance_score"].as_f64().unwrap() > results[1]["relevance_score"].as_f64().unwrap()
    );
    assert_eq!(results[0]["document"]["text"], texts[1]);
    let tei: Value = post_json(
        &url,
        &json!({"query": "How much paid holiday do employees get?", "texts": texts}),
    )
    .await
    .json()
    .await
    .unwrap();
    let tei = tei.as_array().unwrap();
    assert_eq!(tei.len(), 3);
    assert_eq!(tei[0]["index"], 1);
    assert!(
        tei.iter()
            .all(|r| (0.0..=1.0).contains(&r["score"].as_f64().unwrap()))
    );
    // A blank text scores 0 (it answers nothing) instead of failing the request.
    let blank: Value = post_json(&url, &json!({"query": "holiday", "texts": ["", texts[1]]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blank[1]["index"], 0, "{blank}");
    assert_eq!(blank[1]["score"], 0.0, "{blank}");
    for (body, param) in [
        (
            json!({"query": "x", "documents": ["a"], "texts": ["b"]}),
            "documents",
        ),
        (json!({"query": " ", "texts": ["b"]}), "query"),
        (json!({"query": "x", "texts": []}), "texts"),
        (json!({"query": "x", "documents": ["a"], "top_n": 0}), "top_n"),
    ] {
        let res = post_json(&url, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
    }
}

/// A second Stoa re-ranks with the first one's `/v1/rerank`, in each dialect.
#[tokio::test]
async fn a_remote_reranker_in_either_dialect_reorders_the_candidates() {
    let reranker = spawn_app().await;
    for api in [RerankApi::Cohere, RerankApi::Tei] {
        let url = format!("{}/v1/rerank", reranker.base);
        let app = spawn_app_with(move |s| {
            s.rag.rerank = RerankSettings {
                mode: RerankMode::Remote,
                url: Some(url),
                api,
                ..RerankSettings::default()
            }
        })
        .await;
        with_documents(&app).await;
        let found = passages(
            &app,
            json!({"query": "How many days of paid holiday do employees get?"}),
        )
        .await;
        let rerank = step(&found, "rerank").unwrap_or_else(|| panic!("{found}"));
        assert!(rerank["note"].is_null(), "{api:?}: {rerank}");
        let list = found["passages"].as_array().unwrap();
        let scores: Vec<f64> = list.iter().map(|p| p["rerank_score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
        assert_eq!(list[0]["document_title"], "handbook", "{api:?}: {found}");
        assert_eq!(found["declined"], false);
    }
}

/// A re-ranker that answers too late: the fused order stands and the trace says why. The
/// endpoint here is a test double that never answers in time.
#[tokio::test]
async fn a_reranker_past_its_timeout_leaves_the_fused_order() {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let slow = format!("http://{}/rerank", listener.local_addr().unwrap());
    let double = axum::Router::new().route(
        "/rerank",
        axum::routing::post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            "[]"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, double).await.unwrap() });
    let app = spawn_app_with(move |s| {
        s.rag.rerank = RerankSettings {
            mode: RerankMode::Remote,
            url: Some(slow),
            api: RerankApi::Tei,
            timeout_ms: 300,
            ..RerankSettings::default()
        }
    })
    .await;
    with_documents(&app).await;
    let found = passages(
        &app,
        json!({"query": "How many days of paid holiday do employees get?"}),
    )
    .await;
    let rerank = step(&found, "rerank").unwrap();
    // Whichever fires first (the pipeline's step timeout or the client's request timeout,
    // both the setting), the step says so and the fused order is kept.
    let note = rerank["note"].as_str().unwrap();
    assert!(note.contains("the fused order was kept"), "{rerank}");
    assert!(note.contains("300 ms") || note.contains("in time"), "{rerank}");
    assert!(rerank["ms"].as_u64().unwrap() < 5_000);
    let list = found["passages"].as_array().unwrap();
    assert!(list.iter().all(|p| p["rerank_score"].is_null()));
    assert_eq!(list[0]["document_title"], "handbook");
}

/// `llm` re-ranking: the embedded model judges the candidates through the router, its
/// answer shaped by the judgement's JSON Schema; every score is one of its 0–10 marks.
#[tokio::test]
async fn a_chat_model_judges_the_candidates_through_the_router() {
    let app = spawn_app_with(|s| {
        s.rag.rerank = RerankSettings {
            mode: RerankMode::Llm,
            timeout_ms: 60_000,
            ..RerankSettings::default()
        }
    })
    .await;
    with_documents(&app).await;
    let found = passages(
        &app,
        json!({"query": "How many days of paid holiday do employees get?"}),
    )
    .await;
    let rerank = step(&found, "rerank").unwrap();
    assert!(rerank["note"].is_null(), "{rerank}");
    for p in found["passages"].as_array().unwrap() {
        let score = p["rerank_score"].as_f64().unwrap();
        assert!((score * 10.0 - (score * 10.0).round()).abs() < 1e-4, "{score}");
    }
}

#[tokio::test]
async fn filters_narrow_the_documents_searched() {
    let app = spawn_app().await;
    upload_ready(
        &app,
        vec![("handbook.md", fixture("handbook.md"))],
        Some(json!({"tags": ["hr"], "source": "https://intranet.example/handbook"})),
    )
    .await;
    let astronomy = upload_ready(
        &app,
        vec![("astronomy.txt", fixture("astronomy.txt"))],
        Some(json!({"tags": ["science"]})),
    )
    .await;
    let titles = |found: &Value| -> Vec<String> {
        found["passages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["document_title"].as_str().unwrap().to_owned())
            .collect()
    };
    let q = "How many days of paid holiday do employees get?";
    let all = passages(&app, json!({"query": q})).await;
    assert!(titles(&all).contains(&"handbook".to_owned()) && titles(&all).contains(&"astronomy".to_owned()));
    let science = passages(&app, json!({"query": q, "tags": ["Science"]})).await;
    assert!(titles(&science).iter().all(|t| t == "astronomy"), "{science}");
    let intranet = passages(&app, json!({"query": q, "source": "INTRANET.example"})).await;
    assert!(!titles(&intranet).is_empty() && titles(&intranet).iter().all(|t| t == "handbook"));
    let one = passages(&app, json!({"query": q, "document_ids": [astronomy[0]]})).await;
    assert!(titles(&one).iter().all(|t| t == "astronomy"));
    let future = passages(&app, json!({"query": q, "uploaded_after": 4_102_444_800_000i64})).await;
    assert_eq!(future["passages"], json!([]), "{future}");
    let res = post_json(
        &format!("{}/api/v1/search/passages", app.base),
        &json!({"query": q, "tags": vec!["t"; 1001]}),
    )
    .await;
    assert_eq!(res.status(), 400);
}
