//! The Profile agent (paper §Method): derives a psychographic profile — value
//! orientation, tolerance for negativity, sensory tolerance, what bores the
//! user — from demographics, interest tags and the watch history (titles and
//! play rates), focusing on videos skipped fast (play rate below the task's
//! threshold). It then refines the profile skip by skip, and when a skipped
//! video's title says too little it activates the Video agent through the
//! host (`calls = ["video"]` in the graph) for a multimodal reading.

use enf_agent_sdk::log;
use enf_kit::profile;
use enf_kit::profile_prompts::{self as prompts, Watched, merge};
use enf_kit::task::Task;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(default)]
    user: Value,
    #[serde(default)]
    history: Vec<Watched>,
    #[serde(default)]
    task: Option<Value>,
    #[serde(default)]
    config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    /// Skipped videos to refine the profile with (most recent first).
    max_skips: usize,
    /// Titles shorter than this many characters are "too little": ask the Video agent.
    title_min_chars: usize,
    /// The node to call for a video reading.
    video_node: String,
    /// History entries shown in the first prompt.
    max_history: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_skips: 3, title_min_chars: 16, video_node: "video".into(), max_history: 12 }
    }
}

struct ProfileAgent;

impl enf_agent_sdk::Guest for ProfileAgent {
    fn describe() -> enf_agent_sdk::Descriptor {
        enf_agent_sdk::descriptor!(
            "profile-agent",
            "Psychographic user profile from demographics and watch history, refined skip by skip",
            r#"{"type":"object","properties":{"user":{"type":"object"},"history":{"type":"array"},"task":{"type":"object"},"config":{"type":"object"}}}"#,
            r#"{"type":"object","properties":{"profile":{"type":"object"},"skips":{"type":"array"},"video_calls":{"type":"integer"}}}"#
        )
    }

    fn run(input: String) -> Result<String, String> {
        let input: Input = enf_agent_sdk::parse_input(&input)?;
        let task = Task::from_value(input.task.as_ref());
        let threshold = task.negative_play_rate;
        let recent: Vec<&Watched> = input.history.iter().rev().take(input.config.max_history).collect();
        let mut profile =
            profile::parse(&enf_agent_sdk::ask(&prompts::initial(&input.user, &recent, threshold), Vec::new())?);

        let skipped: Vec<&Watched> =
            input.history.iter().rev().filter(|w| w.play_rate < threshold).take(input.config.max_skips).collect();
        let mut skips = Vec::new();
        let mut video_calls = 0;
        for watched in skipped {
            let title = watched.title.clone().unwrap_or_default();
            let reading = if title.chars().count() < input.config.title_min_chars {
                video_calls += 1;
                let request = json!({
                    "video": { "video_id": watched.video_id, "title": title, "category": watched.category, "frames": watched.frames },
                    "task": input.task,
                });
                match enf_agent_sdk::call_agent(&input.config.video_node, &request) {
                    Ok(answer) => answer.get("analysis").cloned(),
                    Err(e) => {
                        log::warn(&format!("video reading of `{}` unavailable: {e}", watched.video_id));
                        None
                    }
                }
            } else {
                None
            };
            let refined =
                profile::parse(&enf_agent_sdk::ask(&prompts::refine(&profile, watched, reading.as_ref()), Vec::new())?);
            profile = merge(&profile, refined);
            skips.push(json!({
                "video_id": watched.video_id,
                "play_rate": watched.play_rate,
                "used_video_agent": reading.is_some(),
            }));
        }
        enf_agent_sdk::to_output(&json!({ "profile": profile, "skips": skips, "video_calls": video_calls }))
    }
}

enf_agent_sdk::export_agent!(ProfileAgent);
