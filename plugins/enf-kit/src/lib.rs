//! What the three ENF agents share, kept free of WebAssembly bindings so it
//! is unit-tested natively:
//! - [`task`]: the task configuration items carry (`$item.task`): the
//!   implicit-negative rule and the reason classes;
//! - [`answer`]: splitting a model's output into `<think>` and `<answer>`,
//!   tolerating the usual malformed outputs;
//! - [`verdict`]: like vs. negative, the reason class and the reason, with
//!   a flag when the parser had to guess;
//! - [`profile`]: the psychographic profile and its parsing;
//! - [`digest`]: a profile counted from the watch history, without a model;
//! - [`profile_prompts`], [`video`], [`reason`]: each agent's prompts and logic,
//!   so the agent crates are only the glue to the host;
//! - [`clip`] and [`length`]: how every prompt cuts a text and says a
//!   video's length.

pub mod answer;
pub mod digest;
pub mod profile;
pub mod profile_prompts;
pub mod reason;
pub mod task;
pub mod verdict;
pub mod video;

/// Cuts `text` to at most `max` characters (on a character boundary), adding `…`.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// A video's length as a reader says it, the same in every agent's prompt:
/// whole seconds under two minutes, whole minutes from there (halves rounded
/// up); `None` for a length that is negative or not finite.
pub fn length(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(if seconds < 120.0 {
        format!("{} seconds", (seconds + 0.5).floor())
    } else {
        format!("{} minutes", (seconds / 60.0 + 0.5).floor())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_respects_characters() {
        assert_eq!(super::clip("héllo", 2), "hé…");
        assert_eq!(super::clip("hi", 5), "hi");
    }

    #[test]
    fn lengths_read_in_seconds_then_minutes() {
        assert_eq!(super::length(0.0).as_deref(), Some("0 seconds"));
        assert_eq!(super::length(119.4).as_deref(), Some("119 seconds"));
        assert_eq!(super::length(120.0).as_deref(), Some("2 minutes"));
        assert_eq!(super::length(5729.9).as_deref(), Some("95 minutes"));
        assert_eq!(super::length(-1.0), None);
        assert_eq!(super::length(f64::NAN), None);
        assert_eq!(super::length(f64::INFINITY), None);
    }
}
