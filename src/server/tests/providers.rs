//! Providers over real HTTP: a second Stoa uses the first one's `/v1` through
//! async-openai; fallback to the local model when a provider is down; cancellation that
//! reaches the upstream; a provider dying mid-answer.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use tokio::{net::TcpListener, task::JoinSet};

use super::support::ME;
use super::support::{App, collect, eventually, spawn_app, spawn_app_with};
use crate::{
    api::{
        events::ChatEvent,
        types::{ChatRequest, GenerationParams, MessageStatus, MessageView},
    },
    server::config::{ModelSetting, ProviderSettings},
};

fn provider(name: &str, base_url: &str, fallback: Option<&str>) -> ProviderSettings {
    ProviderSettings {
        name: name.into(),
        base_url: base_url.into(),
        fallback: fallback.map(Into::into),
        retries: 1,
        ..ProviderSettings::default()
    }
}

fn request(conversation_id: &str, model: Option<&str>, message: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        conversation_id: conversation_id.into(),
        message: message.into(),
        params: GenerationParams {
            temperature: 0.0,
            max_tokens,
        },
        model: model.map(Into::into),
        trim_history: false,
        edit_of: None,
    }
}

/// Asks `message` in a new conversation; returns every event until `Done`.
async fn ask(app: &App, model: Option<&str>, message: &str, max_tokens: u32) -> (String, Vec<ChatEvent>) {
    let conv = app.state.chat.create_conversation(ME).await.unwrap();
    let events = app
        .state
        .chat
        .send(ME, request(&conv.id, model, message, max_tokens))
        .await
        .unwrap();
    (conv.id, collect(events).await)
}

fn done(events: &[ChatEvent]) -> &MessageView {
    match events.last() {
        Some(ChatEvent::Done { message }) => message,
        other => panic!("the answer ends with Done: {other:?}"),
    }
}

fn answering(events: &[ChatEvent]) -> (&str, &str, Option<&str>) {
    events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Answering {
                provider,
                model,
                notice,
            } => Some((provider.as_str(), model.as_str(), notice.as_deref())),
            _ => None,
        })
        .expect("an Answering event")
}

/// A Stoa whose only provider is `upstream`'s `/v1`.
async fn gateway_to(upstream: &str, fallback: Option<&str>) -> App {
    let base = format!("{upstream}/v1");
    let fallback = fallback.map(str::to_owned);
    spawn_app_with(move |s| {
        s.local_model.enabled = fallback.is_some();
        s.providers = vec![provider("a", &base, fallback.as_deref())];
        s.routing.retry_backoff_ms = 10;
    })
    .await
}

#[tokio::test]
async fn a_second_stoa_answers_through_the_first_over_http() {
    let a = spawn_app().await;
    let b = gateway_to(&a.base, None).await;

    // B discovered A's model, with its context window, from A's GET /v1/models.
    let list = b.state.chat.model_list();
    assert_eq!(list.models.len(), 1, "{list:?}");
    let m = &list.models[0];
    assert_eq!(m.provider, "a");
    assert!(m.model.starts_with("local/SmolLM2"), "{m:?}");
    assert_eq!(m.context_window, 4096);
    assert!(m.available && !m.local);
    assert_eq!(list.default.as_deref(), Some(m.id.as_str()));

    let question = "What is the capital of France?";
    let (conv, via_b) = ask(&b, None, question, 32).await;
    let (_, direct) = ask(&a, None, question, 32).await;
    let (b_answer, a_answer) = (done(&via_b), done(&direct));
    assert_eq!(b_answer.status, MessageStatus::Complete, "{b_answer:?}");
    // Greedy decoding: through B it is A's own answer, token for token.
    assert_eq!(b_answer.content, a_answer.content);
    assert!(b_answer.content.contains("Paris"), "{}", b_answer.content);
    assert_eq!(answering(&via_b), ("a", m.model.as_str(), None));
    let (bu, au) = (b_answer.usage.as_ref().unwrap(), a_answer.usage.as_ref().unwrap());
    assert_eq!((bu.provider.as_str(), bu.model.as_str()), ("a", m.model.as_str()));
    // Usage as A reported it (stream_options.include_usage).
    assert_eq!(bu.prompt_tokens, au.prompt_tokens);
    assert_eq!(bu.completion_tokens, au.completion_tokens);
    // The conversation remembers its model.
    let stored = b.state.chat.get_conversation(ME, &conv).await.unwrap();
    assert_eq!(stored.model.as_deref(), Some(m.id.as_str()));
}

