//! A conversation is a tree: every message has the one before it as its parent, and a
//! regenerated answer or an edited question is a sibling of what it replaces. What is
//! shown (and continued) is the branch from the root to the conversation's active leaf.

use std::collections::HashMap;

use super::views;
use crate::{
    api::types::MessageView,
    server::storage::{ConversationRecord, MessageRecord},
};

/// The leaf shown: the conversation's own, or (before branches existed) its newest message.
pub fn shown_leaf(conversation: &ConversationRecord, all: &[MessageRecord]) -> Option<String> {
    conversation
        .active_leaf
        .clone()
        .filter(|leaf| all.iter().any(|m| &m.id == leaf))
        .or_else(|| all.last().map(|m| m.id.clone()))
}

/// The branch from the first message down to `leaf` (included), oldest first.
pub fn path_to(all: &[MessageRecord], leaf: Option<&str>) -> Vec<MessageRecord> {
    let by_id: HashMap<&str, &MessageRecord> = all.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut path = Vec::new();
    let mut next = leaf;
    while let Some(m) = next.and_then(|id| by_id.get(id)) {
        path.push((*m).clone());
        next = m.parent_id.as_deref();
        if path.len() > all.len() {
            break; // a cycle cannot happen, but never loop on bad data
        }
    }
    path.reverse();
    path
}

/// Every version of `m` (same parent, same role), oldest first; empty when it is the
/// only one.
pub fn siblings(all: &[MessageRecord], m: &MessageRecord) -> Vec<String> {
    let versions: Vec<String> = all
        .iter()
        .filter(|o| o.parent_id == m.parent_id && o.role == m.role)
        .map(|o| o.id.clone())
        .collect();
    if versions.len() > 1 { versions } else { Vec::new() }
}

/// The newest message under `id`, following the newest child at each step: the leaf
/// shown when the user switches to the version `id`.
pub fn latest_leaf(all: &[MessageRecord], id: &str) -> String {
    let mut leaf = id.to_owned();
    while let Some(child) = all
        .iter()
        .filter(|m| m.parent_id.as_deref() == Some(leaf.as_str()))
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
    {
        leaf = child.id.clone();
    }
    leaf
}

/// The view of one message with its versions.
pub fn view(all: &[MessageRecord], m: MessageRecord) -> MessageView {
    let siblings = siblings(all, &m);
    let mut view = views::message(m);
    view.siblings = siblings;
    view
}

/// The shown branch as views, each message with its versions.
pub fn shown(conversation: &ConversationRecord, all: &[MessageRecord]) -> Vec<MessageView> {
    path_to(all, shown_leaf(conversation, all).as_deref())
        .into_iter()
        .map(|m| view(all, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{MessageStatus, Role};

    fn m(id: &str, parent: Option<&str>, role: Role, at: i64) -> MessageRecord {
        MessageRecord {
            id: id.into(),
            conversation_id: "c".into(),
            parent_id: parent.map(Into::into),
            role,
            content: id.into(),
            status: MessageStatus::Complete,
            error: None,
            notice: None,
            citations: Vec::new(),
            usage: Default::default(),
            trace: None,
            temperature: None,
            max_tokens: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn branches_are_paths_through_the_tree() {
        use Role::{Assistant as A, User as U};
        // q1 → a1 → q2 → a2, then a1 regenerated as a1b, and q2 edited as q2b → a2b.
        let all = vec![
            m("q1", None, U, 1),
            m("a1", Some("q1"), A, 2),
            m("q2", Some("a1"), U, 3),
            m("a2", Some("q2"), A, 4),
            m("a1b", Some("q1"), A, 5),
            m("q2b", Some("a1"), U, 6),
            m("a2b", Some("q2b"), A, 7),
        ];
        let ids = |p: Vec<MessageRecord>| p.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(path_to(&all, Some("a2"))), ["q1", "a1", "q2", "a2"]);
        assert_eq!(ids(path_to(&all, Some("a2b"))), ["q1", "a1", "q2b", "a2b"]);
        assert_eq!(siblings(&all, &all[1]), ["a1", "a1b"]);
        assert_eq!(siblings(&all, &all[2]), ["q2", "q2b"]);
        // Switching to a1 shows its newest continuation; to q2, its own answer.
        assert_eq!(latest_leaf(&all, "a1"), "a2b");
        assert_eq!(latest_leaf(&all, "q2"), "a2");
        assert_eq!(latest_leaf(&all, "a1b"), "a1b");
    }
}
