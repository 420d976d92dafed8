//! Rollouts through the agent itself. [`PolicyBackend`] is put in the
//! backend registry in place of the trained node's model: requests from the
//! node under training are answered by the policy, or — in the SFT stage —
//! with the item's target text. Sampling a group takes three moves, so that
//! drawing G completions never runs under the node's timeout: a first run
//! of the item only *captures* the node's prompt (its request is refused
//! with [`PROMPT_CAPTURED`] and the run stops there), the trainer then draws the G
//! samples outside any node ([`PolicyBackend::sample_captured`]), and G more
//! runs each get one of them, at once; requests of
//! every other node go to the frozen serving backend (which the trainer
//! wraps in the inference cache, since it runs each item G times). Every answer given to the trained node is
//! recorded with its prompt and completion tokens, so the update sees
//! exactly what the agent saw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::TrainError;
use super::chat::ChatTokenizer;
use super::decoder::Decoder;
use super::generate::{SampleSettings, sample_group};
use crate::inference::{
    Backend, Completion, FinishReason, GenerateRequest, GenerateResponse, InferenceError, ModelIdentity,
    PROMPT_CAPTURED,
};

/// One answer given to the node under training.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The item.
    pub item_id: String,
    /// Prompt tokens (chat template applied).
    pub prompt: Vec<u32>,
    /// Completion tokens (end-of-sequence included when reached).
    pub completion: Vec<u32>,
    /// Log-probabilities of the completion tokens when sampled (empty for SFT targets).
    pub logprobs: Vec<f32>,
    /// The policy's entropy summed over the completion's tokens where they
    /// were sampled (0 for SFT targets).
    pub sampling_entropy: f32,
    /// The text the agent received.
    pub text: String,
    /// Cut at the completion limit.
    pub truncated: bool,
}

/// What the trained node's requests are answered with.
pub enum Answering {
    /// G samples per item from the policy.
    Sample {
        /// Samples per item.
        group: usize,
        /// Sampling settings.
        settings: SampleSettings,
        /// Seed of this step's sampling (each item adds its own offset).
        seed: u64,
    },
    /// The item's target text (teacher forcing).
    Targets(Arc<HashMap<String, String>>),
}

struct State {
    answering: Answering,
    /// Samples drawn but not yet handed out, by item.
    pending: HashMap<String, Vec<Rollout>>,
    /// Prompts captured and not yet sampled, by item.
    captured: HashMap<String, Vec<u32>>,
    recorded: Vec<Rollout>,
    items_seen: u64,
}

/// The backend behind the trained node's model (see the module docs).
pub struct PolicyBackend {
    identity: ModelIdentity,
    node: String,
    generator: Decoder,
    tokenizer: Arc<ChatTokenizer>,
    frozen: Arc<dyn Backend>,
    state: Mutex<State>,
}

