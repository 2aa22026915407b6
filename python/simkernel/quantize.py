"""Quantizers: sign bits, and int8 codes with one symmetric scale or a scale
and an offset per dimension (searched through Int8Codes)."""

from __future__ import annotations

from typing import Any, Optional

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
    """int8 codes of float vectors: ``x ≈ offset + scale * code``.

    Symmetric (the default): one scale for every dimension and no offset,
    codes in [-127, 127]. ``dot`` and ``cosine`` over such codes rank exactly
    as over the decoded vectors, so the codes can be searched as they are,
    and this is what an `Index` stores.

    Per dimension: a scale and an offset for each dimension (`fit` with
    ``per_dimension=True``, or `from_ranges`, sentence-transformers' int8
    layout), codes in [-128, 127]. Wrap the codes in `Int8Codes` to search
    them as the vectors they decode to.

    Parameters
    ----------
    scale : float or array_like
        The float value of one code step: a positive number, or one
        non-negative number per dimension (0 for a dimension that holds a
        single value).
    offset : array_like, optional
        The value of code 0 in each dimension; given, the quantizer is per
        dimension (a scalar ``scale`` then applies to every dimension).
    """

    def __init__(self, scale: Any, offset: Optional[ArrayLike] = None) -> None:
        if offset is None and np.ndim(scale) == 0:
            value = float(np.float32(scale))
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"scale must be positive and finite, got {scale!r}")
            self.scale: Any = value
            self.offset: Optional[np.ndarray] = None
            return
        steps = np.asarray(scale, dtype=np.float32)
        offsets = np.zeros_like(steps) if offset is None else np.asarray(offset, dtype=np.float32)
        if steps.ndim == 0:
            steps = np.full(offsets.shape, steps, dtype=np.float32)
        if steps.ndim != 1 or offsets.shape != steps.shape or steps.size == 0:
            raise ValueError(f"scale and offset must be one number per dimension: scale shape "
                             f"{steps.shape}, offset shape {offsets.shape}")
        if not (np.isfinite(steps).all() and (steps >= 0).all()):
            raise ValueError("scale must be finite and non-negative in every dimension")
        if not np.isfinite(offsets).all():
            raise ValueError("offset must be finite in every dimension")
        self.scale = steps
        self.offset = offsets

    @property
    def per_dimension(self) -> bool:
        """Whether each dimension has its own scale and offset."""
        return self.offset is not None

    @classmethod
    def fit(cls, sample: ArrayLike, percentile: float = 99.99, *,
            per_dimension: bool = False) -> "Int8Quantizer":
        """Fits the scale (and, per dimension, the offset) to a sample.

        Symmetric: ``percentile`` of ``|sample|`` maps to 127. Per
        dimension: each dimension's range from the ``100 - percentile`` to
        the ``percentile`` percentile of its values maps to [-128, 127].

        Parameters
        ----------
        sample : array_like
            Representative vectors (a few thousand rows are plenty).
        percentile : float
            Values beyond it are clipped to the end codes; clipping the rare
            outliers gives the other values finer steps.
        per_dimension : bool
            A scale and an offset for each dimension.
        """
        data = _float_input(sample, "sample")
        if data.size == 0:
            raise ValueError("sample is empty")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
        if per_dimension:
            rows = np.atleast_2d(data).astype(np.float64)
            low = np.percentile(rows, 100 - percentile, axis=0)
            high = np.percentile(rows, percentile, axis=0)
            return cls._from_bounds(low, high)
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

    @classmethod
    def from_ranges(cls, ranges: ArrayLike) -> "Int8Quantizer":
        """The quantizer of sentence-transformers' int8 codes.

        ``quantize_embeddings(x, "int8", ranges=ranges)`` maps each
        dimension's ``[ranges[0], ranges[1]]`` to 256 levels and stores
        level - 128; this decodes code c as ``ranges[0] + (c + 128) * step``
        with ``step = (ranges[1] - ranges[0]) / 255`` in float32 (1 where
        the range is one value), as their dequantization does.

        Parameters
        ----------
        ranges : array_like
            ``(2, d)``: each dimension's minimum, then its maximum.
        """
        bounds = np.asarray(ranges, dtype=np.float32)
        if bounds.ndim != 2 or bounds.shape[0] != 2 or bounds.shape[1] == 0:
            raise ValueError(f"ranges must have shape (2, dim), got {bounds.shape}")
        if not np.isfinite(bounds).all() or (bounds[1] < bounds[0]).any():
            raise ValueError("ranges must be finite, each maximum at least its minimum")
        step = (bounds[1] - bounds[0]) / np.float32(255)
        step = np.where(step == 0, np.float32(1), step).astype(np.float64)
        return cls(step, bounds[0].astype(np.float64) + 128.0 * step)

    @classmethod
    def _from_bounds(cls, low: np.ndarray, high: np.ndarray) -> "Int8Quantizer":
        step = (high - low) / 255.0
        return cls(step, low + 128.0 * step)

    def _check_width(self, width: int, name: str) -> None:
        if self.per_dimension and width != self.scale.shape[0]:
            raise ValueError(f"{name} has {width} dimensions but the quantizer has "
                             f"{self.scale.shape[0]}")

    def encode(self, x: ArrayLike) -> np.ndarray:
        """int8 codes: ``round((x - offset) / scale)``, clipped to [-127, 127]
        (symmetric) or [-128, 127] (per dimension); 0 where a dimension's
        scale is 0."""
        data = _float_input(x, "x").astype(np.float32, copy=False)
        if not self.per_dimension:
            codes = np.rint(data / np.float32(self.scale))
            return np.clip(codes, -127, 127).astype(np.int8)
        self._check_width(data.shape[-1], "x")
        steps, offsets = self.steps_and_offsets(data.shape[-1])
        centred = data.astype(np.float64) - offsets
        codes = np.rint(np.divide(centred, steps, out=np.zeros_like(centred), where=steps > 0))
        return np.clip(codes, -128, 127).astype(np.int8)

    def decode(self, codes: ArrayLike) -> np.ndarray:
        """float32 ``offset + codes * scale``."""
        array = np.asarray(codes)
        if array.dtype != np.int8:
            raise TypeError(f"codes must be int8, got dtype {array.dtype}")
        if not self.per_dimension:
            return array.astype(np.float32) * np.float32(self.scale)
        self._check_width(array.shape[-1] if array.ndim else 0, "codes")
        return self.decode_exact(array).astype(np.float32)

    def decode_exact(self, codes: np.ndarray) -> np.ndarray:
        """``offset + codes * scale`` in float64: the vectors the codes stand
        for, as searches score them (a float32 step times a code is exact in
        float64)."""
        steps, offsets = self.steps_and_offsets(codes.shape[-1])
        return offsets.astype(np.float64) + steps.astype(np.float64) * codes

    def steps_and_offsets(self, dims: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 scale and offset of each of ``dims`` dimensions."""
        if not self.per_dimension:
            return np.full(dims, self.scale, dtype=np.float32), np.zeros(dims, dtype=np.float32)
        self._check_width(dims, "the codes")
        assert self.offset is not None
        return self.scale, self.offset

    def __repr__(self) -> str:
        if not self.per_dimension:
            return f"Int8Quantizer(scale={self.scale!r})"
        return f"Int8Quantizer(scale=<{self.scale.shape[0]} steps>, offset=<{self.scale.shape[0]} offsets>)"

    def _key(self) -> tuple:
        if not self.per_dimension:
            return ("symmetric", self.scale)
        assert self.offset is not None
        return ("per dimension", self.scale.tobytes(), self.offset.tobytes())

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Int8Quantizer) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(("Int8Quantizer", self._key()))


# Rows decoded at once while Int8Codes sums the decoded rows' norms.
_NORM_BLOCK_ROWS = 1 << 14


class Int8Codes:
    """int8 codes beside their quantizer, searched as the vectors they decode
    to: pass one as the corpus (or `rescore`'s vectors) of `topk`,
    `range_search`, `cdist` or `rescore`, with float queries.

    Every metric is then that of the decoded vectors ``offset + scale *
    code``: the queries are scaled by the steps once, the offsets add one
    number per query, and each decoded row's squared norm, summed here once,
    finishes cosine and distances. The codes are read in place.

    Parameters
    ----------
    codes : array_like
        ``(n, d)`` int8 codes (a memmap is read where it is).
    quantizer : Int8Quantizer
        The quantizer that made them.
    """

    def __init__(self, codes: ArrayLike, quantizer: Int8Quantizer) -> None:
        if not isinstance(quantizer, Int8Quantizer):
            raise TypeError(f"quantizer must be an Int8Quantizer, got {type(quantizer).__name__}")
        array = as_array(codes, "codes")
        if array.dtype != np.int8 or array.ndim != 2:
            raise TypeError(f"codes must be a 2-D int8 array, got dtype {array.dtype} and "
                            f"shape {array.shape}")
        self.codes = array
        self.quantizer = quantizer
        self.steps, self.offsets = quantizer.steps_and_offsets(array.shape[1])
        # |o + s c|^2 = o.o + c.(2 o s) + (c c).(s s): float32 products are
        # exact in float64, and two matrix-vector products beat decoding.
        steps, offsets = self.steps.astype(np.float64), self.offsets.astype(np.float64)
        linear, square, constant = 2 * offsets * steps, steps * steps, float(offsets @ offsets)
        self.sqnorms = np.empty(len(array), dtype=np.float64)
        for start in range(0, len(array), _NORM_BLOCK_ROWS):
            rows = array[start:start + _NORM_BLOCK_ROWS].astype(np.float64)
            self.sqnorms[start:start + len(rows)] = constant + rows @ linear + (rows * rows) @ square

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return f"Int8Codes({self.codes.shape[0]} x {self.codes.shape[1]}, {self.quantizer!r})"
