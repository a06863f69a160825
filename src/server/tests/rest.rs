//! The REST API: the founding contract `POST /api/v1/generate`, RFC 9457 problem
//! details, and the generated OpenAPI document (checked against its snapshot).

use serde_json::{Value, json};

use super::support::spawn_app;
use crate::server::http::rest::openapi;

#[test]
fn the_openapi_document_states_every_validation_rule() {
    use crate::api::validation::{DOCUMENTED_RULES, Rule};
    let spec = serde_json::to_value(openapi()).unwrap();
    for (schema, property, rule) in DOCUMENTED_RULES {
        let field = &spec["components"]["schemas"][schema]["properties"][property];
        assert!(field.is_object(), "{schema}.{property} is in the document");
        match rule {
            Rule::Text { max_chars, non_blank } => {
                assert_eq!(field["maxLength"], *max_chars, "{schema}.{property}");
                assert_eq!(field.get("pattern").is_some(), *non_blank, "{schema}.{property}");
            }
            Rule::Number { min, max } => {
                assert_eq!(
                    field["minimum"].as_f64(),
                    Some(f64::from(*min)),
                    "{schema}.{property}"
                );
                assert_eq!(
                    field["maximum"].as_f64(),
                    Some(f64::from(*max)),
                    "{schema}.{property}"
                );
            }
            Rule::Integer { min, max } => {
                assert_eq!(field["minimum"], *min, "{schema}.{property}");
                assert_eq!(field["maximum"], *max, "{schema}.{property}");
            }
            Rule::Items { min, .. } => assert_eq!(field["minItems"], *min, "{schema}.{property}"),
            Rule::TextItems { max_items, max_chars } => {
                assert_eq!(field["maxItems"], *max_items, "{schema}.{property}");
                assert_eq!(field["items"]["maxLength"], *max_chars, "{schema}.{property}");
            }
        }
    }
}

#[tokio::test]
async fn generate_answers_and_refuses_bad_input_as_problem_json() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(format!("{}/api/v1/generate", app.base))
            .json(&body)
            .send()
    };
    let res = post(json!({"user_input": "What is the capital of France?", "max_tokens": 24}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(!body["answer"].as_str().unwrap().trim().is_empty(), "{body}");
    assert!(
        ["ok", "max_tokens"].contains(&body["status"].as_str().unwrap()),
        "{body}"
    );
    assert_eq!(body["data"], Value::Null, "no schema, no data");

    // With a response schema: the answer is JSON that validates, returned parsed as `data`.
    let schema = json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                        "country": {"type": "string", "maxLength": 40}}, "required": ["city", "country"]});
    let res = post(json!({"user_input": "Name a big city and its country.", "max_tokens": 80, "response_schema": schema}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let data = &body["data"];
    assert!(
        crate::server::chat::structured::compile(&schema)
            .unwrap()
            .is_valid(data),
        "{body}"
    );
    assert_eq!(
        &serde_json::from_str::<Value>(body["answer"].as_str().unwrap()).unwrap(),
        data
    );

    for (request, field, detail) in [
        (json!({}), Some("user_input"), "missing field"),
        (
            json!({"user_input": "  "}),
            Some("user_input"),
            "user_input must not be empty",
        ),
        (
            json!({"user_input": "x".repeat(16_001)}),
            Some("user_input"),
            "the limit is 16000",
        ),
        (
            json!({"user_input": "hi", "max_tokens": 0}),
            Some("max_tokens"),
            "between 1 and 8192",
        ),
        (
            json!({"user_input": "hi", "max_token": 5}),
            Some("max_token"),
            "unknown field `max_token`",
        ),
        (json!({"user_input": 42}), Some("user_input"), "invalid type"),
        (
            json!({"user_input": "hi", "response_schema": {"type": "nonsense"}}),
            Some("response_schema"),
            "not a usable JSON Schema",
        ),
        (
            json!({"user_input": "hi", "response_schema": [1, 2]}),
            Some("response_schema"),
            "must be an object",
        ),
    ] {
        let res = post(request.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{request}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["type"], "urn:stoa:problem:invalid_input");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["field"].as_str(), field, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(detail), "{problem}");
    }

    let spec: Value = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/api/v1/generate"]["post"].is_object());
    let docs = reqwest::get(format!("{}/docs", app.base)).await.unwrap();
    assert_eq!(
        docs.url().path(),
        "/docs/index.html",
        "redirected to the static page"
    );
}

