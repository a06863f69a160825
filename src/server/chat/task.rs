//! The chat service lends a model to the retrieval pipeline for its small jobs (rewriting
//! a follow-up, judging passages): a whole answer at temperature 0, shaped by the job's
//! JSON Schema (by grammar on the embedded model), checked, and parsed.

use async_trait::async_trait;
use serde_json::Value;

use super::{completion::Completion, service::ChatService};
use crate::{
    api::types::Role,
    server::{
        llm::{GenerationOptions, OutputFormat, PromptMessage},
        rag::task::{TaskModel, TaskRequest},
    },
};

#[async_trait]
impl TaskModel for ChatService {
    async fn ask_json(&self, request: TaskRequest) -> Result<Value, String> {
        let model = request
            .model
            .or_else(|| self.task_model().map(str::to_owned))
            .or_else(|| self.router().default_id())
            .ok_or("no model to ask")?;
        let completion = Completion {
            model,
            messages: vec![
                PromptMessage::text(Role::System, request.system),
                PromptMessage::text(Role::User, request.user),
            ],
            temperature: Some(0.0),
            max_tokens: Some(request.max_tokens),
            options: GenerationOptions {
                format: OutputFormat::JsonSchema {
                    name: "answer".into(),
                    description: None,
                    schema: request.schema,
                    strict: Some(true),
                },
                ..GenerationOptions::default()
            },
        };
        let answered = self.complete_whole(completion).await.map_err(|e| e.to_string())?;
        answered
            .whole
            .data
            .ok_or_else(|| "the answer did not follow its schema".to_owned())
    }
}
