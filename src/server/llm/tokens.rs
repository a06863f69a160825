//! Prompt token counts for models Stoa cannot tokenize itself (remote providers).
//!
//! OpenAI model families are counted exactly with their tiktoken encoding, plus the chat
//! format's per-message overhead. Other models (Llama, Qwen, SmolLM behind vLLM, Ollama
//! or another Stoa) have tokenizers Stoa does not hold: they are counted with `o200k_base`
//! and a safety margin, so the estimate errs high and a prompt that passes the check also
//! fits upstream in practice.

use tiktoken_rs::{CoreBPE, bpe_for_tokenizer, tokenizer::Tokenizer, tokenizer::get_tokenizer};

use super::PromptMessage;

/// Tokens the chat format adds around each message (`<|start|>role ... <|end|>`).
const PER_MESSAGE: u32 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMER: u32 = 3;
/// Extra share added to estimates for models whose tokenizer is unknown.
const UNKNOWN_MARGIN_PERCENT: u32 = 25;

/// How a model's tokens are counted.
#[derive(Clone, Copy)]
pub struct Counter {
    bpe: &'static CoreBPE,
    exact: bool,
}

impl Counter {
    pub fn for_model(model: &str) -> Self {
        match get_tokenizer(model) {
            Some(tokenizer) => Self {
                bpe: bpe(tokenizer),
                exact: true,
            },
            None => Self {
                bpe: bpe(Tokenizer::O200kBase),
                exact: false,
            },
        }
    }

    /// Whether the count is exact (an OpenAI model family) or an estimate.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    pub fn count(&self, messages: &[PromptMessage]) -> u32 {
        let text: u32 = messages
            .iter()
            .map(|m| {
                let role = self.bpe.encode_ordinary(m.role.as_str()).len();
                let content = self.bpe.encode_ordinary(&m.content).len();
                (role + content) as u32 + PER_MESSAGE
            })
            .sum::<u32>()
            + REPLY_PRIMER;
        if self.exact {
            text
        } else {
            text + text.div_ceil(100) * UNKNOWN_MARGIN_PERCENT
        }
    }
}

fn bpe(tokenizer: Tokenizer) -> &'static CoreBPE {
    // The encodings are compiled into tiktoken-rs; loading one cannot fail.
    bpe_for_tokenizer(tokenizer).expect("tiktoken-rs bundles its encodings")
}

/// The context window of a well-known model, when the provider does not say.
pub fn known_context_window(model: &str) -> Option<u32> {
    tiktoken_rs::model::get_context_size(model).map(|n| n.min(u32::MAX as usize) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::Role;

    fn msgs(text: &str) -> Vec<PromptMessage> {
        vec![PromptMessage::text(Role::User, text)]
    }

    #[test]
    fn counts_openai_models_exactly_and_others_with_a_margin() {
        let exact = Counter::for_model("gpt-4o-mini");
        assert!(exact.is_exact());
        // "hello world" is 2 tokens in o200k, "user" 1, plus 3 + 3 of chat format.
        assert_eq!(exact.count(&msgs("hello world")), 9);

        let estimate = Counter::for_model("SmolLM2-135M-Instruct.Q4_1");
        assert!(!estimate.is_exact());
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        assert!(estimate.count(&msgs(&long)) > exact.count(&msgs(&long)));
    }

    #[test]
    fn knows_context_windows_of_openai_families() {
        assert_eq!(known_context_window("gpt-4o-mini"), Some(128_000));
        assert_eq!(known_context_window("my-local-llama"), None);
    }
}
