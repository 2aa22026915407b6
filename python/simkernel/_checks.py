"""Small argument checks shared across modules."""

from __future__ import annotations

import operator


def positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1; TypeError or ValueError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be a positive integer, got {count}")
    return count
