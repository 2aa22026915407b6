"""sentence-transformers' search functions on simkernel (docs/compat.md):
`semantic_search`, `quantize_embeddings` and `semantic_search_simkernel`
(their `semantic_search_faiss` / `semantic_search_usearch` with simkernel
as the library), with their arguments, defaults, layouts and return types.

Nothing here needs torch or sentence-transformers: torch tensors (and any
object with ``__dlpack__``) are read through DLPack, numpy arrays as they
are, lists of either stacked once.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, Union

import numpy as np

from ._checks import is_float, positive_int
from ._dlpack import as_array
from .quantize import Int8Codes, Int8Quantizer, binary_quantize
from .search import rescore as _rescore
from .search import topk as _topk

logger = logging.getLogger(__name__)

Hits = list[list[dict[str, Union[int, float]]]]
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")

# sentence-transformers' score functions (sentence_transformers.util), by
# name, as the metric simkernel computes and the sign of the score.
_SCORE_FUNCTIONS = {"cos_sim": ("cosine", 1.0), "pytorch_cos_sim": ("cosine", 1.0),
                    "dot_score": ("dot", 1.0), "euclidean_sim": ("l2", -1.0)}


def _rows(x: Any, name: str) -> np.ndarray:
    """A 2-D array of x: an array, a tensor (DLPack), or a list of either."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is an empty list")
        x = np.stack([as_array(row, name) for row in x])
    array = as_array(x, name)
    return array[np.newaxis, :] if array.ndim == 1 else array


def _flip_sign_bit(codes: np.ndarray, dtype: type) -> np.ndarray:
    """Bytes moved between their unsigned and signed layouts (b - 128 as
    int8 is b with its top bit flipped, read as signed): one pass, one copy."""
    return np.bitwise_xor(codes.view(np.uint8), np.uint8(0x80)).view(dtype)


def _hits(scores: np.ndarray, indices: np.ndarray) -> Hits:
    """Per query, ``{"corpus_id": int, "score": float}`` dicts, best first;
    padding (-1) dropped."""
    return [[{"corpus_id": int(i), "score": float(s)} for s, i in zip(row_s, row_i) if i >= 0]
            for row_s, row_i in zip(scores.tolist(), indices.tolist())]


def semantic_search(query_embeddings: Any, corpus_embeddings: Any, query_chunk_size: int = 100,
                    corpus_chunk_size: int = 500000, top_k: int = 10,
                    score_function: Union[Callable[[Any, Any], Any], str] = "cos_sim") -> Hits:
    """sentence-transformers' ``util.semantic_search``: the ``top_k`` corpus
    entries per query, by cosine similarity unless told otherwise.

    Parameters
    ----------
    query_embeddings, corpus_embeddings : array_like or torch.Tensor
        ``(q, d)`` (or one ``(d,)`` query) and ``(n, d)`` float embeddings, or
        lists of 1-D ones.
    query_chunk_size, corpus_chunk_size : int
        Accepted for compatibility: simkernel blocks the work itself, in
        bounded memory, and the results do not depend on them.
    top_k : int
    score_function : callable or str
        ``util.cos_sim`` (the default), ``util.dot_score`` or
        ``util.euclidean_sim`` (by name: "cos_sim", "dot_score",
        "euclidean_sim"), searched by simkernel; any other callable is
        applied to chunks as sentence-transformers does, and its scores
        ranked here.

    Returns
    -------
    list of list of dict
        Per query, up to ``top_k`` ``{"corpus_id": int, "score": float}``,
        highest score first (ties to the lower corpus_id).
    """
    k = positive_int(top_k, "top_k")
    name = score_function if isinstance(score_function, str) else getattr(score_function,
                                                                         "__name__", "")
    if name in _SCORE_FUNCTIONS:
        metric, sign = _SCORE_FUNCTIONS[name]
        queries, corpus = _rows(query_embeddings, "query_embeddings"), _rows(corpus_embeddings,
                                                                             "corpus_embeddings")
        for array, label in ((queries, "query_embeddings"), (corpus, "corpus_embeddings")):
            if not is_float(array.dtype):
                raise TypeError(f"{label} must be float embeddings, got dtype {array.dtype}; "
                                "search quantized ones with semantic_search_simkernel")
        scores, indices = _topk(queries, corpus, k, metric)
        return _hits(sign * scores, indices)
    if isinstance(score_function, str) or not callable(score_function):
        raise ValueError(f"score_function must be a callable or one of {list(_SCORE_FUNCTIONS)}, "
                         f"got {score_function!r}")
    return _chunked_search(query_embeddings, corpus_embeddings,
                           positive_int(query_chunk_size, "query_chunk_size"),
                           positive_int(corpus_chunk_size, "corpus_chunk_size"), k, score_function)