impl PolicyBackend {
    /// A policy answering `node`'s requests with `generator` (a detached view
    /// of the trained weights) and every other node's with `frozen`.
    pub fn new(node: &str, generator: Decoder, tokenizer: Arc<ChatTokenizer>, frozen: Arc<dyn Backend>) -> Self {
        let state = State {
            answering: Answering::Targets(Arc::default()),
            pending: HashMap::new(),
            captured: HashMap::new(),
            recorded: Vec::new(),
            items_seen: 0,
        };
        Self {
            identity: frozen.identity().clone(),
            node: node.to_string(),
            generator,
            tokenizer,
            frozen,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how the next requests are answered and forgets pending samples.
    /// Sampling seeds count items from here, so a step's samples depend only
    /// on the seed it is given and its items (a resumed run repeats them).
    pub fn answer_with(&self, answering: Answering) {
        let mut state = self.lock();
        state.answering = answering;
        state.pending.clear();
        state.captured.clear();
        state.items_seen = 0;
    }

    /// The answers recorded since the last call, in the order given.
    pub fn take_recorded(&self) -> Vec<Rollout> {
        std::mem::take(&mut self.lock().recorded)
    }

    /// Samples still pending (a run that asked less often than expected).
    pub fn pending(&self) -> usize {
        self.lock().pending.values().map(Vec::len).sum()
    }

    fn answer(&self, item_id: &str, request: &GenerateRequest) -> Result<Rollout, TrainError> {
        let prompt = self.tokenizer.prompt_ids(&request.messages)?;
        let mut state = self.lock();
        if let Some(queue) = state.pending.get_mut(item_id)
            && let Some(next) = queue.pop()
        {
            if next.prompt != prompt {
                return Err(TrainError::Rollout(format!(
                    "item `{item_id}`: node `{}` sent a different prompt on a later run; a trained agent must ask the same question each time",
                    self.node
                )));
            }
            return Ok(next);
        }
        match &state.answering {
            Answering::Targets(targets) => {
                let text = targets
                    .get(item_id)
                    .ok_or_else(|| TrainError::Rollout(format!("item `{item_id}` has no SFT target")))?;
                let mut completion = self.tokenizer.encode(text, false)?;
                let eos = self.tokenizer.eos_id().or(self.generator.config.eos_tokens.first().copied());
                completion.extend(eos);
                Ok(Rollout {
                    item_id: item_id.to_string(),
                    prompt,
                    completion,
                    logprobs: Vec::new(),
                    sampling_entropy: 0.0,
                    text: text.clone(),
                    truncated: false,
                })
            }
            Answering::Sample { .. } => {
                state.captured.insert(item_id.to_string(), prompt);
                Err(TrainError::Rollout(PROMPT_CAPTURED.into()))
            }
        }
    }

    /// Draws the group of the prompt captured for `item_id` (see the module
    /// docs), to be handed out one per run. `false` when no prompt was
    /// captured for it (the node never asked: an upstream node failed).
    pub fn sample_captured(&self, item_id: &str) -> Result<bool, TrainError> {
        let mut state = self.lock();
        let Some(prompt) = state.captured.remove(item_id) else { return Ok(false) };
        let Answering::Sample { group, settings, seed } = &state.answering else {
            return Err(TrainError::Rollout(format!("item `{item_id}`: sampling asked for outside a sampling step")));
        };
        let (group, settings) = (*group, *settings);
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(state.items_seen.wrapping_mul(0x9E37_79B9)));
        state.items_seen += 1;
        let samples = sample_group(&self.generator, &prompt, group, &settings, &mut rng)?;
        let mut rollouts = Vec::with_capacity(group);
        for sample in samples {
            rollouts.push(Rollout {
                item_id: item_id.to_string(),
                prompt: prompt.clone(),
                text: self.tokenizer.completion_text(&sample.tokens)?,
                truncated: !sample.finished,
                completion: sample.tokens,
                logprobs: sample.logprobs,
                sampling_entropy: sample.entropy_sum,
            });
        }
        rollouts.reverse();
        state.pending.insert(item_id.to_string(), rollouts);
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Backend for PolicyBackend {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    async fn generate(&self, request: GenerateRequest) -> Result<GenerateResponse, InferenceError> {
        let trained = request.origin.as_ref().filter(|o| o.node == self.node).map(|o| o.item_id.clone());
        let Some(item_id) = trained else {
            return self.frozen.generate(request).await;
        };
        if request.sampling.n != 1 {
            return Err(InferenceError::InvalidRequest(format!(
                "node `{}` asked for {} samples; a trained agent asks for one answer per run",
                self.node, request.sampling.n
            )));
        }
        let rollout = self.answer(&item_id, &request).map_err(|e| InferenceError::Backend(e.to_string()))?;
        let response = GenerateResponse {
            completions: vec![Completion {
                text: rollout.text.clone(),
                finish_reason: if rollout.truncated { FinishReason::Length } else { FinishReason::Stop },
                completion_tokens: u32::try_from(rollout.completion.len()).unwrap_or(u32::MAX),
            }],
            prompt_tokens: u32::try_from(rollout.prompt.len()).unwrap_or(u32::MAX),
            compute_ms: None,
        };
        self.lock().recorded.push(rollout);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::*;
    use crate::inference::{ChatMessage, EchoBackend, EchoOptions, RequestOrigin, Role, Sampling};
    use crate::modelfiles::tiny_text::{TinyTextArch, write_tiny_text};

    fn request(node: &str, text: &str) -> GenerateRequest {
        GenerateRequest {
            messages: vec![ChatMessage { role: Role::User, text: text.into(), images: Vec::new() }],
            sampling: Sampling::default(),
            origin: Some(RequestOrigin { item_id: "item-1".into(), node: node.into(), depth: 0 }),
        }
    }

    /// The node's model call only captures the prompt: sampling happens in
    /// `sample_captured`, which the trainer calls outside any node's run
    /// (and its timeout); then each run gets one sample, at once.
    #[tokio::test]
    async fn sampling_happens_outside_the_nodes_model_call() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_text(dir.path(), TinyTextArch::Qwen2, 2).unwrap();
        let model = Decoder::load(dir.path(), DType::F32).unwrap();
        let tokenizer = Arc::new(ChatTokenizer::load(dir.path()).unwrap());
        let identity = ModelIdentity {
            name: "tiny".into(),
            manifest: "tiny.toml".into(),
            sampling: Sampling::default(),
            images: false,
            context: None,
        };
        let frozen: Arc<dyn Backend> = Arc::new(EchoBackend::new(identity, EchoOptions::default()));
        let policy = PolicyBackend::new("reason", model.detached(), tokenizer, frozen);
        let settings = SampleSettings { temperature: 1.0, top_p: 1.0, max_tokens: 6, ignore_eos: false };
        policy.answer_with(Answering::Sample { group: 3, settings, seed: 7 });

        // Other nodes go to the frozen backend.
        let other = policy.generate(request("profile", "hello")).await.unwrap();
        assert_eq!(other.completions[0].text, "echo: hello");
        // The trained node's first call is refused: its prompt is captured, nothing is drawn.
        let refused = policy.generate(request("reason", "why?")).await.unwrap_err();
        assert!(refused.to_string().contains(PROMPT_CAPTURED), "{refused}");
        assert_eq!(policy.pending(), 0);
        assert!(policy.take_recorded().is_empty());
        assert!(!policy.sample_captured("item-2").unwrap(), "nothing captured for another item");
        assert!(policy.sample_captured("item-1").unwrap());
        assert_eq!(policy.pending(), 3);
        for left in (0..3).rev() {
            policy.generate(request("reason", "why?")).await.unwrap();
            assert_eq!(policy.pending(), left);
        }
        let recorded = policy.take_recorded();
        assert_eq!(recorded.len(), 3);
        assert!(recorded.iter().all(|r| !r.completion.is_empty() && r.logprobs.len() == r.completion.len()));
        // A later run that asks another question is refused.
        policy.sample_captured("item-1").unwrap();
        let _ = policy.generate(request("reason", "why?")).await;
        assert!(policy.sample_captured("item-1").unwrap());
        let changed = policy.generate(request("reason", "something else")).await.unwrap_err();
        assert!(changed.to_string().contains("different prompt"), "{changed}");
    }
}
