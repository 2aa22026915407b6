"""Quantizers: sign bits and one symmetric int8 scale."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._checks import is_float
from ._dlpack import as_array


def _float_input(x: ArrayLike, name: str) -> np.ndarray:
    array = as_array(x, name)
    if not (is_float(array.dtype) or array.dtype.kind in "iu") or array.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {array.shape}")
    if is_float(array.dtype) and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def binary_quantize(x: ArrayLike) -> np.ndarray:
    """Sign bits, packed: bit set where ``x > 0``.

    Parameters
    ----------
    x : array_like
        ``(n, d)`` or ``(d,)`` real vectors.

    Returns
    -------
    numpy.ndarray
        uint8 ``(n, ceil(d/8))`` in ``np.packbits(x > 0, axis=-1)`` layout
        (first dimension in the most significant bit, zero padding).
    """
    return np.packbits(_float_input(x, "x") > 0, axis=-1)


class Int8Quantizer:
    """One symmetric scale for every dimension: ``codes ≈ x / scale``.

    With a single scale, ``dot`` and ``cosine`` over the codes rank exactly as
    over the decoded vectors, and float queries can be searched against the
    codes directly (asymmetric search).

    Parameters
    ----------
    scale : float
        The float value of one code step; positive and finite.
    """

    def __init__(self, scale: float) -> None:
        value = float(np.float32(scale))
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        self.scale = value

    @classmethod
    def fit(cls, sample: ArrayLike, percentile: float = 99.99) -> "Int8Quantizer":
        """Chooses the scale so that ``percentile`` of ``|sample|`` maps to 127.

        Parameters
        ----------
        sample : array_like
            Representative vectors (a few thousand rows are plenty).
        percentile : float
            Values of ``|x|`` above this percentile are clipped to ±127;
            clipping the rare outliers gives the other values finer steps.
        """
        data = _float_input(sample, "sample")
        if data.size == 0:
            raise ValueError("sample is empty")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
        magnitude = np.abs(data.astype(np.float64))
        limit = float(np.percentile(magnitude, percentile))
        if limit == 0.0:
            limit = float(magnitude.max())
        # An all-zero sample has no range to fit: any scale encodes it as 0.
        # Below float32's normal range a step would round to zero, so it is
        # held at the smallest normal one (such values all encode as 0).
        if limit == 0:
            return cls(1.0)
        return cls(max(limit / 127.0, float(np.finfo(np.float32).tiny)))

    def encode(self, x: ArrayLike) -> np.ndarray:
        """int8 codes in [-127, 127]: ``round(x / scale)``, clipped."""
        data = _float_input(x, "x").astype(np.float32, copy=False)
        codes = np.rint(data / np.float32(self.scale))
        return np.clip(codes, -127, 127).astype(np.int8)

    def decode(self, codes: ArrayLike) -> np.ndarray:
        """float32 ``codes * scale``."""
        array = np.asarray(codes)
        if array.dtype != np.int8:
            raise TypeError(f"codes must be int8, got dtype {array.dtype}")
        return array.astype(np.float32) * np.float32(self.scale)

    def __repr__(self) -> str:
        return f"Int8Quantizer(scale={self.scale!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Int8Quantizer) and other.scale == self.scale

    def __hash__(self) -> int:
        return hash(("Int8Quantizer", self.scale))