#[test]
fn openapi_document_matches_its_snapshot() {
    let spec = openapi().to_pretty_json().unwrap();
    let parsed: Value = serde_json::from_str(&spec).unwrap();
    assert!(parsed["openapi"].as_str().unwrap().starts_with("3.1"));
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/tests/snapshots/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &spec).unwrap();
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        saved == spec,
        "the OpenAPI document changed; review it, then accept it with \
         `UPDATE_SNAPSHOTS=1 make test-rust` and commit src/server/tests/snapshots/openapi.json"
    );
}

#[tokio::test]
async fn pages_carry_a_nonce_csp_and_every_response_the_security_headers() {
    let app = spawn_app().await;
    let page = reqwest::get(format!("{}/", app.base)).await.unwrap();
    let headers = page.headers().clone();
    let html = page.text().await.unwrap();
    let csp = headers["content-security-policy"].to_str().unwrap().to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy");
    assert!(
        csp.contains("object-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // Every inline script of the page carries this response's nonce.
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert!(
        html.matches(&format!("nonce=\"{nonce}\"")).count() >= scripts,
        "{html}"
    );
    let again = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_ne!(
        again.headers()["content-security-policy"].to_str().unwrap(),
        csp,
        "a new nonce per response"
    );
    for path in ["/", "/v1/models", "/api/v1/openapi.json"] {
        let res = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(res.headers()["x-frame-options"], "DENY", "{path}");
        assert_eq!(res.headers()["referrer-policy"], "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413_in_the_shape_of_their_api() {
    let app = spawn_app().await;
    let size = crate::server::http::security::MAX_BODY_BYTES + 1;
    for path in [
        "/v1/chat/completions",
        "/api/v1/generate",
        "/api/v1/conversations",
        "/api/chat/send",
    ] {
        // Declared by Content-Length, and sent chunked without one (the limit is then hit
        // while the handler reads).
        for chunked in [false, true] {
            let body = if chunked {
                let chunks = (0..size / 65_536 + 1).map(|_| Ok::<_, std::io::Error>(vec![b' '; 65_536]));
                reqwest::Body::wrap_stream(futures::stream::iter(chunks))
            } else {
                reqwest::Body::from(vec![b' '; size])
            };
            let res = reqwest::Client::new()
                .post(format!("{}{path}", app.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 413, "{path} chunked={chunked}");
            let body: Value = res.json().await.unwrap();
            let (field, message) = if path.starts_with("/v1/") {
                (&body["error"]["param"], &body["error"]["message"])
            } else if path.starts_with("/api/v1/") {
                assert_eq!(body["type"], "urn:stoa:problem:payload_too_large", "{body}");
                (&body["field"], &body["detail"])
            } else {
                (&body["field"], &body["message"])
            };
            assert_eq!(field, "body", "{path} chunked={chunked}: {body}");
            assert!(message.as_str().unwrap().contains("4 MB"), "{path}: {body}");
        }
    }
    // Under the limit is under the limit: 3 MB (over axum's own 2 MB default) goes in.
    let padded = format!("{}{{\"title\": \"padded\"}}", " ".repeat(3 * 1_048_576));
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/conversations", app.base))
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// The resources of `/api/v1` in single-user mode: conversations, messages (whole and
/// streamed), documents and collections, with problems for bad input and unknown ids.
#[tokio::test]
async fn rest_resources_cover_conversations_messages_and_documents() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/v1{path}", app.base);

    // Create (titled), list, rename, and refuse bad input naming the field.
    let res = http
        .post(url("/conversations"))
        .json(&json!({"title": "Trip planning"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["title"], "Trip planning");
    let res = http.post(url("/conversations")).send().await.unwrap();
    assert_eq!(res.status(), 201, "no body: an untitled conversation");
    let list: Value = http
        .get(url("/conversations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(201)}), "title"),
        (json!({"name": "x"}), "name"),
    ] {
        let res = http
            .patch(url(&format!("/conversations/{id}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["field"], field, "{p}");
    }
    let res = http
        .patch(url(&format!("/conversations/{id}")))
        .json(&json!({"title": "Trip to Lisbon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A message with the whole reply, then one streamed as server-sent events.
    let res = http
        .post(url(&format!("/conversations/{id}/messages")))
        .json(&json!({"message": "What is the capital of Portugal?", "params": {"temperature": 0.0, "max_tokens": 16}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let exchange: Value = res.json().await.unwrap();
    assert_eq!(
        exchange["user_message"]["content"],
        "What is the capital of Portugal?"
    );
    assert!(["complete", "stopped"].contains(&exchange["assistant_message"]["status"].as_str().unwrap()));
    let res = http
        .post(url(&format!("/conversations/{id}/messages")))
        .json(&json!({"message": "And of Spain?", "stream": true, "params": {"temperature": 0.0, "max_tokens": 12}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = res.text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"started"), "{text}");
    assert_eq!(names.last(), Some(&"done"), "{text}");
    assert!(names.contains(&"token"), "{text}");
    let messages: Value = http
        .get(url(&format!("/conversations/{id}/messages")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages.as_array().unwrap().len(), 4);
    // Regenerate the last answer: a new version, the old one kept; switch back to it.
    let last = messages[3]["id"].as_str().unwrap().to_owned();
    let res = http
        .post(url(&format!("/conversations/{id}/messages/{last}/regenerate")))
        .json(&json!({"params": {"temperature": 1.0, "max_tokens": 8}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let again: Value = res.json().await.unwrap();
    assert_eq!(
        again["assistant_message"]["siblings"].as_array().unwrap().len(),
        2
    );
    let res = http
        .put(url(&format!("/conversations/{id}/branch")))
        .json(&json!({"message_id": last}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["messages"][3]["id"], last.as_str());
    // Settings: validated, stored, shown with the conversation.
    let settings = |body: Value| {
        http.put(url(&format!("/conversations/{id}/settings")))
            .json(&body)
            .send()
    };
    let res = settings(json!({"temperature": 3})).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "temperature");
    let res = settings(json!({"system_prompt": "Be brief.", "max_tokens": 32}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = http
        .get(url(&format!("/conversations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["settings"]["system_prompt"], "Be brief.");
    let res = http
        .post(url(&format!("/conversations/{id}/messages")))
        .json(&json!({"message": "hi", "params": {"temperature": 5.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "temperature");

    // Documents: upload, status, collections, delete.
    let form = reqwest::multipart::Form::new()
        .text("metadata", r#"{"collection": "travel"}"#)
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"# Lisbon\nTrams climb the hills of Alfama.".to_vec())
                .file_name("lisbon.md"),
        );
    let res = http.post(url("/documents")).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let outcomes: Value = res.json().await.unwrap();
    let doc = outcomes[0]["document"]["id"].as_str().unwrap().to_owned();
    let got: Value = http
        .get(url(&format!("/documents/{doc}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["file_name"], "lisbon.md");
    let collections: Value = http
        .get(url("/collections"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let collection = collections[0]["id"].as_str().unwrap();
    let res = http
        .put(url(&format!("/conversations/{id}/collections")))
        .json(&json!({"collection_ids": [collection]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = http
        .post(url("/documents"))
        .body("not multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        http.delete(url(&format!("/documents/{doc}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        http.get(url(&format!("/documents/{doc}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Unknown ids are 404 problems; delete is 204 once.
    for path in [
        "/conversations/nope",
        "/conversations/nope/messages",
        "/documents/nope",
    ] {
        let res = http.get(url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(
        http.delete(url(&format!("/conversations/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        http.delete(url(&format!("/conversations/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
