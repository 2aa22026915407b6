"""How each storage kind of an Index holds vectors and is searched: one codec
per kind (docs/index.md, Storage). A codec encodes float32 rows into its
stored form, decodes them back, and plans a search: what the kernels get as
queries, which metric they compute, and the factor that turns their scores
into the metric on the decoded vectors.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._checks import BFLOAT16
from .quantize import Int8Quantizer, binary_quantize

# What a search of one storage runs: (queries, metric, factor).
Plan = tuple[np.ndarray, str, float]


class Codec:
    """float32 storage: rows as they are."""

    kind = "float32"
    dtype: np.dtype = np.dtype(np.float32)

    def width(self, dims: int) -> int:
        """Stored elements per row for ``dims`` dimensions."""
        return dims

    def encode(self, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        return x

    def decode(self, rows: np.ndarray, dim: int, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        return rows.astype(np.float32)

    def plan(self, queries: np.ndarray, metric: str, *, unit_rows: bool, asymmetric: bool,
             quantizer: Optional[Int8Quantizer]) -> Plan:
        """``queries`` are float32 and, for cosine, normalized like the rows;
        ``unit_rows`` says the rows searched are unit length (cosine, full
        dimensions)."""
        if unit_rows:
            # Stored rows are unit length (to float32 rounding): cosine is a
            # dot with the unit query.
            return queries, "dot", 1.0
        return queries, metric, 1.0


class Float16Codec(Codec):
    kind = "float16"
    dtype = np.dtype(np.float16)

    def encode(self, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        if np.abs(x).max(initial=0) > np.finfo(np.float16).max:
            raise ValueError("vectors hold values too large for float16 storage")
        return x.astype(np.float16)

    def plan(self, queries: np.ndarray, metric: str, *, unit_rows: bool, asymmetric: bool,
             quantizer: Optional[Int8Quantizer]) -> Plan:
        # float16 rounding moves a row's length by up to 5e-4, so the kernels
        # still divide by it: cosine stays cosine.
        return queries, metric, 1.0


class BFloat16Codec(Float16Codec):
    """Rows rounded to bfloat16 (to nearest, ties to even): float32's range,
    8 significant bits; searched as cosine for the same reason as float16."""

    kind = "bfloat16"
    dtype = BFLOAT16

    def encode(self, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        rows = x.astype(BFLOAT16)
        # Only values within half a step of float32's largest round up to
        # infinity.
        if not np.isfinite(rows).all():
            raise ValueError("vectors hold values too large for bfloat16 storage")
        return rows


class Int8Codec(Codec):
    kind = "int8"
    dtype = np.dtype(np.int8)

    def encode(self, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        assert quantizer is not None
        return quantizer.encode(x)

    def decode(self, rows: np.ndarray, dim: int, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        assert quantizer is not None
        return quantizer.decode(rows)

    def plan(self, queries: np.ndarray, metric: str, *, unit_rows: bool, asymmetric: bool,
             quantizer: Optional[Int8Quantizer]) -> Plan:
        assert quantizer is not None
        s = quantizer.scale
        if not asymmetric:
            factor = {"cosine": 1.0, "dot": s * s, "sqeuclidean": s * s, "l2": s}
            return quantizer.encode(queries), metric, factor[metric]
        # Float queries meet codes (= vectors / s): dot is scaled after,
        # distances need the queries in code units first.
        if metric in ("sqeuclidean", "l2"):
            return queries / np.float32(s), metric, s * s if metric == "sqeuclidean" else s
        return queries, metric, s if metric == "dot" else 1.0


class BinaryCodec(Codec):
    kind = "binary"
    dtype = np.dtype(np.uint8)

    def width(self, dims: int) -> int:
        return (dims + 7) // 8

    def encode(self, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        return binary_quantize(x)

    def decode(self, rows: np.ndarray, dim: int, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        bits = np.unpackbits(rows, axis=1, count=dim)
        return bits.astype(np.float32) * 2 - 1

    def plan(self, queries: np.ndarray, metric: str, *, unit_rows: bool, asymmetric: bool,
             quantizer: Optional[Int8Quantizer]) -> Plan:
        if metric == "hamming" or not asymmetric:
            return binary_quantize(queries), "hamming", 1.0
        return queries, metric, 1.0


CODECS: dict[str, Codec] = {codec.kind: codec for codec in
                            (Codec(), Float16Codec(), BFloat16Codec(), Int8Codec(), BinaryCodec())}
