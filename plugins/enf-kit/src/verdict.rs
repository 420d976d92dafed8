//! From a model's answer to a verdict: like or negative, the reason class
//! (negative only) and the reason. Small models answer loosely, so the
//! parser looks for the attitude and class in the `<answer>`, then in the
//! reasoning, and always produces a usable verdict — flagging `guessed` when
//! it had to look beyond the answer or fall back to a default.

use serde::{Deserialize, Serialize};

use crate::answer::{Answer, split};
use crate::task::Task;

/// The predicted attitude towards the candidate video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attitude {
    /// Watches it through / likes it.
    Like,
    /// Skips it fast or dislikes it.
    Negative,
}

/// A parsed verdict, as agents output it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Like or negative.
    pub attitude: Attitude,
    /// The reason class (negative verdicts), by id.
    pub reason_class: Option<u32>,
    /// The explanation: the `<think>` text.
    pub reason: String,
    /// Whether the parser had to guess (format broken, attitude or class inferred).
    pub guessed: bool,
    /// What was wrong with the output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

const NEGATIVE: &[&str] = &[
    "negative",
    "dislike",
    "not like",
    "wouldn't like",
    "would not like",
    "won't like",
    "skip",
    "not interested",
    "no",
];
const LIKE: &[&str] = &["like", "positive", "enjoy", "watch", "interested", "yes"];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Position of the first whole-word occurrence of any of `words` in `text`.
fn first_word(text: &str, words: &[&str]) -> Option<usize> {
    words
        .iter()
        .filter_map(|word| {
            text.match_indices(word).find_map(|(at, _)| {
                let before = text[..at].chars().next_back();
                let after = text[at + word.len()..].chars().next();
                let bounded = !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char);
                bounded.then_some(at)
            })
        })
        .min()
}

/// The attitude `text` states first, if any.
fn attitude_in(text: &str) -> Option<Attitude> {
    let text = text.to_lowercase();
    match (first_word(&text, NEGATIVE), first_word(&text, LIKE)) {
        (Some(n), Some(l)) if l < n => Some(Attitude::Like),
        (Some(_), _) => Some(Attitude::Negative),
        (None, Some(_)) => Some(Attitude::Like),
        (None, None) => None,
    }
}

/// A class id named in `text`: a number right after "negative", "class",
/// "reason" or "type" wins, else the last known class number, else a class name.
fn class_in(text: &str, task: &Task) -> Option<u32> {
    let text = text.to_lowercase();
    let mut numbers: Vec<(usize, u32)> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if let Ok(id) = text[s..i].parse::<u32>()
                    && task.class(id).is_some()
                {
                    numbers.push((s, id));
                }
                start = None;
            }
            _ => {}
        }
    }
    let cued = numbers.iter().find(|(at, _)| {
        let before = &text[..*at];
        // The 14 bytes before the number, moved forward to a character boundary.
        let mut from = before.len().saturating_sub(14);
        while !before.is_char_boundary(from) {
            from += 1;
        }
        let window = &before[from..];
        let window = window.trim_end_matches([' ', ':', '#', '(', '=', '-']);
        ["negative", "class", "reason", "type", "category"].iter().any(|cue| window.ends_with(cue))
    });
    cued.or(numbers.last())
        .map(|(_, id)| *id)
        .or_else(|| task.classes.iter().find(|c| text.contains(&c.name.to_lowercase())).map(|c| c.id))
}

/// The class whose keywords `text` mentions most, if it mentions any.
fn class_by_keywords(text: &str, task: &Task) -> Option<u32> {
    let text = text.to_lowercase();
    task.classes
        .iter()
        .map(|c| (c.keywords.iter().filter(|k| text.contains(&k.to_lowercase())).count(), c.id))
        .filter(|(hits, _)| *hits > 0)
        .max_by_key(|(hits, id)| (*hits, std::cmp::Reverse(*id)))
        .map(|(_, id)| id)
}

