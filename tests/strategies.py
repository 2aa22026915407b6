"""Hypothesis strategies for search inputs: every pair of element types,
metric, shape (empty ones included), layout and value style."""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes  # noqa: F401  (registers numpy's "bfloat16" dtype name)
import numpy as np
from hypothesis import strategies as st

# (queries dtype, corpus dtype) -> the metrics defined for the pair.
PAIR_METRICS = {
    ("float32", "float32"): ("cosine", "dot", "sqeuclidean", "l2"),
    ("float32", "float16"): ("cosine", "dot", "sqeuclidean", "l2"),
    ("float32", "bfloat16"): ("cosine", "dot", "sqeuclidean", "l2"),
    ("float32", "int8"): ("cosine", "dot", "sqeuclidean", "l2"),
    ("float32", "bits"): ("cosine", "dot"),
    ("int8", "int8"): ("cosine", "dot", "sqeuclidean", "l2"),
    ("bits", "bits"): ("hamming",),
}
PAIR_METRIC_CASES = [(q, c, m) for (q, c), metrics in PAIR_METRICS.items() for m in metrics]
LAYOUTS = ("C", "F", "every_other_row", "reversed_rows", "prefix_view")
# "ties" uses a few small integers, so equal scores are common and exact.
VALUE_STYLES = ("normal", "ties", "zero_rows", "duplicate_rows")


@dataclass
class Case:
    queries: np.ndarray
    corpus: np.ndarray
    metric: str
    k: int


def _values(rng: np.random.Generator, shape: tuple[int, int], kind: str, style: str) -> np.ndarray:
    if kind == "bits":
        return rng.integers(0, 256, size=shape, dtype=np.uint8) if style != "ties" else \
            rng.choice(np.array([0, 255, 15], dtype=np.uint8), size=shape)
    if kind == "int8":
        low, high = (-2, 3) if style == "ties" else (-128, 128)
        x = rng.integers(low, high, size=shape).astype(np.int8)
    elif style == "ties":
        x = rng.integers(-2, 3, size=shape).astype(kind)
    else:
        x = rng.standard_normal(shape).astype(kind)
    if style == "zero_rows" and shape[0]:
        x[rng.random(shape[0]) < 0.3] = 0
    if style == "duplicate_rows" and shape[0] > 1:
        x[1::2] = x[0::2][: len(x[1::2])]
    return x


def _laid_out(rng: np.random.Generator, shape: tuple[int, int], kind: str, style: str,
              layout: str) -> np.ndarray:
    """Rows with the given memory layout; the values do not depend on it."""
    n, width = shape
    if layout == "every_other_row":
        base = np.zeros((2 * n, width), dtype=np.uint8 if kind == "bits" else kind)
        base[::2] = _values(rng, shape, kind, style)
        return base[::2]
    if layout == "reversed_rows":
        return np.ascontiguousarray(_values(rng, shape, kind, style)[::-1])[::-1]
    if layout == "prefix_view":
        wide = np.zeros((n, width + 5), dtype=np.uint8 if kind == "bits" else kind)
        wide[:, :width] = _values(rng, shape, kind, style)
        return wide[:, :width]
    x = _values(rng, shape, kind, style)
    return np.asfortranarray(x) if layout == "F" else x


@st.composite
def search_cases(draw, q_kind: str, c_kind: str, metric: str, max_rows: int = 70,
                 max_dim: int = 70) -> Case:
    """Queries and corpus of the given kinds, with any shape and layout."""
    # A few queries, or enough for the native core's batch kernel (from 8
    # or 16, by ISA), straddling its threshold and its 64-query tiles.
    nq = draw(st.integers(0, 20) | st.integers(30, 70))
    n = draw(st.integers(0, max_rows))
    dim = draw(st.integers(1 if c_kind == "bits" else 0, max_dim))
    k = draw(st.integers(1, n + 5))
    style = draw(st.sampled_from(VALUE_STYLES))
    layout = draw(st.sampled_from(LAYOUTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q_width = (dim + 7) // 8 if q_kind == "bits" else dim
    c_width = (dim + 7) // 8 if c_kind == "bits" else dim
    queries = _laid_out(rng, (nq, q_width), q_kind, style, "C")
    corpus = _laid_out(rng, (n, c_width), c_kind, style, layout)
    if style == "duplicate_rows" and nq and n and q_kind == c_kind:
        queries[0] = corpus[0]
    return Case(queries, corpus, metric, k)


@st.composite
def _index_operation(draw):
    op = draw(st.sampled_from(["add", "add", "remove", "compact", "save"]))
    if op == "add":
        ids = draw(st.lists(st.integers(0, 40), max_size=8, unique=True))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return op, (rng.standard_normal((len(ids), 5)).astype(np.float32), ids)
    if op == "remove":
        return op, draw(st.lists(st.integers(0, 40), max_size=8, unique=True))
    if op == "save":
        return op, draw(st.booleans())  # load it back memory-mapped or read
    return op, None


def index_operations():
    """Sequences of Index changes over a small id range, so ids collide,
    come back after removal and arrive out of order."""
    return st.lists(_index_operation(), min_size=1, max_size=12)


@dataclass
class CodesCase:
    queries: np.ndarray
    codes: np.ndarray
    quantizer: object  # sk.Int8Quantizer
    metric: str
    k: int


@st.composite
def int8_code_cases(draw, metric: str, max_rows: int = 60, max_dim: int = 50) -> CodesCase:
    """Float queries and per-dimension int8 codes (any offsets, steps that
    differ by dimension, a zero step now and then), with any layout."""
    import simkernel as sk

    nq = draw(st.integers(0, 20) | st.integers(30, 40))
    n = draw(st.integers(0, max_rows))
    dim = draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = rng.uniform(0.001, 0.05, dim) * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    if draw(st.booleans()):
        steps[rng.random(dim) < 0.2] = 0
    offsets = rng.normal(0, 1, dim) * draw(st.sampled_from([0.0, 1.0, 100.0]))
    quantizer = sk.Int8Quantizer(steps, offsets)
    codes = _laid_out(rng, (n, dim), "int8", draw(st.sampled_from(VALUE_STYLES)),
                      draw(st.sampled_from(LAYOUTS)))
    queries = rng.standard_normal((nq, dim)).astype(np.float32)
    return CodesCase(queries, codes, quantizer, metric, draw(st.integers(1, n + 5)))


@st.composite
def parted_cases(draw, q_kind: str, c_kind: str, metric: str) -> tuple[Case, list[np.ndarray]]:
    """A search case and its corpus cut into up to five parts (views, empty
    ones included)."""
    case = draw(search_cases(q_kind, c_kind, metric))
    n = len(case.corpus)
    edges = [0, *sorted(draw(st.lists(st.integers(0, n), max_size=4))), n]
    return case, [case.corpus[a:b] for a, b in zip(edges[:-1], edges[1:])]