#[tokio::test]
async fn stop_and_a_closed_listener_close_the_upstream_stream() {
    let a = spawn_app().await;
    let a_model = a.state.local.clone().expect("A runs the local model");
    let b = gateway_to(&a.base, None).await;
    let story = "Write a very long story about a lighthouse keeper and the sea.";

    for how in ["stop", "drop"] {
        let conv = b.state.chat.create_conversation(ME).await.unwrap();
        let mut events = Box::pin(
            b.state
                .chat
                .send(ME, request(&conv.id, None, story, 600))
                .await
                .unwrap(),
        );
        let mut assistant_id = String::new();
        let mut tokens = 0;
        while tokens < 3 {
            match events.next().await.expect("events until tokens arrive") {
                ChatEvent::Started {
                    assistant_message, ..
                } => assistant_id = assistant_message.id,
                ChatEvent::Token { .. } => tokens += 1,
                _ => {}
            }
        }
        assert_eq!(a_model.in_flight(), 1, "A is decoding for B");
        match how {
            "stop" => assert!(b.state.chat.stop(ME, &assistant_id).await.unwrap()),
            _ => drop(events),
        }
        // A notices its client left only because B closed the HTTP connection.
        assert!(
            eventually(Duration::from_secs(10), || a_model.in_flight() == 0).await,
            "A stopped decoding after B's {how}"
        );
        assert!(eventually(Duration::from_secs(5), || b.state.chat.running() == 0).await);
        let stored = b.state.chat.get_conversation(ME, &conv.id).await.unwrap();
        let answer = stored.messages.last().unwrap();
        assert_eq!(answer.status, MessageStatus::Stopped, "{how}: {answer:?}");
        assert!(!answer.content.is_empty());
    }
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_provider_that_is_down_falls_back_before_the_first_token() {
    let down = format!("http://127.0.0.1:{}/v1", closed_port().await);
    let b = spawn_app_with(move |s| {
        let mut with_fallback = provider("down", &down, Some("local"));
        with_fallback.models = vec![ModelSetting::Id("gpt-4o-mini".into())];
        let mut alone = provider("alone", &down, None);
        alone.models = vec![ModelSetting::Id("gpt-4o-mini".into())];
        s.providers = vec![with_fallback, alone];
        s.routing.retry_backoff_ms = 10;
    })
    .await;
    let list = b.state.chat.model_list();
    let down_model = list.models.iter().find(|m| m.id == "down/gpt-4o-mini").unwrap();
    assert!(!down_model.available, "the start-up probe found it down");
    assert_eq!(down_model.context_window, 128_000, "known OpenAI size");

    let (_, events) = ask(&b, Some("down/gpt-4o-mini"), "What is the capital of France?", 24).await;
    let (provider, model, notice) = answering(&events);
    assert_eq!(provider, "local");
    assert!(model.contains("SmolLM2"));
    let notice = notice.expect("the fallback is explained");
    assert!(notice.contains("down/gpt-4o-mini failed 2 times"), "{notice}");
    assert!(notice.contains("could not connect"), "{notice}");
    let answer = done(&events);
    assert_eq!(answer.status, MessageStatus::Complete);
    assert_eq!(answer.usage.as_ref().unwrap().provider, "local");
    assert_eq!(answer.notice.as_deref(), Some(notice));

    // Without a fallback the answer fails with the reason; the question stays stored.
    let (conv, events) = ask(&b, Some("alone/gpt-4o-mini"), "Hello?", 8).await;
    let answer = done(&events);
    assert_eq!(answer.status, MessageStatus::Failed);
    assert!(
        answer.error.as_deref().unwrap().contains("could not connect"),
        "{answer:?}"
    );
    let stored = b.state.chat.get_conversation(ME, &conv).await.unwrap();
    assert_eq!(stored.messages[0].content, "Hello?");

    // The same through B's own OpenAI-compatible API.
    let post = |model: &str| {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", b.base))
            .json(&serde_json::json!({"model": model, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
    };
    let res = post("down/gpt-4o-mini").await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["model"].as_str().unwrap().starts_with("local/"), "{body}");
    let res = post("alone/gpt-4o-mini").await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable", "{body}");
}

/// Fault injection: a TCP relay in front of A whose connections can be cut, as if A's
/// process died mid-answer.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<JoinSet<()>>>,
}

impl Relay {
    async fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let tracked = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tracked.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, connections }
    }

    fn cut(&self) {
        self.connections.lock().unwrap().abort_all();
    }
}

