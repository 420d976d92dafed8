//! The Video agent's logic: frame sampling, prompts, and the parsing of its analysis.

use serde::{Deserialize, Serialize};

use crate::task::Task;
use crate::{clip, length};

/// The video as items describe it (`$item.candidate` or a history entry).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct VideoInfo {
    /// Its id.
    pub video_id: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Length in seconds.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Frames the host holds for it.
    #[serde(default)]
    pub frames: u32,
}

/// Indices of `wanted` frames spread evenly over `available`.
pub fn sample_frames(available: u32, wanted: u32) -> Vec<u32> {
    let wanted = wanted.min(available);
    (0..wanted).map(|i| ((u64::from(i) * u64::from(available)) / u64::from(wanted.max(1))) as u32).collect()
}

/// The analysis of one video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// What the video shows.
    pub content: String,
    /// Negative, vulgar, extreme or disturbing elements ("none" when there are none).
    pub controversial: String,
    /// The values or attitudes it conveys.
    pub values: String,
}

fn describe_video(video: &VideoInfo, frames: usize) -> String {
    let mut text = format!("Title: \"{}\"", clip(&video.title, 200));
    if let Some(category) = &video.category {
        text.push_str(&format!("\nCategory: {category}"));
    }
    if let Some(spoken) = video.duration_s.and_then(length) {
        text.push_str(&format!("\nLength: {spoken}"));
    }
    if frames > 0 {
        text.push_str(&format!("\n{frames} frames of the video are attached, in order."));
    }
    text
}

/// The analysis prompt.
pub fn analysis(video: &VideoInfo, frames: usize) -> String {
    format!(
        "Analyse this short video for a video recommender.\n{}\n\nAnswer in exactly three lines:\nContent: what happens in the video.\nControversial: anything negative, vulgar, extreme or disturbing in it, or \"none\".\nValues: the values or attitudes it conveys.",
        describe_video(video, frames)
    )
}

/// The explicit-feedback prediction prompt.
pub fn prediction(video: &VideoInfo, analysis: &Analysis, task: &Task, frames: usize) -> String {
    format!(
        "Decide whether viewers will dislike this video.\n{}\nContent: {}\nControversial: {}\n\nReasons viewers dislike videos:\n{}\n\nThink step by step inside <think></think>. Then answer inside <answer></answer> with \"like\", or \"negative: N\" where N is the number of the reason.",
        describe_video(video, frames),
        analysis.content,
        analysis.controversial,
        task.class_menu()
    )
}

/// Reads the three labelled lines; unlabelled text becomes the content.
pub fn parse_analysis(text: &str) -> Analysis {
    let mut analysis = Analysis::default();
    for line in text.lines() {
        let line = line.trim().trim_start_matches(['-', '*', ' ']);
        let Some((label, value)) = line.split_once(':') else { continue };
        let label = label.trim().trim_matches('*').to_lowercase();
        let value = clip(value.trim(), 400);
        let slot = if label.starts_with("content") {
            &mut analysis.content
        } else if label.starts_with("controvers") {
            &mut analysis.controversial
        } else if label.starts_with("value") {
            &mut analysis.values
        } else {
            continue;
        };
        if slot.is_empty() {
            *slot = value;
        }
    }
    if analysis.content.is_empty() {
        analysis.content = clip(text.trim(), 400);
    }
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_spread_evenly_and_never_beyond_what_exists() {
        assert_eq!(sample_frames(16, 4), vec![0, 4, 8, 12]);
        assert_eq!(sample_frames(3, 16), vec![0, 1, 2]);
        assert_eq!(sample_frames(0, 16), Vec::<u32>::new());
    }

    #[test]
    fn reads_the_labelled_lines() {
        let a = parse_analysis("Content: a chef fillets a fish\n**Controversial**: graphic gutting\nValues: craft");
        assert_eq!(a.content, "a chef fillets a fish");
        assert_eq!(a.controversial, "graphic gutting");
        assert_eq!(a.values, "craft");
    }

    #[test]
    fn keeps_unlabelled_text_as_content() {
        let a = parse_analysis("It is a cooking video.");
        assert_eq!(a.content, "It is a cooking video.");
        assert_eq!(a.controversial, "");
    }

    #[test]
    fn prompts_name_the_classes_and_frames() {
        let video =
            VideoInfo { video_id: "v".into(), title: "Knife skills".into(), frames: 16, ..VideoInfo::default() };
        let p = prediction(&video, &Analysis::default(), &Task::default(), 4);
        assert!(p.contains("4 frames"));
        assert!(p.contains("3. visually-disturbing"));
        assert!(p.contains("<answer>"));
    }

    #[test]
    fn the_length_reads_as_in_the_reason_prompt() {
        let video = |duration_s| VideoInfo { video_id: "v".into(), duration_s, ..VideoInfo::default() };
        assert!(analysis(&video(Some(6640.0)), 0).contains("\nLength: 111 minutes"));
        assert!(analysis(&video(Some(95.0)), 0).contains("\nLength: 95 seconds"));
        assert!(!analysis(&video(Some(-3.0)), 0).contains("Length"), "a negative length is left out");
        assert!(!analysis(&video(None), 0).contains("Length"));
    }
}
