"""Argument checks and normalisation, shared by every backend.

Everything a backend receives has passed through here: 2-D arrays whose rows
are contiguous and aligned, an element-type pair, a known metric and a
dimension. Errors name the argument and the shapes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import numpy as np

from ._checks import BFLOAT16, is_float, positive_int
from ._dlpack import as_array
from ._storage import Pieces
from .quantize import Int8Codes

METRICS = ("cosine", "dot", "sqeuclidean", "l2", "hamming")
HIGHER_IS_BETTER = {"cosine": True, "dot": True, "sqeuclidean": False, "l2": False, "hamming": False}

# int8 sums of squares stay below 2**31 only up to this many elements, and a
# Hamming count only up to this many bits (the core's kMaxInt8Dim and
# kMaxHammingBits, checked again there).
MAX_INT8_DIM = 32768
MAX_HAMMING_BITS = 2**31 - 1

# Element-type pairs (queries, corpus) and the metrics each supports.
PAIR_METRICS = {
    "f32_f32": ("cosine", "dot", "sqeuclidean", "l2"),
    "f32_f16": ("cosine", "dot", "sqeuclidean", "l2"),
    "f32_bf16": ("cosine", "dot", "sqeuclidean", "l2"),
    "f32_i8": ("cosine", "dot", "sqeuclidean", "l2"),
    "f32_bits": ("cosine", "dot"),
    "i8_i8": ("cosine", "dot", "sqeuclidean", "l2"),
    "bits_bits": ("hamming",),
}

_CORPUS_KINDS = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", BFLOAT16: "bf16",
                 np.dtype(np.int8): "i8", np.dtype(np.uint8): "bits"}
_ACCEPTED = "float32, float16, bfloat16, float64, int8 (codes) or uint8 (bit-packed)"


Corpus = Union[np.ndarray, Pieces]


class SearchArgs(NamedTuple):
    """A checked (queries, corpus) pair, ready for a backend. (A named tuple:
    made on every call, and quicker to build than a frozen dataclass.)"""

    queries: np.ndarray
    corpus: Corpus
    pair: str
    metric: str
    dim: int
    one_query: bool
    corpus_name: str = "corpus"
    query_name: str = "queries"
    # Int8Codes: (steps, offsets, decoded row squared norms); the corpus is
    # their codes, scored as the vectors they decode to.
    affine: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None

    @property
    def integer_scores(self) -> bool:
        """Whether scores are exact int32 (else float32)."""
        return self.pair == "bits_bits" or (
            self.pair == "i8_i8" and self.metric in ("dot", "sqeuclidean"))

    @property
    def score_dtype(self) -> np.dtype:
        return np.dtype(np.int32 if self.integer_scores else np.float32)

    def arrays(self) -> list[np.ndarray]:
        """The arrays the search reads: the queries, then the corpus's pieces."""
        pieces = self.corpus.arrays if isinstance(self.corpus, Pieces) else [self.corpus]
        return [self.queries, *pieces]

    def shaped(self, result: np.ndarray) -> np.ndarray:
        """Drops the query axis again when the caller passed one 1-D vector."""
        return result[0] if self.one_query else result


def check_metric(metric: object) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    return str(metric)


# Any k at least the number of rows means every row; larger values are held
# here, so that k (and k times a rescore factor) stays a machine integer.
MAX_K = 2**62


def check_k(k: object) -> int:
    return min(positive_int(k, "k"), MAX_K)


