"""Small argument checks shared across modules."""

from __future__ import annotations

import operator

import ml_dtypes
import numpy as np

# bfloat16 (ml_dtypes' numpy type: numpy has none of its own). Its dtype kind
# is "V", not "f", so float checks go through is_float.
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def is_float(dtype: np.dtype) -> bool:
    """Whether ``dtype`` holds floating-point numbers (bfloat16 included)."""
    return dtype.kind == "f" or dtype == BFLOAT16


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
