"""How many threads a call may use."""

from __future__ import annotations

import os
from typing import Optional

from ._checks import positive_int


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` as given, else ``SIMKERNEL_NUM_THREADS``, else all usable cores."""
    if threads is not None:
        return positive_int(threads, "threads")
    from_env = os.environ.get("SIMKERNEL_NUM_THREADS")
    if from_env:
        try:
            return positive_int(int(from_env), "SIMKERNEL_NUM_THREADS")
        except ValueError:
            raise ValueError(
                f"SIMKERNEL_NUM_THREADS must be a positive integer, got {from_env!r}"
            ) from None
    return _available_cores()
