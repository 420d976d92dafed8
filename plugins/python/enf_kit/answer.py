"""Splitting model output into ``<think>…</think>`` and ``<answer>…</answer>``.
Port of ``enf-kit/src/answer.rs``.

Models, small ones especially, get the format wrong in a handful of ways;
each is tolerated and noted: tags in another case, a missing closing tag,
text outside the tags, repeated tags (the last complete answer wins), and no
tags at all (the whole text is both the reasoning and the answer).

The Rust parser measures and slices in UTF-8 bytes; so does this port (the
tags are ASCII, so every cut falls on a character boundary), which keeps the
"text outside the tags" arithmetic identical for any text.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from . import trim

_OPEN_THINK = b"<think>"
_OPEN_ANSWER = b"<answer>"


@dataclass
class Answer:
    """A model output, split."""

    think: str
    answer: str
    notes: List[str] = field(default_factory=list)

    def well_formed(self) -> bool:
        """Whether the output followed the format exactly."""
        return not self.notes


def _sections(text: bytes, lower: bytes, tag: str) -> List[Tuple[int, int, bool]]:
    """Byte ranges of the contents of every ``<tag>…</tag>`` (case-insensitive),
    with whether the closing tag was present."""
    open_tag = f"<{tag}>".encode()
    close_tag = f"</{tag}>".encode()
    found = []
    start_from = 0
    while True:
        at = lower.find(open_tag, start_from)
        if at < 0:
            break
        start = at + len(open_tag)
        rest = lower[start:]
        # A section ends at its closing tag, or at the next opening tag of any kind.
        closing = rest.find(close_tag)
        closing = None if closing < 0 else closing
        first_lt = rest.find(b"<")
        next_open = None
        if first_lt >= 0 and (rest.startswith(_OPEN_THINK, first_lt) or rest.startswith(_OPEN_ANSWER, first_lt)):
            next_open = first_lt
        if closing is not None and next_open is not None and next_open < closing:
            end, closed = start + next_open, False
        elif closing is not None:
            end, closed = start + closing, True
        elif next_open is not None:
            end, closed = start + next_open, False
        else:
            end, closed = len(text), False
        found.append((start, end, closed))
        start_from = end + len(close_tag) if closed else end
    return found


def _slice(text: bytes, start: int, end: int) -> str:
    return text[start:end].decode("utf-8")


def split(output: str) -> Answer:
    """Splits a model output; never fails."""
    text = output.encode("utf-8")
    lower = output.lower().encode("utf-8")
    # Lowercasing can change byte lengths outside ASCII; fall back to the text itself then.
    if len(lower) != len(text):
        lower = text
    notes: List[str] = []
    if (b"<think>" in lower) != (b"<think>" in text) or (b"<answer>" in lower) != (b"<answer>" in text):
        notes.append("tags in another case")
    thinks = _sections(text, lower, "think")
    answers = _sections(text, lower, "answer")
    if len(thinks) > 1:
        notes.append(f"{len(thinks)} <think> sections")
    if len(answers) > 1:
        notes.append(f"{len(answers)} <answer> sections; the last complete one is used")
    think: Optional[str] = None
    if thinks:
        if any(not closed for (_, _, closed) in thinks):
            notes.append("unclosed <think>")
        think = "\n".join(trim(_slice(text, s, e)) for (s, e, _) in thinks)
    answer: Optional[str] = None
    if answers:
        complete = [a for a in answers if a[2]]
        s, e, closed = complete[-1] if complete else answers[-1]
        if not closed:
            notes.append("unclosed <answer>")
        answer = trim(_slice(text, s, e))
    stripped_len = sum(e - s for (s, e, _) in thinks + answers)
    tag_len = len(thinks) * 15 + len(answers) * 17
    if thinks or answers:
        outside = max(0, len(trim(output).encode("utf-8")) - (stripped_len + tag_len))
        if outside > 2:
            notes.append("text outside the tags")
    if think is None and answer is None:
        notes.append("no <think> or <answer> tags")
        whole = trim(output)
        return Answer(think=whole, answer=whole, notes=notes)
    if answer is None:
        notes.append("no <answer>")
        return Answer(think=think, answer="", notes=notes)
    if think is None:
        notes.append("no <think>")
        return Answer(think="", answer=answer, notes=notes)
    return Answer(think=think, answer=answer, notes=notes)
