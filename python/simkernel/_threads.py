"""How many threads a call may use."""

from __future__ import annotations

import operator
import os
from typing import Optional


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a positive integer, got {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be a positive integer, got {count}")
    return count


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` as given, else ``SIMKERNEL_NUM_THREADS``, else all usable cores."""
    if threads is not None:
        return _positive_int(threads, "threads")
    from_env = os.environ.get("SIMKERNEL_NUM_THREADS")
    if from_env:
        try:
            return _positive_int(int(from_env), "SIMKERNEL_NUM_THREADS")
        except ValueError:
            raise ValueError(
                f"SIMKERNEL_NUM_THREADS must be a positive integer, got {from_env!r}"
            ) from None
    return _available_cores()
