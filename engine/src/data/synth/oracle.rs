//! What `enf data synth` knows and a model has to learn: the planted cause
//! meeting the user's hidden trait, written as the SFT target of every item
//! (`sft.jsonl`) and as the predictions of an oracle (`oracle.jsonl`), the
//! ceiling a model can reach on the set.

use enf_kit::verdict::{Attitude, Verdict};

use super::{CATEGORIES, Cause, User, VAGUE_TITLES, Video};

/// The chain-of-thought answer a cold start teaches for one item, in the
/// agents' `<think>…</think><answer>…</answer>` form. Its verdict is the
/// oracle's — the video's planted cause meeting the user's hidden trait
/// ([`cause_meeting_trait`]), never the generator's random draws, which no
/// reader of the prompt could foresee — and its reasoning names what the
/// Reason agent's prompt shows: the cue in the title (for a dull video also
/// its length, in the prompt's words) and the user's tolerance for that kind
/// of video, the line the history digest writes. A video whose cause the
/// user tolerates says so, so the trait × cause interaction is taught from
/// both sides; short on purpose, so the verdict weighs in the loss.
pub(super) fn sft_target(user: &User, video: &Video) -> String {
    let (category, _) = CATEGORIES[video.category];
    let (cue, trait_line) = match video.cause {
        Cause::NegativeEvent => (
            "The title reports conflict or hostility, a negative event.",
            if user.low_negativity_tolerance {
                "The user's negativity tolerance is low: they skip such videos."
            } else {
                "The user's negativity tolerance is high: such videos do not put them off."
            },
        ),
        Cause::Dull => (
            "The title promises long footage where nothing happens.",
            if user.impatient {
                "The user is bored by such videos and skips them."
            } else {
                "The user is not bored by such videos."
            },
        ),
        Cause::Disturbing => (
            "The title shows graphic, gory images.",
            if user.low_sensory_tolerance {
                "The user's sensory tolerance is low: they skip such videos."
            } else {
                "The user's sensory tolerance is high: such images do not put them off."
            },
        ),
        Cause::None => ("Nothing in the title is hostile, dull or graphic.", ""),
    };
    let answer = match cause_meeting_trait(user, video).and_then(Cause::class) {
        Some(class) => format!("negative: {class}"),
        None => "like".to_string(),
    };
    let vague = VAGUE_TITLES.contains(&video.title.as_str());
    // Dull videos are long, and the Reason prompt shows the length (in the
    // same words), so that cue holds under a vague title too. (Naming every
    // video's length, short ones too, was tried and taught worse:
    // docs/training-demo.md, "What was tried", item 11.)
    let runs = enf_kit::length(video.listed_duration_s()).unwrap_or_default();
    let cue = match (video.cause, vague) {
        (Cause::Dull, false) => format!("{cue} It runs {runs}."),
        (Cause::Dull, true) => format!("The title says little about what it shows, but it runs {runs}: long footage."),
        (_, true) => "The title says little about what it shows.".to_string(),
        (_, false) => cue.to_string(),
    };
    let think = format!("A {category} video. {cue} {trait_line}");
    format!("<think>{}</think><answer>{answer}</answer>", think.trim_end())
}

/// The video's planted cause when it meets the user's hidden trait: the
/// deterministic part of why users skip.
pub(super) fn cause_meeting_trait(user: &User, video: &Video) -> Option<Cause> {
    match video.cause {
        Cause::NegativeEvent if user.low_negativity_tolerance => Some(Cause::NegativeEvent),
        Cause::Disturbing if user.low_sensory_tolerance => Some(Cause::Disturbing),
        Cause::Dull if user.impatient => Some(Cause::Dull),
        _ => None,
    }
}

/// The prediction of an oracle that knows every planted cause and hidden
/// trait but not the generator's random draws (skips of videos outside the
/// user's interests, the rare unexplained skip): a predictions-file line, so
/// `enf eval DIR/oracle.jsonl --data DIR` gives the ceiling a model can reach.
pub(super) fn oracle_record(item_id: &str, user: &User, video: &Video) -> serde_json::Value {
    let cause = cause_meeting_trait(user, video);
    let verdict = Verdict {
        attitude: if cause.is_some() { Attitude::Negative } else { Attitude::Like },
        reason_class: cause.and_then(Cause::class),
        reason: sft_target(user, video),
        guessed: false,
        notes: Vec::new(),
    };
    let record = crate::data::baseline::verdict_record(item_id, &user.id, &video.id, "oracle", &verdict);
    serde_json::to_value(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(low_negativity_tolerance: bool) -> User {
        User {
            id: "u1".into(),
            interests: vec![0],
            low_negativity_tolerance,
            low_sensory_tolerance: false,
            impatient: false,
        }
    }

    fn video(cause: Cause, title: &str) -> Video {
        Video { id: "v1".into(), category: 7, cause, title: title.into(), duration_s: 60.0 }
    }

    #[test]
    fn a_cause_meeting_the_trait_is_taught_as_its_class_with_the_cue_and_the_trait() {
        let (u, v) = (user(true), video(Cause::NegativeEvent, "Brawl breaks out at news event"));
        let target = sft_target(&u, &v);
        assert!(target.ends_with("<answer>negative: 1</answer>"), "{target}");
        assert!(target.contains("conflict") && target.contains("tolerance is low"), "{target}");
    }

    #[test]
    fn a_tolerated_cause_is_taught_as_liked_naming_the_tolerance() {
        let (u, v) = (user(false), video(Cause::NegativeEvent, "Brawl breaks out at news event"));
        let target = sft_target(&u, &v);
        assert!(target.ends_with("<answer>like</answer>"), "{target}");
        assert!(target.contains("conflict") && target.contains("tolerance is high"), "{target}");
    }

    #[test]
    fn a_vague_title_is_not_said_to_show_a_cue() {
        let (u, v) = (user(true), video(Cause::NegativeEvent, "Wow!"));
        let target = sft_target(&u, &v);
        assert!(target.contains("says little") && !target.contains("conflict"), "{target}");
        assert!(target.ends_with("<answer>negative: 1</answer>"), "the oracle's verdict: {target}");
    }

    #[test]
    fn a_dull_video_is_said_to_run_long_also_under_a_vague_title() {
        let mut u = user(false);
        u.impatient = true;
        for title in ["Six hours of uncut footage", "Wow!"] {
            let v = Video { duration_s: 5729.9, ..video(Cause::Dull, title) };
            let target = sft_target(&u, &v);
            assert!(target.contains("It runs 95 minutes") || target.contains("it runs 95 minutes"), "{target}");
            assert!(target.ends_with("<answer>negative: 2</answer>"), "{target}");
        }
    }

    #[test]
    fn the_length_named_is_the_length_listed() {
        // 5729.96 s is listed as 5730.0 s: the prompt says 96 minutes (95.5
        // rounded up), and so must the target.
        let v = Video { duration_s: 5729.96, ..video(Cause::Dull, "Wow!") };
        assert!(sft_target(&user(true), &v).contains("runs 96 minutes"));
    }

    #[test]
    fn a_video_without_a_cause_is_liked_without_a_trait_line() {
        let (u, v) = (user(true), video(Cause::None, "Top 5 news moments this week"));
        let target = sft_target(&u, &v);
        assert_eq!(
            target,
            "<think>A news video. Nothing in the title is hostile, dull or graphic.</think><answer>like</answer>"
        );
    }
}
