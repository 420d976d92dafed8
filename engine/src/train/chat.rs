//! [`ChatTokenizer`]: the prompt tokens serving would use for a chat — the
//! model directory's `chat_template` rendered the way mistral.rs renders it
//! (minijinja with trimmed blocks and Python-compatible methods, the
//! generation prompt added), then tokenized with special tokens — and the
//! decoding of completion tokens back to the text an agent receives.
//! Tests pin the token ids against mistral.rs's own for both test models.

use std::path::Path;

use minijinja::{Environment, context};
use serde::Serialize;
use tokenizers::Tokenizer;

use super::TrainError;
use crate::inference::{ChatMessage, Role};

/// Tokenizer and chat template of a model directory.
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    template: String,
    bos: Option<String>,
    eos: Option<String>,
    unk: Option<String>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

/// A token field of `tokenizer_config.json`: a string or `{ "content": … }`.
fn token_field(config: &serde_json::Value, key: &str) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

impl ChatTokenizer {
    /// Reads `tokenizer.json` and `tokenizer_config.json` (its `chat_template`) from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| TrainError::file(&path, e))?;
        let path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::file(&path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))?;
        let template = config
            .get("chat_template")
            .and_then(|t| t.as_str())
            .ok_or_else(|| TrainError::file(&path, "no `chat_template` string"))?
            .to_string();
        Ok(Self {
            tokenizer,
            template,
            bos: token_field(&config, "bos_token"),
            eos: token_field(&config, "eos_token"),
            unk: token_field(&config, "unk_token"),
        })
    }

    /// The prompt text of `messages` with the generation prompt appended.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, TrainError> {
        if messages.iter().any(|m| !m.images.is_empty()) {
            return Err(TrainError::Rollout("messages with frames cannot be trained on yet: the trainer runs text prompts (a Qwen2.5-VL model trains on the prompts of its text-only agents, its vision tower frozen)".into()));
        }
        let messages: Vec<Message<'_>> = messages
            .iter()
            .map(|m| Message {
                role: match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content: &m.text,
            })
            .collect();
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_lstrip_blocks(true);
        env.set_trim_blocks(true);
        let fail = |e: minijinja::Error| TrainError::Rollout(format!("chat template: {e}"));
        env.add_template("chat", &self.template).map_err(fail)?;
        let template = env.get_template("chat").map_err(fail)?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos,
                eos_token => self.eos,
                unk_token => self.unk,
            })
            .map_err(fail)
    }

    /// The prompt tokens of `messages`, as serving computes them.
    pub fn prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, TrainError> {
        let text = self.render(messages)?;
        self.encode(&text, true)
    }

    /// Tokens of `text` (with the tokenizer's special-token post-processing when asked).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, TrainError> {
        let encoding =
            self.tokenizer.encode(text, special).map_err(|e| TrainError::Rollout(format!("tokenizer: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of tokens, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TrainError> {
        self.tokenizer.decode(ids, true).map_err(|e| TrainError::Rollout(format!("tokenizer: {e}")))
    }

    /// The text an agent receives for completion tokens, as mistral.rs
    /// builds it: special tokens left out, leading white space trimmed.
    pub fn completion_text(&self, ids: &[u32]) -> Result<String, TrainError> {
        Ok(self.decode(ids)?.trim_start().to_string())
    }

    /// The id of the end-of-sequence token named by `tokenizer_config.json`.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos.as_deref().and_then(|t| self.tokenizer.token_to_id(t))
    }
}
