"""The task configuration every item carries as ``$item.task``: which play
rate counts as an implicit negative and the reason classes, so prompts and
parsing follow the data rather than code. Port of ``enf-kit/src/task.rs``."""

from dataclasses import dataclass, field
from typing import Any, List, Optional

_U32_MAX = (1 << 32) - 1


@dataclass
class ReasonClass:
    """One reason class for negative feedback."""

    id: int
    name: str
    description: str
    keywords: List[str] = field(default_factory=list)


@dataclass
class Task:
    """The task configuration."""

    negative_play_rate: float
    classes: List[ReasonClass]

    @staticmethod
    def default() -> "Task":
        """The paper's three classes and its 0.3 play-rate rule."""
        return Task(
            negative_play_rate=0.3,
            classes=[
                ReasonClass(
                    1,
                    "negative-content",
                    "negative events, vulgar content, or values that conflict with the user's",
                    ["negative", "vulgar", "values", "offensive", "violent", "scandal", "conflict", "controvers"],
                ),
                ReasonClass(
                    2,
                    "boring",
                    "the content lacks appeal and fails to arouse the user's interest",
                    ["boring", "dull", "interest", "appeal", "slow", "repetitive", "uninteresting"],
                ),
                ReasonClass(
                    3,
                    "visually-disturbing",
                    "disturbing visual elements that make the user uncomfortable",
                    ["disturbing", "visual", "graphic", "gore", "blood", "uncomfortable", "gross", "scary"],
                ),
            ],
        )

    @staticmethod
    def from_value(value: Any) -> "Task":
        """Reads ``value`` as a task, or the defaults when it is absent or malformed."""
        parsed = _parse_task(value)
        return parsed if parsed is not None else Task.default()

    def class_menu(self) -> str:
        """The classes as prompt lines: ``1. name: description``."""
        return "\n".join(f"{c.id}. {c.name}: {c.description}" for c in self.classes)

    def class_(self, id: int) -> Optional[ReasonClass]:
        """The class with this id."""
        return next((c for c in self.classes if c.id == id), None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_class(value: Any) -> Optional[ReasonClass]:
    if not isinstance(value, dict):
        return None
    id, name, description = value.get("id"), value.get("name"), value.get("description")
    if not (_is_int(id) and 0 <= id <= _U32_MAX and isinstance(name, str) and isinstance(description, str)):
        return None
    keywords = value.get("keywords", [])
    if not (isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)):
        return None
    return ReasonClass(id, name, description, list(keywords))


def _parse_task(value: Any) -> Optional[Task]:
    """What serde would accept for the Rust `Task`: both fields present and well typed."""
    if not isinstance(value, dict):
        return None
    rate, classes = value.get("negative_play_rate"), value.get("classes")
    if not ((_is_int(rate) or isinstance(rate, float)) and isinstance(classes, list)):
        return None
    parsed = [_parse_class(c) for c in classes]
    if any(c is None for c in parsed):
        return None
    return Task(float(rate), parsed)
