//! Small jobs the retrieval pipeline gives a chat model: turning a follow-up into a
//! standalone search query, judging how well passages answer a question. The pipeline
//! does not own a model: the chat service lends itself for each answer (it is the one
//! that knows the models and their limits), so this module stays below `chat`.

use async_trait::async_trait;
use serde_json::Value;

/// One job for a model: a system prompt, a user message, and the JSON Schema the answer
/// must follow (constrained by grammar on the embedded model, validated for any model).
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// `provider/model`; `None`: the task model (`routing.task_model`).
    pub model: Option<String>,
    pub system: String,
    pub user: String,
    pub schema: Value,
    pub max_tokens: u32,
}

#[async_trait]
pub trait TaskModel: Send + Sync {
    /// The answer, parsed and valid against the request's schema; why not otherwise.
    async fn ask_json(&self, request: TaskRequest) -> Result<Value, String>;
}
