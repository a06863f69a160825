//! How an answer was made: the steps that produced it (searching the documents, the model's
//! first token, the rest of the answer), each with how much went in and came out and how
//! long it took, and how its shape was enforced. Stored with the answer, returned by the
//! APIs, shown under the answer.

use serde::{Deserialize, Serialize};

/// One step of the pipeline behind an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TraceStep {
    /// What the step did: `retrieve`, `first_token`, `generate`…
    pub step: String,
    /// How many items went in (candidates, passages), when the step counts them.
    #[serde(default)]
    pub input: Option<u32>,
    /// How many came out (passages kept, tokens written).
    #[serde(default)]
    pub output: Option<u32>,
    /// Milliseconds it took.
    pub ms: u64,
    /// Anything out of the ordinary (a step that timed out and what was used instead).
    #[serde(default)]
    pub note: Option<String>,
}

impl TraceStep {
    pub fn new(step: &str, ms: u64) -> Self {
        Self {
            step: step.to_owned(),
            input: None,
            output: None,
            ms,
            note: None,
        }
    }

    pub fn counts(mut self, input: Option<u32>, output: Option<u32>) -> Self {
        self.input = input;
        self.output = output;
        self
    }
}

/// The record of how one answer was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AnswerTrace {
    /// The query the documents were searched with, when it is not the question as typed.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub steps: Vec<TraceStep>,
    /// The answer's shape was enforced while it was written: a grammar constrained the
    /// embedded model's tokens to the conversation's JSON Schema.
    #[serde(default)]
    pub grammar: bool,
}
