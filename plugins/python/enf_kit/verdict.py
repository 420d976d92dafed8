"""From a model's answer to a verdict: like or negative, the reason class
(negative only) and the reason. Port of ``enf-kit/src/verdict.rs``.

Small models answer loosely, so the parser looks for the attitude and class
in the ``<answer>``, then in the reasoning, and always produces a usable
verdict — flagging ``guessed`` when it had to look beyond the answer or fall
back to a default.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .answer import Answer, split
from .task import Task

LIKE_ATTITUDE = "like"
NEGATIVE_ATTITUDE = "negative"

_NEGATIVE = [
    "negative",
    "dislike",
    "not like",
    "wouldn't like",
    "would not like",
    "won't like",
    "skip",
    "not interested",
    "no",
]
_LIKE = ["like", "positive", "enjoy", "watch", "interested", "yes"]
_CUES = ["negative", "class", "reason", "type", "category"]
_U32_MAX = (1 << 32) - 1


@dataclass
class Verdict:
    """A parsed verdict, as agents output it."""

    attitude: str
    reason_class: Optional[int]
    reason: str
    guessed: bool
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        """The verdict as the Rust agents serialise it (``notes`` only when non-empty)."""
        value: Dict[str, Any] = {
            "attitude": self.attitude,
            "reason_class": self.reason_class,
            "reason": self.reason,
            "guessed": self.guessed,
        }
        if self.notes:
            value["notes"] = list(self.notes)
        return value


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _first_word(text: str, words: List[str]) -> Optional[int]:
    """Position of the first whole-word occurrence of any of ``words`` in ``text``."""
    best = None
    for word in words:
        at = text.find(word)
        while at >= 0:
            before = text[at - 1] if at > 0 else None
            end = at + len(word)
            after = text[end] if end < len(text) else None
            bounded = not (before is not None and _is_word_char(before)) and not (
                after is not None and _is_word_char(after)
            )
            if bounded:
                best = at if best is None else min(best, at)
                break
            at = text.find(word, end)
    return best


def _attitude_in(text: str) -> Optional[str]:
    """The attitude ``text`` states first, if any."""
    text = text.lower()
    negative, like = _first_word(text, _NEGATIVE), _first_word(text, _LIKE)
    if negative is not None and like is not None and like < negative:
        return LIKE_ATTITUDE
    if negative is not None:
        return NEGATIVE_ATTITUDE
    if like is not None:
        return LIKE_ATTITUDE
    return None


def _class_in(text: str, task: Task) -> Optional[int]:
    """A class id named in ``text``: a number right after "negative", "class",
    "reason" or "type" wins, else the last known class number, else a class name.

    Works in UTF-8 bytes like the Rust parser (the cue window is the 14 bytes
    before a number, moved forward to a character boundary)."""
    lowered = text.lower()
    data = lowered.encode("utf-8")
    numbers = []
    start = None
    for i in range(len(data) + 1):
        digit = i < len(data) and 0x30 <= data[i] <= 0x39
        if digit and start is None:
            start = i
        elif not digit and start is not None:
            # What Rust's `parse::<u32>` accepts: leading zeros, at most u32::MAX.
            digits = data[start:i].lstrip(b"0") or b"0"
            id = int(digits) if len(digits) <= 10 else _U32_MAX + 1
            if id <= _U32_MAX and task.class_(id) is not None:
                numbers.append((start, id))
            start = None
    cued = None
    for at, id in numbers:
        window_start = max(0, at - 14)
        while window_start < at and (data[window_start] & 0xC0) == 0x80:
            window_start += 1
        window = data[window_start:at].decode("utf-8").rstrip(" :#(=-")
        if any(window.endswith(cue) for cue in _CUES):
            cued = (at, id)
            break
    chosen = cued if cued is not None else (numbers[-1] if numbers else None)
    if chosen is not None:
        return chosen[1]
    return next((c.id for c in task.classes if c.name.lower() in lowered), None)


def _class_by_keywords(text: str, task: Task) -> Optional[int]:
    """The class whose keywords ``text`` mentions most, if it mentions any."""
    text = text.lower()
    best = None
    for c in task.classes:
        hits = sum(1 for k in c.keywords if k.lower() in text)
        if hits > 0 and (best is None or hits > best[0] or (hits == best[0] and c.id < best[1])):
            best = (hits, c.id)
    return best[1] if best is not None else None


def from_answer(answer: Answer, task: Task) -> Verdict:
    """Reads a verdict out of a split answer."""
    notes = list(answer.notes)
    guessed = not answer.well_formed()
    attitude = _attitude_in(answer.answer)
    if attitude is None:
        guessed = True
        attitude = _attitude_in(answer.think)
        if attitude is not None:
            notes.append("attitude read from the reasoning")
        else:
            notes.append("no attitude found; defaulted to like")
            attitude = LIKE_ATTITUDE
    reason_class = None
    if attitude == NEGATIVE_ATTITUDE:
        reason_class = _class_in(answer.answer, task)
        if reason_class is None:
            guessed = True
            found = _class_in(answer.think, task)
            if found is None:
                found = _class_by_keywords(answer.think, task)
            notes.append(f"class {found} inferred from the reasoning" if found is not None else "no reason class found")
            reason_class = found
    reason = answer.answer if answer.think == "" else answer.think
    return Verdict(attitude, reason_class, reason, guessed, notes)


def parse(output: str, task: Task) -> Verdict:
    """Parses a raw model output into a verdict."""
    return from_answer(split(output), task)