#[tokio::test]
async fn a_provider_dying_mid_answer_fails_the_answer_and_is_not_retried() {
    let a = spawn_app().await;
    let a_addr: SocketAddr = a.base.trim_start_matches("http://").parse().unwrap();
    let relay = Relay::to(a_addr).await;
    // The local model is a fallback, to show it is not used once tokens were sent.
    let b = gateway_to(&format!("http://{}", relay.addr), Some("local")).await;

    let a_model = b
        .state
        .chat
        .model_list()
        .models
        .into_iter()
        .find(|m| m.provider == "a")
        .expect("A's model, through the relay")
        .id;
    let conv = b.state.chat.create_conversation(ME).await.unwrap();
    let story = "Write a very long story about a lighthouse keeper and the sea.";
    let mut events = Box::pin(
        b.state
            .chat
            .send(ME, request(&conv.id, Some(&a_model), story, 600))
            .await
            .unwrap(),
    );
    let mut seen = Vec::new();
    let mut tokens = 0;
    while tokens < 3 {
        let e = events.next().await.unwrap();
        tokens += usize::from(matches!(e, ChatEvent::Token { .. }));
        seen.push(e);
    }
    relay.cut();
    seen.extend(collect(events).await);
    let answer = done(&seen);
    assert_eq!(answer.status, MessageStatus::Failed, "{answer:?}");
    assert!(!answer.content.is_empty(), "the partial answer is kept");
    assert!(answer.error.is_some());
    assert_eq!(
        answer.usage.as_ref().unwrap().provider,
        "a",
        "not retried elsewhere"
    );
    let answering_events = seen
        .iter()
        .filter(|e| matches!(e, ChatEvent::Answering { .. }))
        .count();
    assert_eq!(answering_events, 1);
}

#[tokio::test]
async fn answers_go_to_the_endpoint_with_the_fewest_in_flight_and_skip_a_dead_one() {
    let (u1, u2) = (spawn_app().await, spawn_app().await);
    let models = [u1.state.local.clone().unwrap(), u2.state.local.clone().unwrap()];
    // Nothing listens there: connections are refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let endpoints = vec![format!("{}/v1", u1.base), format!("{}/v1", u2.base)];
    let gateway = spawn_app_with(move |s| {
        s.local_model.enabled = false;
        s.providers = vec![ProviderSettings {
            endpoints,
            ..provider("lab", &dead, None)
        }];
        s.routing.retry_backoff_ms = 10;
    })
    .await;
    let list = gateway.state.chat.model_list();
    assert_eq!(list.models.len(), 1, "discovered from a live endpoint: {list:?}");
    assert!(
        list.models[0].available,
        "the provider is up while one endpoint is"
    );

    // Two long answers at once: one on each live endpoint, none on the dead one.
    let story = "Write a very long story about a lighthouse keeper and the sea.";
    let mut running = Vec::new();
    for _ in 0..2 {
        let conv = gateway.state.chat.create_conversation(ME).await.unwrap();
        let mut events = Box::pin(
            gateway
                .state
                .chat
                .send(ME, request(&conv.id, None, story, 600))
                .await
                .unwrap(),
        );
        while !matches!(events.next().await, Some(ChatEvent::Token { .. })) {}
        running.push(events);
    }
    let in_flight: Vec<usize> = models.iter().map(|m| m.in_flight()).collect();
    assert_eq!(in_flight, [1, 1], "one answer on each endpoint");
    drop(running);
    assert!(
        eventually(Duration::from_secs(10), || models
            .iter()
            .all(|m| m.in_flight() == 0))
        .await,
        "both upstream answers stopped"
    );

    // One after another: the dead endpoint is never tried.
    for _ in 0..2 {
        let (_, events) = ask(&gateway, None, "Name a colour.", 8).await;
        let answer = done(&events);
        assert_eq!(answer.status, MessageStatus::Complete, "{answer:?}");
        assert_eq!(answering(&events).2, None, "no failed attempt before it");
    }
}
