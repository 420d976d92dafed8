//! Splitting model output into `<think>…</think>` and `<answer>…</answer>`.
//!
//! Models, small ones especially, get the format wrong in a handful of ways;
//! each is tolerated and noted: tags in another case, a missing closing tag,
//! text outside the tags, repeated tags (the last complete answer wins), and
//! no tags at all (the whole text is both the reasoning and the answer).

/// A model output, split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The reasoning.
    pub think: String,
    /// The answer.
    pub answer: String,
    /// What was wrong with the format, if anything.
    pub notes: Vec<String>,
}

impl Answer {
    /// Whether the output followed the format exactly.
    pub fn well_formed(&self) -> bool {
        self.notes.is_empty()
    }
}

/// Byte ranges of the contents of every `<tag>…</tag>` (case-insensitive),
/// with whether the closing tag was present.
fn sections(text: &str, lower: &str, tag: &str) -> Vec<(usize, usize, bool)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = lower[from..].find(&open).map(|i| from + i + open.len()) {
        let rest = &lower[start..];
        // A section ends at its closing tag, or at the next opening tag of any kind.
        let closing = rest.find(&close);
        let next_open =
            rest.find('<').filter(|&i| rest[i..].starts_with("<think>") || rest[i..].starts_with("<answer>"));
        let (end, closed) = match (closing, next_open) {
            (Some(c), Some(o)) if o < c => (start + o, false),
            (Some(c), _) => (start + c, true),
            (None, Some(o)) => (start + o, false),
            (None, None) => (text.len(), false),
        };
        found.push((start, end, closed));
        from = if closed { end + close.len() } else { end };
    }
    found
}

/// Splits a model output; never fails.
pub fn split(text: &str) -> Answer {
    let lower = text.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; fall back to the text itself then.
    let lower = if lower.len() == text.len() { lower } else { text.to_string() };
    let mut notes = Vec::new();
    if lower.contains("<think>") != text.contains("<think>") || lower.contains("<answer>") != text.contains("<answer>")
    {
        notes.push("tags in another case".to_string());
    }
    let thinks = sections(text, &lower, "think");
    let answers = sections(text, &lower, "answer");
    if thinks.len() > 1 {
        notes.push(format!("{} <think> sections", thinks.len()));
    }
    if answers.len() > 1 {
        notes.push(format!("{} <answer> sections; the last complete one is used", answers.len()));
    }
    let think = match thinks.as_slice() {
        [] => None,
        all => {
            if all.iter().any(|&(_, _, closed)| !closed) {
                notes.push("unclosed <think>".to_string());
            }
            Some(all.iter().map(|&(s, e, _)| text[s..e].trim()).collect::<Vec<_>>().join("\n"))
        }
    };
    let answer =
        answers.iter().rev().find(|&&(_, _, closed)| closed).or_else(|| answers.last()).map(|&(s, e, closed)| {
            if !closed {
                notes.push("unclosed <answer>".to_string());
            }
            text[s..e].trim().to_string()
        });
    let stripped_len = [&thinks, &answers].iter().flat_map(|v| v.iter()).map(|&(s, e, _)| e - s).sum::<usize>();
    let tag_len = (thinks.len() * 15) + (answers.len() * 17);
    if !thinks.is_empty() || !answers.is_empty() {
        let outside = text.trim().len().saturating_sub(stripped_len + tag_len);
        if outside > 2 {
            notes.push("text outside the tags".to_string());
        }
    }
    match (think, answer) {
        (None, None) => {
            notes.push("no <think> or <answer> tags".to_string());
            Answer { think: text.trim().to_string(), answer: text.trim().to_string(), notes }
        }
        (Some(think), None) => {
            notes.push("no <answer>".to_string());
            Answer { answer: String::new(), think, notes }
        }
        (None, Some(answer)) => {
            notes.push("no <think>".to_string());
            Answer { think: String::new(), answer, notes }
        }
        (Some(think), Some(answer)) => Answer { think, answer, notes },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_output_splits_cleanly() {
        let a = split("<think>The user skips gore.</think><answer>negative: 3</answer>");
        assert_eq!(a.think, "The user skips gore.");
        assert_eq!(a.answer, "negative: 3");
        assert!(a.well_formed(), "{:?}", a.notes);
    }

    #[test]
    fn tags_in_another_case_are_read() {
        let a = split("<THINK>dull</THINK>\n<Answer>Negative, 2</Answer>");
        assert_eq!((a.think.as_str(), a.answer.as_str()), ("dull", "Negative, 2"));
        assert!(a.notes.iter().any(|n| n.contains("case")));
    }

    #[test]
    fn missing_closing_tags_run_to_the_next_tag_or_the_end() {
        let a = split("<think>loves cars <answer>like");
        assert_eq!((a.think.as_str(), a.answer.as_str()), ("loves cars", "like"));
        assert!(a.notes.iter().any(|n| n.contains("unclosed <think>")));
        assert!(a.notes.iter().any(|n| n.contains("unclosed <answer>")));
    }

    #[test]
    fn repeated_answers_use_the_last_complete_one() {
        let a = split("<think>a</think><answer>like</answer><answer>negative: 1</answer><answer>neg");
        assert_eq!(a.answer, "negative: 1");
        assert!(a.notes.iter().any(|n| n.contains("3 <answer> sections")));
    }

    #[test]
    fn text_without_tags_is_both_reasoning_and_answer() {
        let a = split("  I think they would skip it. Negative.  ");
        assert_eq!(a.think, "I think they would skip it. Negative.");
        assert_eq!(a.answer, a.think);
        assert!(a.notes.iter().any(|n| n.contains("no <think> or <answer>")));
    }

    #[test]
    fn extra_text_outside_the_tags_is_noted() {
        let a = split("Sure! Here you go: <think>x</think><answer>like</answer> Hope this helps.");
        assert_eq!(a.answer, "like");
        assert!(a.notes.iter().any(|n| n.contains("outside")));
    }

    #[test]
    fn empty_output_is_survivable() {
        let a = split("");
        assert_eq!(a.answer, "");
        assert!(!a.well_formed());
    }

    #[test]
    fn non_ascii_text_does_not_break_offsets() {
        let a = split("<think>画面令人不适</think><answer>negative: 3</answer>");
        assert_eq!(a.think, "画面令人不适");
        assert_eq!(a.answer, "negative: 3");
    }
}