def _as_rows(x: object, name: str, *, widen_queries: bool) -> np.ndarray:
    """A 2-D array of an accepted element type whose rows can be read in place."""
    array = as_array(x, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (one vector per row), got shape {array.shape}")
    if not array.dtype.isnative:
        # Byte-swapped (big-endian) floats: converted once, as other types are.
        array = array.astype(array.dtype.newbyteorder("="))
    dtype = array.dtype
    if dtype == np.float64 or (widen_queries and dtype in (np.float16, BFLOAT16)):
        # 16-bit float queries are widened exactly; they are small, the corpus is not.
        array = array.astype(np.float32)
    elif dtype not in _CORPUS_KINDS:
        raise TypeError(f"{name} has dtype {dtype}; expected {_ACCEPTED}")
    # Strided rows are read in place; only a non-unit step inside a row (or
    # misaligned memory) forces one copy.
    inner_ok = array.size == 0 or array.strides[1] == array.itemsize
    if not inner_ok or not array.flags.aligned:
        array = np.ascontiguousarray(array)
    return array


def _corpus_parts(corpus: Union[list, tuple], name: str) -> Optional[Pieces]:
    """A list of 2-D arrays (memmaps, tensors, any lengths) as one corpus in
    parts, rows numbered across them; None for anything else (a list of
    vectors is one array, as numpy reads it)."""
    arrays = [None if isinstance(part, (list, tuple)) else as_array(part, f"{name}[{i}]")
              for i, part in enumerate(corpus)]
    if not arrays or any(array is None or array.ndim != 2 for array in arrays):
        return None
    rows = [_as_rows(array, f"{name}[{i}]", widen_queries=False) for i, array in enumerate(arrays)]
    for i, part in enumerate(rows[1:], start=1):
        if part.dtype != rows[0].dtype:
            raise TypeError(f"{name}[{i}] has dtype {part.dtype} but {name}[0] has "
                            f"{rows[0].dtype}: the parts of a corpus share one element type")
        if part.shape[1] != rows[0].shape[1]:
            raise ValueError(f"{name}[{i}] has rows of {part.shape[1]} elements but {name}[0] "
                             f"has {rows[0].shape[1]}: the parts of a corpus share one width")
    return Pieces(rows)


# Queries whose largest magnitude is outside [2**-40, 2**40] are rescaled.
_NEAR_UNIT = 2.0**-40


def _cosine_ready(q: np.ndarray) -> np.ndarray:
    """Float queries for cosine, which no positive scale changes: a query far
    from unit size is scaled by a power of two (exactly), so its squared norm
    neither underflows nor overflows float32. Others are left as they are."""
    # ufunc reductions, not the array methods: this runs on every cosine
    # call, and the methods' Python wrappers cost more than a small query.
    peak = np.maximum.reduce(np.abs(q), axis=1, initial=0)
    smallest, largest = np.minimum.reduce(peak, initial=np.inf), np.maximum.reduce(peak, initial=0)
    if _NEAR_UNIT <= smallest and largest <= 1 / _NEAR_UNIT:
        return q  # the common case: every query within range
    far = (peak > 0) & ((peak < _NEAR_UNIT) | (peak > 1 / _NEAR_UNIT)) & np.isfinite(peak)
    if not far.any():
        return q
    _, exponent = np.frexp(peak[far])
    scaled = np.array(q, dtype=np.float32)
    scaled[far] = np.ldexp(scaled[far], -exponent[:, None])
    return scaled


def _queries_2d(queries: object, name: str) -> tuple[np.ndarray, bool]:
    array = as_array(queries, name)
    if array.ndim == 1:
        return array[np.newaxis, :], True
    return array, False


def _pair_of(q: np.ndarray, c: Corpus, query_name: str, corpus_name: str) -> str:
    q_kind, c_kind = _CORPUS_KINDS[q.dtype], _CORPUS_KINDS[c.dtype]
    if q_kind == "f32":
        return f"f32_{c_kind}"
    if q_kind == "i8" and c_kind == "i8":
        return "i8_i8"
    if q_kind == "bits" and c_kind == "bits":
        return "bits_bits"
    if q_kind == "i8":
        raise TypeError(
            f"{query_name} are int8 codes but {corpus_name} has dtype {c.dtype}: "
            f"quantized queries against unquantized vectors is almost always a "
            f"mistake. Pass the float queries (float queries against int8 or bit "
            f"codes are searched asymmetrically), or encode {corpus_name} with the "
            f"same Int8Quantizer.")
    raise TypeError(
        f"{query_name} are bit-packed uint8 but {corpus_name} has dtype {c.dtype}: "
        f"bit-packed queries need a bit-packed {corpus_name} (metric='hamming'); "
        f"pass float queries to search bits asymmetrically.")


def _dimension(pair: str, q: np.ndarray, c: Corpus, query_name: str,
               corpus_name: str) -> int:
    d = q.shape[1]
    if pair == "f32_bits":
        expected = (d + 7) // 8
        if c.shape[1] != expected:
            raise ValueError(
                f"{corpus_name} holds bit-packed rows of {c.shape[1]} bytes but "
                f"{query_name} have {d} dimensions (needing {expected} bytes): "
                f"{query_name} shape {q.shape}, {corpus_name} shape {c.shape}")
        return d
    if c.shape[1] != d:
        raise ValueError(
            f"{query_name} and {corpus_name} must have the same dimension: "
            f"{query_name} shape {q.shape}, {corpus_name} shape {c.shape}")
    return 8 * d if pair == "bits_bits" else d


def prepare(queries: object, corpus: object, metric: object, *,
            query_name: str = "queries", corpus_name: str = "corpus") -> SearchArgs:
    """Checks and normalises one search's inputs (docs/semantics.md, Inputs)."""
    metric = check_metric(metric)
    q_raw, one_query = _queries_2d(queries, query_name)
    q = _as_rows(q_raw, query_name, widen_queries=True)
    c: Corpus
    affine = None
    if isinstance(corpus, Int8Codes):
        affine = (corpus.steps, corpus.offsets, corpus.sqnorms)
        corpus = corpus.codes
    parts = _corpus_parts(corpus, corpus_name) if isinstance(corpus, (list, tuple)) else None
    if parts is not None:
        c = parts
    elif isinstance(corpus, Pieces):
        c = Pieces([_as_rows(a, corpus_name, widen_queries=False) for a in corpus.arrays])
    else:
        c = _as_rows(corpus, corpus_name, widen_queries=False)
    pair = _pair_of(q, c, query_name, corpus_name)
    if affine is not None and pair != "f32_i8":
        raise TypeError(f"{corpus_name} are Int8Codes, which are searched with float "
                        f"{query_name}; got {query_name} of dtype {q.dtype}")
    if metric not in PAIR_METRICS[pair]:
        raise ValueError(_metric_mismatch(metric, pair, q, c, query_name, corpus_name))
    if metric == "cosine" and pair.startswith("f32_"):
        q = _cosine_ready(q)
    dim = _dimension(pair, q, c, query_name, corpus_name)
    if pair == "i8_i8" and dim > MAX_INT8_DIM:
        raise ValueError(
            f"int8 rows longer than {MAX_INT8_DIM} could overflow int32 scores; "
            f"{query_name} shape {q.shape}, {corpus_name} shape {c.shape}")
    if pair == "bits_bits" and dim > MAX_HAMMING_BITS:
        raise ValueError(
            f"bit rows longer than {MAX_HAMMING_BITS} bits could overflow int32 Hamming "
            f"counts; {query_name} shape {q.shape}, {corpus_name} shape {c.shape}")
    return SearchArgs(q, c, pair, metric, dim, one_query, corpus_name, query_name, affine)


def _metric_mismatch(metric: str, pair: str, q: np.ndarray, c: Corpus,
                     query_name: str, corpus_name: str) -> str:
    valid = ", ".join(PAIR_METRICS[pair])
    if metric == "hamming":
        return (f"metric 'hamming' needs bit-packed uint8 {query_name} and "
                f"{corpus_name}; got {q.dtype} and {c.dtype}")
    return (f"metric {metric!r} is not defined for {query_name} of dtype {q.dtype} "
            f"against {corpus_name} of dtype {c.dtype}; valid here: {valid}")


# max_results=None: no cap (the core takes a machine integer).
NO_RESULT_CAP = 2**63 - 1


def check_threshold(threshold: object) -> float:
    """A range search's threshold: a real number, not NaN."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
            threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold must be a real number, got {threshold!r}")
    value = float(threshold)
    if np.isnan(value):
        raise ValueError("threshold must be a number, got NaN")
    return value


def check_max_results(max_results: object) -> int:
    """The cap on a range search's results: None (no cap) or an int >= 0."""
    if max_results is None:
        return NO_RESULT_CAP
    if isinstance(max_results, (bool, np.bool_)) or not isinstance(max_results, (int, np.integer)):
        raise TypeError(f"max_results must be None or a non-negative integer, got {max_results!r}")
    if max_results < 0:
        raise ValueError(f"max_results must be None or a non-negative integer, got {max_results}")
    return min(int(max_results), NO_RESULT_CAP)


def too_many_results_error(max_results: int) -> ValueError:
    """The error of a range search that found more than ``max_results``."""
    return ValueError(
        f"range search found more than max_results={max_results} results; raise "
        f"max_results or choose a stricter threshold")


def check_candidates(candidates: object, args: SearchArgs) -> np.ndarray:
    """Row numbers (q, m) for rescore: integers, in range, distinct per row."""
    array = given = np.asarray(candidates)
    if array.ndim == 1 and args.one_query:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] != args.queries.shape[0]:
        raise ValueError(
            f"candidates must have one row per query: candidates shape "
            f"{given.shape}, {args.query_name} shape {args.queries.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"candidates must be integer row numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.int64)
    n = args.corpus.shape[0]
    if array.size and (array.min() < 0 or array.max() >= n):
        raise ValueError(
            f"candidates must be row numbers in [0, {n}) of {args.corpus_name}; "
            f"got values from {array.min()} to {array.max()}")
    if array.shape[1] > 1:
        ordered = np.sort(array, axis=1)
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            row = int(np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0][0])
            raise ValueError(f"candidates row {row} names the same row of "
                             f"{args.corpus_name} twice")
    return array


def non_finite_error(args: SearchArgs) -> ValueError:
    """The error for a non-finite score, naming the argument that caused it.

    Only called once a kernel has seen a non-finite score, so the extra pass
    over the inputs costs nothing on the normal path.
    """
    queries, *corpus = args.arrays()
    for arrays, name in (([queries], args.query_name), (corpus, args.corpus_name)):
        if any(is_float(a.dtype) and not np.isfinite(a).all() for a in arrays):
            return ValueError(f"{name} contains NaN or infinity")
    return ValueError(
        f"scores overflowed float32: values in {args.query_name} or "
        f"{args.corpus_name} are too large")


def check_out(out: Optional[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A caller's ``out`` array for cdist, or a new one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}; "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    return out