def _chunked_search(queries: Any, corpus: Any, query_chunk: int, corpus_chunk: int, k: int,
                    score_function: Callable[[Any, Any], Any]) -> Hits:
    """A caller's own score function over chunks of the inputs as given
    (tensors stay tensors), its scores kept to the best k per query."""
    if len(getattr(queries, "shape", ())) == 1:
        queries = queries[None]
    results: Hits = []
    for q0 in range(0, len(queries), query_chunk):
        block = queries[q0:q0 + query_chunk]
        best_scores = np.empty((len(block), 0))
        best_ids = np.empty((len(block), 0), dtype=np.int64)
        for c0 in range(0, len(corpus), corpus_chunk):
            scores = np.asarray(as_array(score_function(block, corpus[c0:c0 + corpus_chunk]),
                                         "score_function's result"), dtype=np.float64)
            ids = np.broadcast_to(np.arange(c0, c0 + scores.shape[1]), scores.shape)
            best_scores = np.hstack([best_scores, scores])
            best_ids = np.hstack([best_ids, ids])
            order = np.lexsort((best_ids, -best_scores), axis=1)[:, :k]
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            best_ids = np.take_along_axis(best_ids, order, axis=1)
        results.extend(_hits(best_scores, best_ids))
    return results


def _check_precision(precision: object) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return str(precision)


def _ranges(embeddings: Optional[np.ndarray], ranges: Any, calibration_embeddings: Any) -> np.ndarray:
    """Each dimension's (minimum, maximum): given, from the calibration
    embeddings, or (not recommended) from the float embeddings themselves."""
    if ranges is not None:
        return as_array(ranges, "ranges")
    if calibration_embeddings is not None:
        sample = _rows(calibration_embeddings, "calibration_embeddings")
    elif embeddings is None:
        raise ValueError("int8 / uint8 corpora need ranges or calibration_embeddings "
                         "when the queries are quantized")
    elif len(embeddings) == 1:
        raise ValueError("int8 / uint8 ranges cannot come from a single embedding: pass ranges "
                         "or calibration_embeddings from a representative set")
    else:
        if len(embeddings) < 100:
            logger.warning("int8 ranges computed from %d embeddings only: pass ranges, or "
                           "calibration_embeddings, computed from more", len(embeddings))
        sample = embeddings
    return np.vstack([sample.min(axis=0), sample.max(axis=0)])


