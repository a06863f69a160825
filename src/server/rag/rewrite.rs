//! Query rewriting: a follow-up ("and if I already pushed it?") means little on its own,
//! so before searching, the conversation's earlier questions turn it into queries that
//! stand alone. A first message is searched as typed.
//!
//! - `context`: the previous question and the follow-up together, as one query. No model,
//!   no wait.
//! - `model`: the task model (`routing.task_model`) writes a standalone query from the
//!   conversation, its answer constrained to `{"query": …}`; searched beside the
//!   `context` query, so a poor rewrite can only add candidates. When the model fails or
//!   takes longer than `rewrite_timeout_ms`, the `context` query alone is used.
//! - `off`: the follow-up as typed.
//! - `auto` (the default): `model` when `routing.task_model` names a model, else
//!   `context`. The embedded SmolLM2-135M writes unusable queries (it answers the question,
//!   or writes SQL: bench/README.md, "Follow-ups"), so it is not asked by default.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::task::{TaskModel, TaskRequest};

/// How follow-ups are turned into search queries (`rag.rewrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewriteMode {
    Off,
    Context,
    Model,
    #[default]
    Auto,
}

impl RewriteMode {
    /// `auto` made definite: `model` when a task model is configured, else `context`.
    pub fn resolved(self, task_model_configured: bool) -> Self {
        match self {
            RewriteMode::Auto if task_model_configured => RewriteMode::Model,
            RewriteMode::Auto => RewriteMode::Context,
            other => other,
        }
    }
}

/// The queries to search with, the main one first, and what happened on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    pub queries: Vec<String>,
    /// The model's standalone query, when it wrote one.
    pub rewritten: Option<String>,
    /// Why the model's rewrite was not used (timed out, failed).
    pub note: Option<String>,
}

/// Earlier questions the context query and the model see, newest last.
const HISTORY_TURNS: usize = 3;
/// Longest earlier message shown to the model, in characters.
const HISTORY_CHARS: usize = 600;

pub async fn rewrite(
    mode: RewriteMode,
    question: &str,
    history: &[String],
    task: Option<&dyn TaskModel>,
    timeout: Duration,
) -> Rewritten {
    let as_typed = Rewritten {
        queries: vec![question.to_owned()],
        rewritten: None,
        note: None,
    };
    let Some(previous) = history.last() else {
        return as_typed;
    };
    let context = format!("{previous} {question}");
    match (mode, task) {
        (RewriteMode::Off, _) => as_typed,
        (RewriteMode::Context | RewriteMode::Auto, _) | (RewriteMode::Model, None) => Rewritten {
            queries: vec![context],
            rewritten: None,
            note: None,
        },
        (RewriteMode::Model, Some(task)) => {
            let asked = tokio::time::timeout(timeout, by_model(task, question, history)).await;
            let (rewritten, note) = match asked {
                Ok(Ok(query)) => (Some(query), None),
                Ok(Err(why)) => (
                    None,
                    Some(format!("the task model could not rewrite the question ({why})")),
                ),
                Err(_) => (
                    None,
                    Some(format!(
                        "the task model took longer than {} ms; searched with the earlier question",
                        timeout.as_millis()
                    )),
                ),
            };
            let queries = match &rewritten {
                Some(q) if q.trim() != context.trim() => vec![q.clone(), context],
                _ => vec![context],
            };
            Rewritten {
                queries,
                rewritten,
                note,
            }
        }
    }
}

async fn by_model(task: &dyn TaskModel, question: &str, history: &[String]) -> Result<String, String> {
    let mut user = String::from("Earlier questions:\n");
    for earlier in history.iter().rev().take(HISTORY_TURNS).rev() {
        let cut: String = earlier.chars().take(HISTORY_CHARS).collect();
        user.push_str(&format!(
            "- {}\n",
            cut.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    user.push_str(&format!("Follow-up question: {question}\n"));
    let answer = task
        .ask_json(TaskRequest {
            model: None,
            system: "Rewrite the follow-up question as one standalone search query that names what it \
                     refers to, using the earlier questions. Keep the user's words; add only what the \
                     follow-up leaves out. Answer with the query only."
                .into(),
            user,
            schema: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "minLength": 3, "maxLength": 200}},
                "required": ["query"],
                "additionalProperties": false
            }),
            max_tokens: 80,
        })
        .await?;
    let query = answer["query"].as_str().unwrap_or_default().trim();
    if query.len() < 3 {
        return Err("an empty query".into());
    }
    Ok(query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::Value;

    struct Fixed(Result<Value, String>, Duration);

    #[async_trait]
    impl TaskModel for Fixed {
        async fn ask_json(&self, _: TaskRequest) -> Result<Value, String> {
            tokio::time::sleep(self.1).await;
            self.0.clone()
        }
    }

    const SHORT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_first_message_is_searched_as_typed() {
        let r = rewrite(RewriteMode::Model, "How do I undo a commit?", &[], None, SHORT).await;
        assert_eq!(r.queries, vec!["How do I undo a commit?"]);
    }

    #[tokio::test]
    async fn a_follow_up_is_searched_with_the_question_before_it() {
        let history = vec!["How do I undo my last commit?".to_owned()];
        let r = rewrite(RewriteMode::Context, "and if I pushed it?", &history, None, SHORT).await;
        assert_eq!(
            r.queries,
            vec!["How do I undo my last commit? and if I pushed it?"]
        );
        let off = rewrite(RewriteMode::Off, "and if I pushed it?", &history, None, SHORT).await;
        assert_eq!(off.queries, vec!["and if I pushed it?"]);
    }

    #[tokio::test]
    async fn the_models_query_goes_first_and_a_slow_or_failed_model_falls_back() {
        let history = vec!["How do I undo my last commit?".to_owned()];
        let good = Fixed(Ok(json!({"query": "undo a pushed commit"})), Duration::ZERO);
        let r = rewrite(
            RewriteMode::Model,
            "and if I pushed it?",
            &history,
            Some(&good),
            SHORT,
        )
        .await;
        assert_eq!(r.rewritten.as_deref(), Some("undo a pushed commit"));
        assert_eq!(r.queries.len(), 2);
        assert_eq!(r.queries[0], "undo a pushed commit");

        let slow = Fixed(Ok(json!({"query": "too late"})), Duration::from_secs(5));
        let r = rewrite(
            RewriteMode::Model,
            "and if I pushed it?",
            &history,
            Some(&slow),
            SHORT,
        )
        .await;
        assert_eq!(r.rewritten, None);
        assert!(r.note.unwrap().contains("longer than 200 ms"));
        assert_eq!(
            r.queries,
            vec!["How do I undo my last commit? and if I pushed it?"]
        );

        let broken = Fixed(Err("busy".into()), Duration::ZERO);
        let r = rewrite(
            RewriteMode::Model,
            "and if I pushed it?",
            &history,
            Some(&broken),
            SHORT,
        )
        .await;
        assert!(r.note.unwrap().contains("busy"));
        assert_eq!(r.queries.len(), 1);
    }
}
