//! The Video agent (paper §Method): a multimodal reading of one video — what
//! it shows, its controversial elements and the values it conveys — from its
//! title and up to `config.frames` uniformly spaced frames (sent only when
//! the node's model takes images). With `config.predict = true` (the
//! explicit-feedback task, graphs/explicit.toml) it also predicts whether the
//! video draws negative feedback, with the reason class and the reason.

use enf_agent_sdk::{ImageRef, log};
use enf_kit::task::Task;
use enf_kit::verdict;
use enf_kit::video::{self as prompts, VideoInfo, sample_frames};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Input {
    video: VideoInfo,
    #[serde(default)]
    task: Option<Value>,
    #[serde(default)]
    config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    /// Most frames to send.
    frames: u32,
    /// Also predict negative feedback (explicit task).
    predict: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { frames: 16, predict: false }
    }
}

struct VideoAgent;

impl enf_agent_sdk::Guest for VideoAgent {
    fn describe() -> enf_agent_sdk::Descriptor {
        enf_agent_sdk::descriptor!(
            "video-agent",
            "Multimodal content and controversy analysis of a video; optionally predicts negative feedback",
            r#"{"type":"object","required":["video"],"properties":{"video":{"type":"object"},"task":{"type":"object"},"config":{"type":"object"}}}"#,
            r#"{"type":"object","properties":{"analysis":{"type":"object"},"verdict":{"type":"object"},"frames_used":{"type":"integer"}}}"#
        )
    }

    fn run(input: String) -> Result<String, String> {
        let input: Input = enf_agent_sdk::parse_input(&input)?;
        let task = Task::from_value(input.task.as_ref());
        let model = enf_agent_sdk::model_info(None).map_err(enf_agent_sdk::describe_inference_error)?;
        let indices = if model.images { sample_frames(input.video.frames, input.config.frames) } else { Vec::new() };
        let images: Vec<ImageRef> =
            indices.iter().map(|&frame| ImageRef { video_id: input.video.video_id.clone(), frame }).collect();
        let frames_used = images.len();
        log::debug(&format!("analysing `{}` with {frames_used} frame(s)", input.video.video_id));
        let text = enf_agent_sdk::ask(&prompts::analysis(&input.video, frames_used), images.clone())?;
        let analysis = prompts::parse_analysis(&text);
        let mut output = serde_json::json!({ "analysis": analysis, "frames_used": frames_used });
        if input.config.predict {
            let raw = enf_agent_sdk::ask(&prompts::prediction(&input.video, &analysis, &task, frames_used), images)?;
            output["verdict"] = serde_json::to_value(verdict::parse(&raw, &task)).map_err(|e| e.to_string())?;
            output["raw"] = Value::String(raw);
        }
        enf_agent_sdk::to_output(&output)
    }
}

enf_agent_sdk::export_agent!(VideoAgent);