def quantize_embeddings(embeddings: Any, precision: str, ranges: Optional[Any] = None,
                        calibration_embeddings: Optional[Any] = None) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings``: their layouts, value
    for value.

    Parameters
    ----------
    embeddings : array_like or torch.Tensor
        ``(n, d)`` float embeddings (a list of 1-D ones too).
    precision : {"float32", "int8", "uint8", "binary", "ubinary"}
        ``uint8``: each dimension's range in 256 levels, ``floor((x - min) /
        step)`` with ``step = (max - min) / 255`` in float32; ``int8``:
        level − 128; ``ubinary``: the sign bits packed (``np.packbits(x >
        0)``, first dimension in the high bit); ``binary``: those bytes −
        128 as int8.
    ranges : array_like, optional
        ``(2, d)``: each dimension's minimum and maximum (int8 / uint8).
    calibration_embeddings : array_like, optional
        Embeddings to take the ranges from; without either, the ranges are
        those of ``embeddings`` (their default, which they advise against;
        from one embedding it is a ValueError).

    Returns
    -------
    numpy.ndarray
        Values outside the ranges are clipped to the end levels, and a
        dimension whose range is a single value has a step of 1, as theirs.
    """
    precision = _check_precision(precision)
    x = _rows(embeddings, "embeddings")
    if not is_float(x.dtype):
        raise TypeError(f"embeddings to quantize must be float, got dtype {x.dtype}")
    if precision == "float32":
        return x.astype(np.float32)
    if precision in ("binary", "ubinary"):
        bits = binary_quantize(x)
        return _flip_sign_bit(bits, np.int8) if precision == "binary" else bits
    bounds = _ranges(x, ranges, calibration_embeddings)
    if bounds.shape != (2, x.shape[1]):
        raise ValueError(f"ranges must have shape (2, {x.shape[1]}), got {bounds.shape}")
    # Their arithmetic in their order and types (the ranges in float32), so
    # that every level is theirs.
    bounds = bounds.astype(np.float32, copy=False)
    starts = bounds[0]
    steps = (bounds[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    levels = np.clip(np.floor((x - starts) / steps), 0, 255)
    return levels.astype(np.uint8) if precision == "uint8" else (levels - 128).astype(np.int8)


def _prepared_corpus(codes: np.ndarray, precision: str, quantizer: Optional[Int8Quantizer]) -> Any:
    """What simkernel searches for each precision: float rows, Int8Codes
    (uint8 levels moved to int8 codes), or packed bits (signed binary bytes
    moved back to their unsigned layout)."""
    if precision == "float32":
        return codes
    if precision in ("int8", "uint8"):
        assert quantizer is not None
        if precision == "uint8":
            codes = _flip_sign_bit(codes, np.int8)
        return Int8Codes(codes, quantizer)
    return _flip_sign_bit(codes, np.uint8) if precision == "binary" else codes


def semantic_search_simkernel(query_embeddings: Any, corpus_embeddings: Optional[Any] = None,
                              corpus_index: Optional[Any] = None,
                              corpus_precision: str = "float32", top_k: int = 10,
                              ranges: Optional[Any] = None,
                              calibration_embeddings: Optional[Any] = None, rescore: bool = True,
                              rescore_multiplier: int = 2, exact: bool = True,
                              output_index: bool = False) -> tuple:
    """sentence-transformers' ``semantic_search_faiss`` /
    ``semantic_search_usearch`` with simkernel as the library: search a
    corpus of quantized embeddings, and rescore with the float queries.

    Parameters
    ----------
    query_embeddings : array_like or torch.Tensor
        Float queries (they are quantized for the first stage as the corpus
        is), or queries already quantized to ``corpus_precision`` (then no
        rescoring).
    corpus_embeddings : array_like, optional
        The corpus as `quantize_embeddings` made it at ``corpus_precision``.
    corpus_index : optional
        What an earlier call returned with ``output_index=True``, in place
        of ``corpus_embeddings``.
    corpus_precision : {"float32", "int8", "uint8", "binary", "ubinary"}
    top_k : int
    ranges, calibration_embeddings : optional
        The int8 / uint8 ranges the corpus was quantized with (or the
        embeddings they came from); without either, those of the queries,
        as sentence-transformers does.
    rescore : bool
        Binary corpora: search ``top_k * rescore_multiplier`` by Hamming
        distance, then rank them by the float queries' dot with the bits
        (as 0 / 1, their score). int8 / uint8 corpora need no second stage:
        the float queries are scored against the vectors the codes decode to
        over the whole corpus, at int8 cost.
    rescore_multiplier : int
    exact : bool
        Accepted for compatibility; the search is always exact.
    output_index : bool
        Also return the prepared corpus, to pass as ``corpus_index``.

    Returns
    -------
    tuple
        ``(results, seconds)``, or ``(results, seconds, index)``: results as
        `semantic_search` gives them, seconds the search's time (not the
        preparation's).
    """
    precision = _check_precision(corpus_precision)
    k = positive_int(top_k, "top_k")
    multiplier = positive_int(rescore_multiplier, "rescore_multiplier")
    if (corpus_embeddings is None) == (corpus_index is None):
        raise ValueError("pass exactly one of corpus_embeddings and corpus_index")
    queries = _rows(query_embeddings, "query_embeddings")
    float_queries = is_float(queries.dtype)
    quantizer = None
    if precision in ("int8", "uint8") and corpus_index is None:
        quantizer = Int8Quantizer.from_ranges(
            _ranges(queries if float_queries else None, ranges, calibration_embeddings))
    corpus = corpus_index if corpus_index is not None else _prepared_corpus(
        _rows(corpus_embeddings, "corpus_embeddings"), precision, quantizer)
    if rescore and float_queries and precision == "float32":
        logger.warning("rescore is set but the corpus is not quantized: nothing to rescore")
    if rescore and not float_queries:
        logger.warning("rescore is set but the queries are quantized: they cannot rescore")

    start = time.perf_counter()
    if precision in ("binary", "ubinary"):
        scores, indices = _search_bits(queries, corpus, k, multiplier, rescore and float_queries)
    elif precision == "float32" or float_queries:
        scores, indices = _topk(queries, corpus, k, "dot")
    else:
        # Quantized queries meet the codes as they are (the first stage of
        # sentence-transformers' search, without its second).
        codes = corpus.codes if isinstance(corpus, Int8Codes) else corpus
        query_codes = queries if queries.dtype == np.int8 else \
            _flip_sign_bit(queries, np.int8)
        scores, indices = _topk(query_codes, codes, k, "dot")
    seconds = time.perf_counter() - start
    outputs: tuple = (_hits(scores, indices), seconds)
    return (*outputs, corpus) if output_index else outputs


def _search_bits(queries: np.ndarray, bits: np.ndarray, k: int, multiplier: int,
                 rescore: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hamming top-k of the queries' bits; with rescoring, the float queries'
    dot with the candidates' bits as 0 / 1: (q . (2b - 1) + sum(q)) / 2."""
    query_bits = binary_quantize(queries) if is_float(queries.dtype) else \
        (queries if queries.dtype == np.uint8 else _flip_sign_bit(queries, np.uint8))
    first = _topk(query_bits, bits, k * multiplier if rescore else k, "hamming")
    if not rescore:
        return first
    signed, indices = _rescore(queries, first.indices, bits, k, "dot")
    totals = queries.astype(np.float64).sum(axis=1, keepdims=True)
    return ((signed + totals) / 2).astype(np.float32), indices
