"""What the Python agents share, free of WebAssembly bindings so it is
unit-tested by the host's own CPython (``plugins/python/tests``).

A port of the Rust crate ``plugins/enf-kit``, kept behaviour for behaviour:

- :mod:`enf_kit.task`: the task configuration items carry (``$item.task``);
- :mod:`enf_kit.answer`: splitting a model's output into ``<think>`` and
  ``<answer>``, tolerating the usual malformed outputs;
- :mod:`enf_kit.verdict`: like vs. negative, the reason class and the reason;
- :mod:`enf_kit.reason`: the Reason agent's prompt;
- :func:`clip` and :func:`length`: how every prompt cuts a text and says a
  video's length.

Both parsers are checked against the same cases
(``plugins/enf-kit/verdict-cases.json``).
"""

import math
from typing import Any, Optional


def clip(text: str, limit: int) -> str:
    """Cuts ``text`` to at most ``limit`` characters, adding ``…``."""
    if len(text) <= limit:
        return text
    return text[:limit] + "…"


def length(seconds: Any) -> Optional[str]:
    """A video's length as a reader says it, the same in every agent's prompt
    (``lib.rs``'s ``length``): whole seconds under two minutes, whole minutes
    from there (halves rounded up); ``None`` for a value that is not a finite
    non-negative number."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0.0:
        return None
    if seconds < 120.0:
        return f"{math.floor(seconds + 0.5)} seconds"
    return f"{math.floor(seconds / 60.0 + 0.5)} minutes"


# The characters Rust's `str::trim` removes (Unicode White_Space); Python's
# `str.strip()` removes a slightly different set, so the ports use this one.
RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def trim(text: str) -> str:
    """Strips leading and trailing whitespace exactly as Rust's ``str::trim``."""
    return text.strip(RUST_WHITESPACE)
