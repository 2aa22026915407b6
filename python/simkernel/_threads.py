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


# The core never runs more workers than there are tasks (nor more than a few
# per core), so any larger count means the same as this one; holding it here
# keeps it a C int.
MAX_THREADS = 2**31 - 1


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` as given, else ``SIMKERNEL_NUM_THREADS``, else all usable cores."""
    if threads is not None:
        return min(positive_int(threads, "threads"), MAX_THREADS)
    from_env = os.environ.get("SIMKERNEL_NUM_THREADS")
    if from_env:
        try:
            return min(positive_int(int(from_env), "SIMKERNEL_NUM_THREADS"), MAX_THREADS)
        except ValueError:
            raise ValueError(
                f"SIMKERNEL_NUM_THREADS must be a positive integer, got {from_env!r}"
            ) from None
    return _available_cores()
