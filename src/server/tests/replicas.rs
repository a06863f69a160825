//! Two processes on one database (replicas behind a proxy), here two chat services sharing
//! the store: an answer one of them writes is followed and stopped from the other, through
//! what the writer saves. The whole processes behind nginx are tested in end2end.

use std::sync::Arc;

use futures::StreamExt;

use super::support::{ME, chat, collect, router_of, shared_model, streaming};
use crate::{
    api::{
        events::ChatEvent,
        types::{ChatRequest, GenerationParams, MessageStatus},
    },
    server::{auth::UserId, chat::ChatService, config::ChatSettings},
};

fn other_replica(t: &super::support::TestChat) -> ChatService {
    let settings = ChatSettings {
        persist_interval_ms: 50,
        ..ChatSettings::default()
    };
    ChatService::new(Arc::clone(&t.store), router_of(shared_model()), settings)
}

#[tokio::test]
async fn an_answer_written_by_one_replica_is_followed_and_stopped_from_another() {
    let a = chat().await;
    let b = other_replica(&a);
    let conv = a.chat.create_conversation(ME).await.unwrap();
    let request = ChatRequest {
        conversation_id: conv.id.clone(),
        message: "Write a very long story about a castle.".into(),
        params: GenerationParams {
            temperature: 0.0,
            max_tokens: 1500,
        },
        model: None,
        edit_of: None,
        trim_history: false,
    };
    let mut events = Box::pin(a.chat.send_detached(ME, request).await.unwrap());
    let Some(ChatEvent::Started {
        assistant_message, ..
    }) = events.next().await
    else {
        panic!("Started comes first");
    };
    let id = assistant_message.id.clone();
    let writer = tokio::spawn(collect(events));

    let stranger = UserId::for_tests(2);
    assert!(b.watch(stranger, &id).await.is_err(), "not someone else's");
    assert!(!b.stop(stranger, &id).await.unwrap(), "not someone else's");
    assert_eq!(b.running(), 0, "B writes nothing itself");

    let mut followed = b.watch(ME, &id).await.expect("B follows A's answer");
    let Some(ChatEvent::Resumed {
        content, provider, ..
    }) = followed.next().await
    else {
        panic!("a follower starts from the text saved so far");
    };
    assert_eq!(provider.as_deref(), Some("local"));
    let mut seen = content;
    let mut stopped = false;
    let finished = loop {
        match followed.next().await.expect("the follower ends with Done") {
            ChatEvent::Token { text } => {
                seen.push_str(&text);
                if seen.len() > 40 && !stopped {
                    assert!(b.stop(ME, &id).await.unwrap(), "B stops A's answer");
                    stopped = true;
                }
            }
            ChatEvent::Done { message } => break message,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(stopped, "tokens came through B before the end");
    assert_eq!(finished.status, MessageStatus::Stopped);
    assert_eq!(
        finished.content, seen,
        "what B passed on is the whole stored answer"
    );

    let written = writer.await.unwrap();
    let Some(ChatEvent::Done { message }) = written.last() else {
        panic!("A's stream ends with Done");
    };
    assert_eq!(message.status, MessageStatus::Stopped);
    assert_eq!(message.content, finished.content);
    assert!(
        message.usage.as_ref().unwrap().completion_tokens < 1500,
        "stopped well before its limit"
    );
    assert!(b.watch(ME, &id).await.is_err(), "nothing left to follow");
}

#[tokio::test]
async fn a_stop_asked_on_another_replica_reaches_the_writer_when_it_renews_its_lease() {
    let t = chat().await;
    let conv = t.chat.create_conversation(ME).await.unwrap();
    let now = crate::server::clock::now_ms();
    t.store
        .insert_message(streaming("writing", &conv.id, now))
        .await
        .unwrap();
    let ids = ["writing".to_owned()];
    assert!(t.store.renew_answers(&ids, now + 1).await.unwrap().is_empty());
    assert!(t.store.update_message_content("writing", "a", now).await.unwrap());

    assert!(
        !t.store
            .request_stop(UserId::for_tests(2), "writing")
            .await
            .unwrap()
    );
    assert!(t.store.request_stop(ME, "writing").await.unwrap());
    assert_eq!(t.store.renew_answers(&ids, now + 2).await.unwrap(), ids);
    assert!(
        !t.store
            .update_message_content("writing", "ab", now)
            .await
            .unwrap(),
        "the writer learns it should stop when it saves"
    );
    let stored = t.store.get_message(ME, "writing").await.unwrap();
    assert_eq!(stored.content, "ab");
    assert_eq!(
        stored.status,
        MessageStatus::Streaming,
        "the writer itself ends it"
    );
}
