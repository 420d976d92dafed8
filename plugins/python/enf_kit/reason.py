"""The Reason agent's prompt over the four dimensions. Port of
``enf-kit/src/reason.rs`` (and ``describe_user`` of ``profile_prompts.rs``):
the prompt is byte for byte the Rust agent's, so the model sees the same text."""

from typing import Any, Optional

from . import clip, length
from .task import Task

_U64_MAX = (1 << 64) - 1


def _scalar_text(value: Any) -> Optional[str]:
    """A JSON string as is, or a non-negative integer in decimal (serde's ``as_str``/``as_u64``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX:
        return str(value)
    return None


def _field(value: Any, key: str) -> Optional[str]:
    return _scalar_text(value.get(key)) if isinstance(value, dict) else None


def _text(value: Any, key: str) -> Optional[str]:
    found = _field(value, key)
    return found if found else None


def describe_user(user: Any) -> str:
    """``34-year-old female nurse; interests: food, travel``."""
    parts = []
    age = _field(user, "age")
    if age is not None:
        parts.append(f"{age}-year-old")
    gender = _field(user, "gender")
    if gender is not None:
        parts.append(gender)
    occupation = _field(user, "occupation")
    parts.append(occupation if occupation is not None else "person")
    interests = user.get("interests") if isinstance(user, dict) else None
    interests = [i for i in interests if isinstance(i, str)] if isinstance(interests, list) else []
    text = " ".join(parts)
    if interests:
        text += "; interests: " + ", ".join(interests)
    return text


_PROFILE_LINES = [
    ("values", "Values"),
    ("negativity_tolerance", "Negativity tolerance"),
    ("sensory_tolerance", "Sensory tolerance"),
    ("bored_by", "Bored by"),
]
_VIDEO_LINES = [("content", "Content"), ("controversial", "Controversial"), ("values", "Values it conveys")]


def judge(user: Any, profile: Any, video: Any, candidate: Any, task: Task) -> str:
    """The judgement prompt over the four dimensions."""
    prompt = "You predict how one user reacts to a recommended short video.\n"
    prompt += f"User: {describe_user(user)}\n"
    profile_lines = [
        f"{label}: {clip(value, 200)}" for key, label in _PROFILE_LINES if (value := _text(profile, key)) is not None
    ]
    if profile_lines:
        prompt += "Profile:\n" + "\n".join(profile_lines) + "\n"
    title = _text(candidate, "title")
    prompt += f'\nVideo: "{clip(title if title is not None else "", 200)}"'
    category = _text(candidate, "category")
    if category is not None:
        prompt += f" ({category})"
    prompt += "\n"
    spoken = length(candidate.get("duration_s")) if isinstance(candidate, dict) else None
    if spoken is not None:
        prompt += f"Length: {spoken}\n"
    for key, label in _VIDEO_LINES:
        value = _text(video, key)
        if value is not None:
            prompt += f"{label}: {clip(value, 300)}\n"
    prompt += (
        "\nConsider: 1) does it match the user's interests? 2) is the plot appealing to them? "
        "3) does it contain negative events or extreme opinions they reject? "
        "4) do its visuals suit their sensory tolerance?\n\n"
        f"Reasons for a negative reaction:\n{task.class_menu()}\n\n"
        "Think step by step inside <think></think>. Then answer inside <answer></answer> with \"like\", "
        'or "negative: N" where N is the number of the reason.'
    )
    return prompt
