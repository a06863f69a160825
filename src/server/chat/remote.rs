//! Answers written by another process on the same database (another replica behind the
//! proxy): followed through the text that process saves every `persist_interval_ms`, and
//! stopped through a flag it reads when it saves or renews its lease. An answer this
//! process is writing is served from memory, token by token, as before.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt, stream::BoxStream};

use super::{ChatError, ChatService, branches, service::not_found};
use crate::{
    api::{events::ChatEvent, types::MessageStatus},
    server::{auth::UserId, storage::Store},
};

impl ChatService {
    /// The events of one of `owner`'s answers still being written: what it has said so far
    /// (`Resumed`), then its tokens and `Done`. From the running task when this process
    /// writes it, else from the database as the writing process saves it. Not found when it
    /// is not being written (any more).
    pub async fn watch(
        &self,
        owner: UserId,
        message_id: &str,
    ) -> Result<BoxStream<'static, ChatEvent>, ChatError> {
        if let Some(local) = self.running.watch(owner, message_id) {
            return Ok(local.boxed());
        }
        let record = self
            .store
            .get_message(owner, message_id)
            .await
            .map_err(not_found("running answer"))?;
        if record.status != MessageStatus::Streaming {
            return Err(ChatError::NotFound("running answer"));
        }
        let every = Duration::from_millis(self.settings.persist_interval_ms.max(50));
        Ok(follow(Arc::clone(&self.store), owner, record, every).boxed())
    }

    /// Stops one of `owner`'s running answers, whichever process writes it; false when it
    /// is not being written (any more), or is not theirs.
    pub async fn stop(&self, owner: UserId, message_id: &str) -> Result<bool, ChatError> {
        if self.running.stop(owner, message_id) {
            return Ok(true);
        }
        Ok(self.store.request_stop(owner, message_id).await?)
    }
}

/// Where a follower is: the text it has passed on, and whether the answer ended.
struct Follower {
    store: Arc<dyn Store>,
    owner: UserId,
    id: String,
    conversation_id: String,
    sent: usize,
    every: Duration,
    ended: bool,
}

/// `Resumed` with the saved text, then the text saved since as `Token`s, polled every
/// `every`, and `Done` with the stored message once it has ended.
fn follow(
    store: Arc<dyn Store>,
    owner: UserId,
    record: crate::server::storage::records::MessageRecord,
    every: Duration,
) -> impl Stream<Item = ChatEvent> + Send + 'static {
    let resumed = ChatEvent::Resumed {
        content: record.content.clone(),
        provider: record.usage.provider.clone(),
        model: record.usage.model.clone(),
        notice: record.notice.clone(),
    };
    let follower = Follower {
        store,
        owner,
        sent: record.content.len(),
        id: record.id,
        conversation_id: record.conversation_id,
        every,
        ended: false,
    };
    let rest = futures::stream::unfold(follower, |mut f| async move {
        while !f.ended {
            tokio::time::sleep(f.every).await;
            // Deleted meanwhile (or the database is gone): the stream ends, the page re-reads.
            let record = f.store.get_message(f.owner, &f.id).await.ok()?;
            let fresh = record
                .content
                .get(f.sent..)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            f.sent = record.content.len();
            if record.status != MessageStatus::Streaming {
                f.ended = true;
                let all = f.store.list_messages(f.owner, &f.conversation_id).await.ok()?;
                let done = ChatEvent::Done {
                    message: branches::view(&all, record),
                };
                let mut events: Vec<_> = fresh.map(|text| ChatEvent::Token { text }).into_iter().collect();
                events.push(done);
                return Some((events, f));
            }
            if let Some(text) = fresh {
                return Some((vec![ChatEvent::Token { text }], f));
            }
        }
        None
    });
    futures::stream::once(async move { resumed }).chain(rest.flat_map(futures::stream::iter))
}