/// Reads a verdict out of a split answer.
pub fn from_answer(answer: Answer, task: &Task) -> Verdict {
    let mut notes = answer.notes.clone();
    let mut guessed = !answer.well_formed();
    let attitude = match attitude_in(&answer.answer) {
        Some(a) => a,
        None => {
            guessed = true;
            match attitude_in(&answer.think) {
                Some(a) => {
                    notes.push("attitude read from the reasoning".into());
                    a
                }
                None => {
                    notes.push("no attitude found; defaulted to like".into());
                    Attitude::Like
                }
            }
        }
    };
    let reason_class = match attitude {
        Attitude::Like => None,
        Attitude::Negative => class_in(&answer.answer, task).or_else(|| {
            guessed = true;
            let found = class_in(&answer.think, task).or_else(|| class_by_keywords(&answer.think, task));
            notes.push(match found {
                Some(id) => format!("class {id} inferred from the reasoning"),
                None => "no reason class found".into(),
            });
            found
        }),
    };
    let reason = if answer.think.is_empty() { answer.answer.clone() } else { answer.think.clone() };
    Verdict { attitude, reason_class, reason, guessed, notes }
}

/// Parses a raw model output into a verdict.
pub fn parse(output: &str, task: &Task) -> Verdict {
    from_answer(split(output), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task::default()
    }

    #[test]
    fn a_clean_negative_answer_with_class() {
        let v = parse("<think>Graphic surgery footage.</think><answer>negative: 3</answer>", &task());
        assert_eq!(v.attitude, Attitude::Negative);
        assert_eq!(v.reason_class, Some(3));
        assert_eq!(v.reason, "Graphic surgery footage.");
        assert!(!v.guessed);
    }

    #[test]
    fn a_clean_like_answer_has_no_class() {
        let v = parse("<think>Matches the interest in cars.</think><answer>Like</answer>", &task());
        assert_eq!((v.attitude, v.reason_class, v.guessed), (Attitude::Like, None, false));
    }

    #[test]
    fn dislike_is_not_read_as_like() {
        let v = parse("<think>x</think><answer>The user would dislike it (class 2)</answer>", &task());
        assert_eq!((v.attitude, v.reason_class), (Attitude::Negative, Some(2)));
    }

    #[test]
    fn class_names_count_when_no_number_is_given() {
        let v = parse("<think>x</think><answer>negative, boring</answer>", &task());
        assert_eq!(v.reason_class, Some(2));
    }

    #[test]
    fn a_missing_answer_is_read_from_the_reasoning_and_flagged() {
        let v = parse("<think>Too much blood; the user will skip this disturbing clip.</think>", &task());
        assert_eq!(v.attitude, Attitude::Negative);
        assert_eq!(v.reason_class, Some(3));
        assert!(v.guessed);
    }

    #[test]
    fn untagged_prose_still_gives_a_verdict() {
        let v = parse("They will probably skip it because it is dull.", &task());
        assert_eq!(v.attitude, Attitude::Negative);
        assert_eq!(v.reason_class, Some(2));
        assert!(v.guessed);
    }

    #[test]
    fn gibberish_defaults_to_like_and_says_so() {
        let v = parse("##@@!!", &task());
        assert_eq!(v.attitude, Attitude::Like);
        assert!(v.guessed);
        assert!(v.notes.iter().any(|n| n.contains("defaulted to like")));
    }

    #[test]
    fn the_number_after_negative_wins_over_other_numbers() {
        let v = parse("1. 20-year-old-negative: 20-negative: negative: 2.", &task());
        assert_eq!(v.reason_class, Some(2));
        let v = parse("<think>x</think><answer>Negative (class 3), not 1</answer>", &task());
        assert_eq!(v.reason_class, Some(3));
    }

    #[test]
    fn a_number_after_multibyte_text_does_not_split_a_character() {
        let v = parse("<think>日本語日本語2</think><answer>negative 日本語日本語3</answer>", &task());
        assert_eq!((v.attitude, v.reason_class), (Attitude::Negative, Some(3)));
    }

    /// The cases both parsers (this one and the Python port in
    /// plugins/python/enf_kit) are checked against.
    #[test]
    fn the_shared_cases_parse_as_recorded() {
        #[derive(Deserialize)]
        struct Case {
            output: String,
            verdict: Verdict,
        }
        let cases: Vec<Case> = serde_json::from_str(include_str!("../verdict-cases.json")).expect("verdict-cases.json");
        assert!(cases.len() >= 30, "{} cases", cases.len());
        for case in cases {
            assert_eq!(parse(&case.output, &task()), case.verdict, "output: {:?}", case.output);
        }
    }

    #[test]
    fn numbers_of_unknown_classes_are_ignored() {
        let v = parse("<think>vulgar jokes</think><answer>negative: 7</answer>", &task());
        assert_eq!(v.reason_class, Some(1), "falls back to keywords: {:?}", v.notes);
        assert!(v.guessed);
    }
}
