//! The chat service end to end with the real model and SQLite.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;

use super::support::ME;
use super::support::{chat, chat_with, collect, eventually, model_config, streaming};
use crate::{
    api::{
        ApiError, ErrorCode,
        events::ChatEvent,
        types::{ChatRequest, GenerationParams, MessageStatus, MessageView, Role},
        validation::MAX_MESSAGE_CHARS,
    },
    server::{
        llm::{
            ChatProvider, GenerationRequest, PromptMessage, PromptRole, TokenEvent,
            local::{LocalModel, LocalModelConfig},
        },
        storage::NewMessage,
    },
};

fn req(conversation_id: &str, message: &str, temperature: f32, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        conversation_id: conversation_id.into(),
        message: message.into(),
        params: GenerationParams {
            temperature,
            max_tokens,
        },
        model: None,
        trim_history: false,
        edit_of: None,
    }
}

fn tokens_of(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Token { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn done(events: &[ChatEvent]) -> &MessageView {
    match events.last() {
        Some(ChatEvent::Done { message }) => message,
        other => panic!("the stream must end with Done, got {other:?}"),
    }
}

/// A new conversation with a long greedy answer under way; returns its id and the events.
async fn long_answer(
    t: &super::support::TestChat,
    prompt: &str,
    max_tokens: u32,
) -> (
    String,
    std::pin::Pin<Box<dyn futures::Stream<Item = ChatEvent> + Send>>,
) {
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let events = t
        .chat
        .send(ME, req(&conv.id, prompt, 0.0, max_tokens))
        .await
        .unwrap();
    (conv.id, Box::pin(events))
}

/// Waits (bounded) until no answer is running; a liveness check, not a timing assertion.
async fn settle(chat: &crate::server::chat::ChatService) {
    for _ in 0..200 {
        if chat.running() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the answer did not end");
}

#[tokio::test]
async fn streams_tokens_and_stores_the_complete_answer() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let events = collect(
        t.chat
            .send(ME, req(&conv.id, "What is the capital of France?", 0.0, 48))
            .await
            .unwrap(),
    )
    .await;

    let ChatEvent::Started {
        user_message,
        assistant_message,
    } = &events[0]
    else {
        panic!("first event must be Started: {:?}", events[0]);
    };
    assert_eq!(user_message.role, Role::User);
    assert_eq!(user_message.content, "What is the capital of France?");
    assert_eq!(assistant_message.status, MessageStatus::Streaming);

    let streamed = tokens_of(&events);
    let token_events = events
        .iter()
        .filter(|e| matches!(e, ChatEvent::Token { .. }))
        .count();
    assert!(token_events >= 2, "the answer arrives in pieces: {token_events}");
    let message = done(&events);
    assert_eq!(message.status, MessageStatus::Complete);
    assert_eq!(message.content, streamed);
    assert!(message.content.contains("Paris"), "{}", message.content);
    let usage = message.usage.as_ref().expect("usage is stored");
    assert_eq!(usage.provider, "local");
    assert!(usage.model.contains("SmolLM2"));
    assert!(usage.prompt_tokens > 10);
    assert!(usage.completion_tokens >= token_events as u32 - 1);
    assert!(usage.ttft_ms.is_some());
    assert!(usage.tokens_per_second.unwrap() > 0.0);

    let stored = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(stored.title, "What is the capital of France?");
    assert_eq!(stored.messages.len(), 2);
    assert_eq!(&stored.messages[1], message);
    let listed = t.chat.list_conversations(ME).await.unwrap();
    assert_eq!(listed[0].id, conv.id);
}

#[tokio::test]
async fn greedy_answers_are_reproducible_and_history_is_in_the_prompt() {
    let t = chat().await;
    let a = t.chat.create_conversation(ME).await.unwrap();
    let b = t.chat.create_conversation(ME).await.unwrap();
    let first = collect(
        t.chat
            .send(ME, req(&a.id, "Name a fruit.", 0.0, 24))
            .await
            .unwrap(),
    )
    .await;
    let again = collect(
        t.chat
            .send(ME, req(&b.id, "Name a fruit.", 0.0, 24))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(done(&first).content, done(&again).content);

    // The second turn's prompt holds the first turn: more prompt tokens than the first
    // prompt plus the first answer.
    let second = collect(
        t.chat
            .send(ME, req(&a.id, "Another one?", 0.0, 24))
            .await
            .unwrap(),
    )
    .await;
    let u1 = done(&first).usage.clone().unwrap();
    let u2 = done(&second).usage.clone().unwrap();
    assert!(
        u2.prompt_tokens > u1.prompt_tokens + u1.completion_tokens,
        "{u1:?} then {u2:?}"
    );
}

#[tokio::test]
async fn stop_keeps_the_partial_answer_marked_stopped() {
    let t = chat().await;
    let (conv_id, mut events) = long_answer(&t, "Tell me a very long story about a dragon.", 1000).await;
    let Some(ChatEvent::Started {
        assistant_message, ..
    }) = events.next().await
    else {
        panic!("Started first");
    };
    let mut streamed = String::new();
    let mut stopped = false;
    let mut last = None;
    while let Some(e) = events.next().await {
        match e {
            ChatEvent::Token { text } => {
                streamed.push_str(&text);
                if streamed.len() > 20 && !stopped {
                    assert!(t.chat.stop(ME, &assistant_message.id).await.unwrap());
                    stopped = true;
                }
            }
            ChatEvent::Done { message } => {
                last = Some(message);
                break;
            }
            ChatEvent::Answering { provider, .. } => assert_eq!(provider, "local"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let message = last.expect("Done after Stop");
    assert_eq!(message.status, MessageStatus::Stopped);
    assert_eq!(message.content, streamed, "the partial answer is kept whole");
    assert!(message.usage.unwrap().completion_tokens < 1000);
    assert!(
        !t.chat.stop(ME, &assistant_message.id).await.unwrap(),
        "no longer running"
    );

    let stored = t.chat.get_conversation(ME, &conv_id).await.unwrap();
    assert_eq!(stored.messages[1].status, MessageStatus::Stopped);
    assert_eq!(stored.messages[1].content, streamed);
}

#[tokio::test]
async fn dropping_the_stream_stops_decoding_and_frees_the_model() {
    let t = chat().await;
    let (conv_id, mut events) = long_answer(&t, "Write a very long essay about the ocean.", 1500).await;
    let mut seen = 0;
    while let Some(e) = events.next().await {
        if matches!(e, ChatEvent::Token { .. }) {
            seen += 1;
            if seen == 5 {
                break;
            }
        }
    }
    drop(events); // the tab closed
    settle(&t.chat).await;

    let stored = t.chat.get_conversation(ME, &conv_id).await.unwrap();
    let answer = &stored.messages[1];
    assert_eq!(answer.status, MessageStatus::Stopped);
    assert!(!answer.content.is_empty());
    assert!(answer.usage.as_ref().unwrap().completion_tokens < 1500);

    // The model is free again.
    let next = collect(t.chat.send(ME, req(&conv_id, "Say hi.", 0.0, 8)).await.unwrap()).await;
    assert_eq!(done(&next).status, MessageStatus::Complete);
}

async fn rejected(t: &super::support::TestChat, request: ChatRequest) -> ApiError {
    match t.chat.send(ME, request).await {
        Ok(_) => panic!("must be rejected"),
        Err(e) => e.into(),
    }
}

#[tokio::test]
async fn invalid_requests_are_rejected_before_anything_is_stored() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let too_long = "x".repeat(MAX_MESSAGE_CHARS + 1);
    let cases = [
        (
            req(&conv.id, "   ", 0.0, 10),
            "message",
            ErrorCode::InvalidInput,
            "empty",
        ),
        (
            req(&conv.id, &too_long, 0.0, 10),
            "message",
            ErrorCode::InvalidInput,
            "16000",
        ),
        (
            req(&conv.id, "hi", 2.5, 10),
            "temperature",
            ErrorCode::InvalidInput,
            "between 0 and 2",
        ),
        (
            req(&conv.id, "hi", 0.0, 0),
            "max_tokens",
            ErrorCode::InvalidInput,
            "between 1 and 8192",
        ),
        (
            req(&conv.id, "hi", 0.0, 8000),
            "max_tokens",
            ErrorCode::ContextLengthExceeded,
            "4096",
        ),
    ];
    for (request, field, code, text) in cases {
        let e = rejected(&t, request).await;
        assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(text), "{e:?} should mention {text}");
        assert_eq!(e.status(), 400);
    }
    // A prompt longer than the whole window blames the message: "a " is about one token
    // per two characters, so 14,000 characters (under the 16,000 limit) exceed 4,096 tokens.
    let e = rejected(&t, req(&conv.id, &"a ".repeat(7_000), 0.0, 10)).await;
    assert_eq!(e.code, ErrorCode::ContextLengthExceeded);
    assert_eq!(e.field.as_deref(), Some("message"), "{e:?}");

    let stored = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    assert!(stored.messages.is_empty(), "nothing was stored");
    assert_eq!(stored.title, "New chat");

    let e = rejected(&t, req("no-such-conversation", "hi", 0.0, 10)).await;
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(e.status(), 404);

    let mut unknown_model = req(&conv.id, "hi", 0.0, 10);
    unknown_model.model = Some("nowhere/gpt-9".into());
    let e = rejected(&t, unknown_model).await;
    assert_eq!(e.field.as_deref(), Some("model"), "{e:?}");
    assert_eq!(e.status(), 404);
    assert!(
        t.chat
            .get_conversation(ME, &conv.id)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

#[tokio::test]
async fn a_chat_that_outgrew_the_window_is_trimmed_only_when_allowed() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    // Eight long turns, about 9,600 tokens: more than the 4,096-token window.
    let mut parent = None;
    for i in 0..16 {
        let role = if i % 2 == 0 { Role::User } else { Role::Assistant };
        let id = uuid::Uuid::now_v7().to_string();
        t.store
            .insert_message(NewMessage {
                id: id.clone(),
                conversation_id: conv.id.clone(),
                parent_id: parent.replace(id),
                role,
                content: format!("turn {i}: {}", "a ".repeat(600)),
                status: MessageStatus::Complete,
                provider: None,
                model: None,
                temperature: None,
                max_tokens: None,
                citations: Vec::new(),
                now_ms: i,
            })
            .await
            .unwrap();
    }
    let e = rejected(&t, req(&conv.id, "And now?", 0.0, 16)).await;
    assert_eq!(e.code, ErrorCode::ContextLengthExceeded, "{e:?}");

    let mut allowed = req(&conv.id, "And now?", 0.0, 16);
    allowed.trim_history = true;
    let events = collect(t.chat.send(ME, allowed).await.unwrap()).await;
    let answer = done(&events);
    assert_eq!(answer.status, MessageStatus::Complete, "{answer:?}");
    let notice = answer.notice.as_deref().expect("the trim is reported");
    assert!(notice.contains("oldest messages were left out"), "{notice}");
    let left_out: usize = notice
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!((2..16).contains(&left_out), "{notice}");
    assert_eq!(left_out % 2, 0, "never an answer without its question: {notice}");
    let usage = answer.usage.as_ref().unwrap();
    assert!(usage.prompt_tokens + 16 <= 4096, "{usage:?}");
    // Nothing was deleted: the prompt left turns out, the history keeps them.
    assert_eq!(
        t.chat
            .get_conversation(ME, &conv.id)
            .await
            .unwrap()
            .messages
            .len(),
        18
    );
}

#[tokio::test]
async fn a_full_queue_answers_busy_and_stores_nothing() {
    // A model instance with room for exactly two requests, both decoding, none waiting.
    let model = tokio::task::spawn_blocking(|| {
        LocalModel::load(&LocalModelConfig {
            parallel: 2,
            ..model_config(0)
        })
    })
    .await
    .unwrap()
    .unwrap();
    let t = chat_with(Arc::new(model)).await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let second = t.chat.create_conversation(ME).await.unwrap();
    let other = t.chat.create_conversation(ME).await.unwrap();
    let mut first = Box::pin(
        t.chat
            .send(ME, req(&conv.id, "Write a long poem about mountains.", 0.0, 400))
            .await
            .unwrap(),
    );
    first.next().await; // Started: the first request holds a slot
    let mut running = Box::pin(
        t.chat
            .send(ME, req(&second.id, "Write a long poem about rivers.", 0.0, 400))
            .await
            .unwrap(),
    );
    running.next().await; // and the second the other

    let e = rejected(&t, req(&other.id, "hello?", 0.0, 10)).await;
    assert_eq!(e.code, ErrorCode::Busy);
    assert_eq!(e.status(), 503);
    assert!(e.message.contains("busy"));
    assert!(
        t.chat
            .get_conversation(ME, &other.id)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    drop(first);
    drop(running);
    settle(&t.chat).await;
    // Once the worker has let go of the slot, the same request goes through.
    let mut retry = None;
    for _ in 0..200 {
        match t.chat.send(ME, req(&other.id, "hello?", 0.0, 10)).await {
            Ok(events) => {
                retry = Some(events);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let ok = collect(retry.expect("the slot is released after the stream is dropped")).await;
    assert_eq!(done(&ok).status, MessageStatus::Complete);
}

/// A greedy answer of at most `max_tokens` from `model` to `messages` as it starts.
async fn local_stream(
    model: &LocalModel,
    messages: &[PromptMessage],
    max_tokens: u32,
) -> crate::server::llm::TokenStream {
    let request = GenerationRequest {
        model: model.models()[0].id.clone(),
        messages: messages.to_vec(),
        temperature: 0.0,
        max_tokens,
        options: Default::default(),
    };
    model.stream(request).await.unwrap()
}

/// The rest of an answer: its text, its prompt's length and its length in tokens.
async fn finish_answer(mut stream: crate::server::llm::TokenStream) -> (String, u32, u32) {
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            TokenEvent::Token(piece) => text.push_str(&piece),
            TokenEvent::Done {
                prompt_tokens,
                completion_tokens,
                ..
            } => return (text, prompt_tokens, completion_tokens),
            _ => {}
        }
    }
    panic!("the stream ended without Done");
}

/// A greedy answer from `model` to `messages`: its text and its prompt's length.
async fn local_answer(model: &LocalModel, messages: &[PromptMessage]) -> (String, u32) {
    let (text, prompt_tokens, _) = finish_answer(local_stream(model, messages, 24).await).await;
    (text, prompt_tokens)
}

/// Continuous batching: four answers decoded together are those the same prompts get one
/// at a time (see the comparison below), a fifth request is busy, and dropping one stream
/// frees its sequence while the other three run on to their end.
#[tokio::test]
async fn four_answers_decode_together_and_a_stop_frees_only_its_own() {
    let model = tokio::task::spawn_blocking(|| {
        LocalModel::load(&LocalModelConfig {
            parallel: 4,
            prompt_cache: false,
            ..model_config(0)
        })
    })
    .await
    .unwrap()
    .unwrap();
    let prompts = [
        "Name a fruit.",
        "Write a haiku about rain.",
        "What is the capital of France?",
        "Count from one to ten.",
    ]
    .map(|p| vec![PromptMessage::text(PromptRole::User, p)]);
    let mut alone = Vec::new();
    for p in &prompts {
        alone.push(finish_answer(local_stream(&model, p, 32).await).await.0);
    }
    // The last answer's slot is freed by the worker's next step, just after its last event:
    // four together must not find it still taken.
    assert!(
        eventually(Duration::from_secs(30), || model.in_flight() == 0).await,
        "{} answers still under way",
        model.in_flight()
    );
    let together = futures::future::join_all(
        prompts
            .iter()
            .map(|p| async { finish_answer(local_stream(&model, p, 32).await).await.0 }),
    )
    .await;
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        eprintln!("answer {i}: alone {a:?}\n          together {b:?}");
    }
    assert_eq!(together, alone);

    // Four long answers under way; a fifth finds no room.
    let mut streams = Vec::new();
    for p in &prompts {
        let mut s = local_stream(&model, p, 160).await;
        assert!(matches!(s.next().await, Some(Ok(TokenEvent::Token(_)))));
        streams.push(s);
    }
    assert_eq!(model.in_flight(), 4);
    let busy = model.stream(GenerationRequest {
        model: model.models()[0].id.clone(),
        messages: prompts[0].clone(),
        temperature: 0.0,
        max_tokens: 8,
        options: Default::default(),
    });
    assert!(matches!(busy.await, Err(crate::server::llm::LlmError::Busy)));
    // The second listener leaves: its sequence is freed while the others decode.
    drop(streams.remove(1));
    assert!(
        eventually(Duration::from_secs(30), || model.in_flight() == 3).await,
        "the dropped answer's slot is freed"
    );
    for s in streams {
        let (text, _, completion) = finish_answer(s).await;
        assert!(
            completion > 1 && !text.is_empty(),
            "{completion} tokens: {text:?}"
        );
    }
}

/// The prompt cache: from the second turn on, the history already evaluated (the previous
/// prompt, at least) is not evaluated again, and the answers are those the same prompts
/// get without the cache. Exactly so for the 10th turn (the check); for the turns
/// before, their first words: llama.cpp rounds the same tokens differently in batches of
/// other sizes, and on this machine the 5th turn's near tie ("a white colour" against
/// "sweeter than …", after the same first four words) goes the other way with the cache.
#[tokio::test]
async fn the_prompt_cache_changes_no_answer_and_spares_the_history() {
    let load = |prompt_cache| {
        tokio::task::spawn_blocking(move || {
            LocalModel::load(&LocalModelConfig {
                prompt_cache,
                ..model_config(0)
            })
        })
    };
    let cached = load(true).await.unwrap().unwrap();
    let fresh = load(false).await.unwrap().unwrap();
    let questions = [
        "Name a fruit.",
        "What colour is it?",
        "Where does it grow?",
        "Name another one.",
        "Which of the two is sweeter?",
        "How do I store them?",
        "Can I freeze them?",
        "Give me a recipe with both.",
        "How long does it take?",
        "Summarise our conversation in one sentence.",
    ];
    let mut messages = vec![PromptMessage::text(
        PromptRole::System,
        "You are a helpful assistant.",
    )];
    let mut previous_prompt = 0;
    for (turn, question) in questions.iter().enumerate() {
        messages.push(PromptMessage::text(PromptRole::User, *question));
        let before = cached.prompt_cache_tokens();
        let (answer, prompt_tokens) = local_answer(&cached, &messages).await;
        let spared = cached.prompt_cache_tokens() - before;
        let (reference, _) = local_answer(&fresh, &messages).await;
        let words = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        if turn + 1 == questions.len() {
            assert_eq!(answer, reference, "turn {}", turn + 1);
        } else {
            assert_eq!(words(&answer), words(&reference), "turn {}", turn + 1);
        }
        assert!(
            spared < u64::from(prompt_tokens),
            "turn {}: the last prompt token is always evaluated",
            turn + 1
        );
        if turn > 0 {
            assert!(
                spared >= previous_prompt,
                "turn {}: {spared} tokens reused, the previous prompt had {previous_prompt}",
                turn + 1
            );
        }
        previous_prompt = u64::from(prompt_tokens);
        messages.push(PromptMessage::text(PromptRole::Assistant, answer));
    }
    assert_eq!(fresh.prompt_cache_tokens(), 0, "off means off");
}

#[tokio::test]
async fn shutdown_marks_unfinished_answers_interrupted() {
    let t = chat().await;
    let (conv_id, mut events) = long_answer(&t, "Write a very long story about a castle.", 1500).await;
    // Keep reading in the background, as a connected browser would.
    let reader = tokio::spawn(async move { while events.next().await.is_some() {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.chat.shutdown(Duration::from_millis(100)).await;
    reader.await.unwrap();

    let stored = t.chat.get_conversation(ME, &conv_id).await.unwrap();
    assert_eq!(stored.messages[1].status, MessageStatus::Interrupted);
    assert!(stored.messages[1].error.as_deref().unwrap().contains("shut down"));
}

#[tokio::test]
async fn answers_left_streaming_by_a_crash_are_marked_interrupted_at_start() {
    use crate::server::storage::NewMessage;
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    // What a killed server leaves behind: an answer still marked streaming.
    t.store
        .insert_message(NewMessage {
            content: "half an ans".into(),
            ..streaming("crashed", &conv.id, 1)
        })
        .await
        .unwrap();
    assert_eq!(t.store.interrupt_streaming(2).await.unwrap(), 1);
    let stored = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(stored.messages[0].status, MessageStatus::Interrupted);
    assert_eq!(
        stored.messages[0].content, "half an ans",
        "the partial text is kept"
    );
}

#[tokio::test]
async fn only_answers_whose_process_died_are_swept_and_running_ones_keep_their_lease() {
    let t = chat().await;
    let now = crate::server::clock::now_ms();
    let other = t.chat.create_conversation(ME).await.unwrap();
    // A live process's answer (lease just taken) and a dead one's (lease ran out).
    t.store
        .insert_message(streaming("alive", &other.id, now))
        .await
        .unwrap();
    t.store
        .insert_message(streaming("dead", &other.id, now - 60_000))
        .await
        .unwrap();

    // This process's own answer, running.
    let (mine, mut events) = long_answer(&t, "Write a very long story about a castle.", 1500).await;
    let first = events.next().await;
    assert!(matches!(first, Some(ChatEvent::Started { .. })), "{first:?}");
    let reader = tokio::spawn(async move { while events.next().await.is_some() {} });
    let own = t.chat.get_conversation(ME, &mine).await.unwrap().messages[1]
        .id
        .clone();
    // Its lease as if this process had not renewed it for a long while...
    t.store
        .renew_answers(std::slice::from_ref(&own), 0)
        .await
        .unwrap();
    // ...then the keep-alive round: renews its own, sweeps what is abandoned.
    t.chat.keep_alive().await;

    // Every branch's messages, as stored.
    let status = |conv: String, id: String| {
        let store = &t.store;
        async move {
            let all = store.list_messages(ME, &conv).await.unwrap();
            all.into_iter().find(|m| m.id == id).unwrap().status
        }
    };
    assert_eq!(
        status(other.id.clone(), "dead".into()).await,
        MessageStatus::Interrupted
    );
    assert_eq!(
        status(other.id.clone(), "alive".into()).await,
        MessageStatus::Streaming
    );
    assert_eq!(status(mine.clone(), own.clone()).await, MessageStatus::Streaming);

    // At shutdown only this process's answer is marked, never the other process's.
    t.chat.shutdown(Duration::from_millis(100)).await;
    reader.await.unwrap();
    assert_eq!(status(mine, own).await, MessageStatus::Interrupted);
    assert_eq!(status(other.id, "alive".into()).await, MessageStatus::Streaming);
}

#[tokio::test]
async fn conversations_are_renamed_deleted_and_restored() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    collect(
        t.chat
            .send(ME, req(&conv.id, "Name a fruit.", 0.0, 8))
            .await
            .unwrap(),
    )
    .await;

    let renamed = t
        .chat
        .rename_conversation(ME, &conv.id, "  Fruit talk  ")
        .await
        .unwrap();
    assert_eq!(renamed.title, "Fruit talk");
    for bad in ["   ", &"x".repeat(201)] {
        let e: ApiError = t
            .chat
            .rename_conversation(ME, &conv.id, bad)
            .await
            .unwrap_err()
            .into();
        assert_eq!((e.status(), e.field.as_deref()), (400, Some("title")), "{e:?}");
    }

    t.chat.delete_conversation(ME, &conv.id).await.unwrap();
    assert!(t.chat.list_conversations(ME).await.unwrap().is_empty());
    let gone: ApiError = t.chat.get_conversation(ME, &conv.id).await.unwrap_err().into();
    assert_eq!(gone.status(), 404);
    let e: ApiError = t
        .chat
        .send(ME, req(&conv.id, "hi", 0.0, 4))
        .await
        .err()
        .unwrap()
        .into();
    assert_eq!(e.status(), 404, "no answers into a deleted conversation");

    let back = t.chat.restore_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(back.title, "Fruit talk");
    assert_eq!(
        t.chat
            .get_conversation(ME, &conv.id)
            .await
            .unwrap()
            .messages
            .len(),
        2,
        "nothing lost"
    );

    // Purged for good once its time in the trash is over.
    t.chat.delete_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(t.store.purge_trash(i64::MAX).await.unwrap(), 1);
    let e: ApiError = t
        .chat
        .restore_conversation(ME, &conv.id)
        .await
        .unwrap_err()
        .into();
    assert_eq!(e.status(), 404);
}

/// The chat page's answers go on when the page goes away (a reload), and a page that
/// comes back (or another tab) re-attaches: what was said so far, then the rest live.
#[tokio::test]
async fn a_detached_answer_survives_its_listener_and_can_be_watched_by_its_owner_only() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let mut events = Box::pin(
        t.chat
            .send_detached(
                ME,
                req(
                    &conv.id,
                    "Write a long story about a dragon and a knight.",
                    0.0,
                    160,
                ),
            )
            .await
            .unwrap(),
    );
    let Some(ChatEvent::Started {
        assistant_message, ..
    }) = events.next().await
    else {
        panic!("Started comes first");
    };
    let id = assistant_message.id.clone();
    while !matches!(events.next().await, Some(ChatEvent::Token { .. })) {}
    // The page reloads: its stream is gone, the answer is not stopped.
    drop(events);

    assert!(
        t.chat
            .watch(crate::server::auth::UserId::for_tests(2), &id)
            .await
            .is_err(),
        "not someone else's"
    );
    let watched = collect(t.chat.watch(ME, &id).await.unwrap()).await;
    let Some(ChatEvent::Resumed {
        content, provider, ..
    }) = watched.first()
    else {
        panic!("a watcher starts from the answer so far: {:?}", watched.first());
    };
    assert!(!content.is_empty());
    assert_eq!(provider.as_deref(), Some("local"));
    let message = done(&watched);
    assert_eq!(message.status, MessageStatus::Complete);
    assert_eq!(
        format!("{content}{}", tokens_of(&watched)),
        message.content,
        "the snapshot plus the live tokens are exactly the answer"
    );
    assert_eq!(message.usage.as_ref().unwrap().completion_tokens, 160);
    // Once it has ended, there is nothing to attach to: the page reads the stored message.
    assert!(t.chat.watch(ME, &id).await.is_err());
}

/// Regenerate and edit keep the earlier versions as branches; switching shows a version
/// with the newest branch under it; bad targets are refused before anything is stored.
#[tokio::test]
async fn regenerate_and_edit_make_branches_the_user_can_switch_between() {
    use crate::api::types::RegenerateRequest;
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let first = collect(
        t.chat
            .send(ME, req(&conv.id, "Name a fruit.", 0.0, 8))
            .await
            .unwrap(),
    )
    .await;
    let (q1, a1) = match &first[0] {
        ChatEvent::Started {
            user_message,
            assistant_message,
        } => (user_message.id.clone(), assistant_message.id.clone()),
        other => panic!("{other:?}"),
    };
    let again = |message_id: &str, temperature: f32| RegenerateRequest {
        conversation_id: conv.id.clone(),
        message_id: message_id.into(),
        params: GenerationParams {
            temperature,
            max_tokens: 8,
        },
        model: None,
        trim_history: false,
    };
    let regenerated = collect(t.chat.regenerate(ME, again(&a1, 1.0)).await.unwrap()).await;
    let ChatEvent::Started {
        user_message,
        assistant_message,
    } = &regenerated[0]
    else {
        panic!()
    };
    assert_eq!(user_message.id, q1, "the same question is answered again");
    let a1b = assistant_message.id.clone();
    assert_eq!(assistant_message.siblings, [a1.clone(), a1b.clone()]);
    assert_eq!(done(&regenerated).status, MessageStatus::Complete);

    let view = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [q1.as_str(), a1b.as_str()]);
    assert_eq!(view.messages[1].siblings.len(), 2);

    // A follow-up continues the shown branch; editing the first question starts another.
    let follow = collect(
        t.chat
            .send(ME, req(&conv.id, "And a colour?", 0.0, 8))
            .await
            .unwrap(),
    )
    .await;
    let a2 = done(&follow).id.clone();
    let mut edit = req(&conv.id, "Name a vegetable.", 0.0, 8);
    edit.edit_of = Some(q1.clone());
    let edited = collect(t.chat.send(ME, edit).await.unwrap()).await;
    let view = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(view.messages.len(), 2);
    assert_eq!(view.messages[0].content, "Name a vegetable.");
    assert_eq!(view.messages[0].siblings.len(), 2);
    assert_eq!(view.messages[1].id, done(&edited).id);

    // Back to the first question: its newest branch, with the follow-up.
    let view = t.chat.switch_branch(ME, &conv.id, &q1).await.unwrap();
    let ids: Vec<&str> = view.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!((ids[0], ids[1], ids[3]), (q1.as_str(), a1b.as_str(), a2.as_str()));
    assert_eq!(view.messages[2].content, "And a colour?");
    // What is shown is remembered.
    assert_eq!(
        t.chat
            .get_conversation(ME, &conv.id)
            .await
            .unwrap()
            .messages
            .len(),
        4
    );

    // Refused before anything is stored: a question to regenerate, an answer to edit,
    // someone else's or an unknown message.
    let stored = t.store.list_messages(ME, &conv.id).await.unwrap().len();
    let e = ApiError::from(t.chat.regenerate(ME, again(&q1, 0.0)).await.err().unwrap());
    assert_eq!((e.status(), e.field.as_deref()), (400, Some("message_id")));
    let mut bad_edit = req(&conv.id, "x", 0.0, 8);
    bad_edit.edit_of = Some(a1.clone());
    let e = ApiError::from(t.chat.send(ME, bad_edit).await.err().unwrap());
    assert_eq!((e.status(), e.field.as_deref()), (400, Some("edit_of")));
    let e = ApiError::from(t.chat.regenerate(ME, again("nope", 0.0)).await.err().unwrap());
    assert_eq!(e.status(), 404);
    let other = crate::server::auth::UserId::for_tests(2);
    let e = ApiError::from(t.chat.regenerate(other, again(&a1, 0.0)).await.err().unwrap());
    assert_eq!(e.status(), 404);
    assert!(t.chat.switch_branch(other, &conv.id, &q1).await.is_err());
    assert_eq!(t.store.list_messages(ME, &conv.id).await.unwrap().len(), stored);
}

#[tokio::test]
async fn a_conversation_has_its_own_system_prompt_and_defaults() {
    use crate::api::types::ConversationSettings;
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    for (settings, field) in [
        (
            ConversationSettings {
                temperature: Some(5.0),
                ..Default::default()
            },
            "temperature",
        ),
        (
            ConversationSettings {
                max_tokens: Some(0),
                ..Default::default()
            },
            "max_tokens",
        ),
        (
            ConversationSettings {
                system_prompt: Some("x".repeat(8_001)),
                ..Default::default()
            },
            "system_prompt",
        ),
    ] {
        let e = ApiError::from(t.chat.set_settings(ME, &conv.id, settings).await.err().unwrap());
        assert_eq!(e.field.as_deref(), Some(field));
        assert!(
            e.message.contains(if field == "system_prompt" {
                "8000"
            } else {
                "between"
            }),
            "{}",
            e.message
        );
    }
    let wanted = ConversationSettings {
        system_prompt: Some("You are a pirate. Answer like one. ".repeat(20)),
        temperature: Some(0.2),
        max_tokens: Some(64),
        response_schema: None,
    };
    t.chat.set_settings(ME, &conv.id, wanted.clone()).await.unwrap();
    assert_eq!(
        t.chat.get_conversation(ME, &conv.id).await.unwrap().settings,
        wanted
    );
    // The system prompt reaches the model (in place of the template's default one): the
    // prompt grows by its 200-odd tokens.
    let plain = t.chat.create_conversation(ME).await.unwrap();
    let tokens = |events: &[ChatEvent]| done(events).usage.as_ref().unwrap().prompt_tokens;
    let with = collect(t.chat.send(ME, req(&conv.id, "Hello", 0.0, 4)).await.unwrap()).await;
    let without = collect(t.chat.send(ME, req(&plain.id, "Hello", 0.0, 4)).await.unwrap()).await;
    assert!(
        tokens(&with) > tokens(&without),
        "{} vs {}",
        tokens(&with),
        tokens(&without)
    );
}

/// Full-text search finds finished messages of the owner only (not in the trash), marks
/// the words; export holds every branch and imports back as a new, equal conversation.
#[tokio::test]
async fn search_export_and_import() {
    use crate::api::export::ExportFile;
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let events = collect(
        t.chat
            .send(ME, req(&conv.id, "Tell me about the zeppelin hangar.", 0.0, 8))
            .await
            .unwrap(),
    )
    .await;
    let answer = done(&events).id.clone();
    t.chat
        .regenerate(
            ME,
            crate::api::types::RegenerateRequest {
                conversation_id: conv.id.clone(),
                message_id: answer,
                params: GenerationParams {
                    temperature: 1.0,
                    max_tokens: 8,
                },
                model: None,
                trim_history: false,
            },
        )
        .await
        .map(collect)
        .unwrap()
        .await;

    // The question (and the answers, when the model repeats the word) are found.
    let hits = t.chat.search(ME, "zeppel").await.unwrap();
    let n = hits.len();
    assert!(hits.iter().all(|h| h.conversation_id == conv.id), "{hits:?}");
    let question = hits
        .iter()
        .find(|h| h.role == Role::User)
        .expect("the question is found");
    assert!(
        question.snippet.iter().any(|p| p.matched && p.text == "zeppelin"),
        "{question:?}"
    );
    assert!(!t.chat.search(ME, "zeppelin hangar").await.unwrap().is_empty());
    assert!(
        t.chat.search(ME, "zeppelin submarine").await.unwrap().is_empty(),
        "every word must match"
    );
    let other = crate::server::auth::UserId::for_tests(2);
    assert!(t.chat.search(other, "zeppelin").await.unwrap().is_empty());
    let e = ApiError::from(t.chat.search(ME, &"x".repeat(201)).await.err().unwrap());
    assert_eq!(e.field.as_deref(), Some("query"));

    // Export: every branch (question, two answers); Markdown: the branch shown.
    let file = t.chat.export(ME, Some(&conv.id)).await.unwrap();
    assert_eq!(file.conversations[0].messages.len(), 3);
    let markdown = crate::api::export::to_markdown(&file);
    assert!(
        markdown.starts_with("# Tell me about the zeppelin hangar."),
        "{markdown}"
    );
    assert_eq!(markdown.matches("**Stoa").count(), 1, "{markdown}");

    // Import it back through JSON: a new conversation with the same branches and view.
    let json = serde_json::to_string(&file).unwrap();
    let again: ExportFile = serde_json::from_str(&json).unwrap();
    let imported = t.chat.import(ME, again).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_ne!(imported[0].id, conv.id);
    let (a, b) = (
        t.chat.get_conversation(ME, &conv.id).await.unwrap(),
        t.chat.get_conversation(ME, &imported[0].id).await.unwrap(),
    );
    let contents = |v: &crate::api::types::ConversationView| {
        v.messages
            .iter()
            .map(|m| (m.content.clone(), m.siblings.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(contents(&a), contents(&b));
    assert_eq!(
        t.chat.search(ME, "zeppel").await.unwrap().len(),
        2 * n,
        "imported messages are searchable"
    );

    // Bad imports name the field, and store nothing.
    let mut bad = file.clone();
    bad.conversations[0].messages[1].parent_id = Some("elsewhere".into());
    let e = ApiError::from(t.chat.import(ME, bad).await.err().unwrap());
    assert_eq!(e.field.as_deref(), Some("conversations[0].messages[1].parent_id"));
    let mut bad = file.clone();
    bad.stoa_export = 7;
    let e = ApiError::from(t.chat.import(ME, bad).await.err().unwrap());
    assert_eq!(e.field.as_deref(), Some("stoa_export"));
    assert_eq!(t.chat.list_conversations(ME).await.unwrap().len(), 2);

    // Deleted conversations are not found.
    t.chat.delete_conversation(ME, &conv.id).await.unwrap();
    assert_eq!(t.chat.search(ME, "zeppel").await.unwrap().len(), n);
}

/// Fault injection: makes the database refuse every new answer row (a trigger that raises),
/// on either backend; `undo` takes it away again.
async fn refuse_answer_rows(url: &str, undo: bool) {
    use sqlx::Connection;
    let statements: &[&str] = match (url.starts_with("postgres"), undo) {
        (true, false) => &[
            "CREATE FUNCTION refuse_answer() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER refuse_answer BEFORE INSERT ON messages FOR EACH ROW \
             WHEN (NEW.role = 'assistant') EXECUTE FUNCTION refuse_answer()",
        ],
        (true, true) => &["DROP TRIGGER refuse_answer ON messages"],
        (false, false) => &["CREATE TRIGGER refuse_answer BEFORE INSERT ON messages \
             WHEN NEW.role = 'assistant' BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
        (false, true) => &["DROP TRIGGER refuse_answer"],
    };
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        for sql in statements {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_turn_the_database_cannot_finish_stores_none_of_its_writes() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    refuse_answer_rows(&t.url, false).await;
    // The question, the title and the model would be written before the answer row fails.
    let refused = t.chat.send(ME, req(&conv.id, "Is this kept?", 0.0, 4)).await;
    assert!(refused.is_err());
    let after = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    assert!(after.messages.is_empty(), "{:?}", after.messages);
    assert_eq!(
        (after.title.as_str(), after.model.as_deref()),
        (conv.title.as_str(), None)
    );

    // Once the database takes answers again, the same question is asked once, not twice.
    refuse_answer_rows(&t.url, true).await;
    collect(
        t.chat
            .send(ME, req(&conv.id, "Is this kept?", 0.0, 4))
            .await
            .unwrap(),
    )
    .await;
    let after = t.chat.get_conversation(ME, &conv.id).await.unwrap();
    let roles: Vec<Role> = after.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant]);
    assert_ne!(after.title, conv.title);
    assert!(after.model.is_some());
}
