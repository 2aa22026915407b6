"""Exact search: top-k, range search, full score matrices, and rescoring of
candidates."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import _backend
from ._inputs import (check_candidates, check_k, check_max_results, check_metric, check_out,
                      check_threshold, prepare)
from ._numpy_backend import keys_of, sorted_best, write_results
from ._filters import row_mask_bits
from ._threads import resolve_threads
from ._types import RangeResult, TopK


def topk(queries: ArrayLike, corpus: ArrayLike, k: int = 10, metric: str = "cosine",
         threads: Optional[int] = None, *, mask: Optional[ArrayLike] = None) -> TopK:
    """The ``k`` nearest corpus rows to each query.

    Parameters
    ----------
    queries : array_like
        ``(q, d)`` vectors, or one ``(d,)`` vector (then results are 1-D).
        float32/float16/bfloat16/float64, int8 codes, or bit-packed uint8
        (hamming). bfloat16 is ``ml_dtypes.bfloat16``.
    corpus : array_like
        ``(n, d)`` float32, float16, bfloat16 or float64 vectors, int8 codes, or
        ``(n, ceil(d/8))`` bit-packed uint8. Strided views and memmaps are read
        in place.
    k : int
        How many results per query; fewer when the corpus has fewer rows.
    metric : {"cosine", "dot", "sqeuclidean", "l2", "hamming"}
    threads : int, optional
        Worker threads; default all usable cores (``SIMKERNEL_NUM_THREADS``).
    mask : array_like of bool, optional
        The rows that may be returned: ``(n,)`` for every query, or ``(q,
        n)``. Every row is still scored; a query with fewer than ``min(k,
        n)`` allowed rows has its results padded with index -1 and score NaN
        (0 for int32 scores).

    Returns
    -------
    TopK
        ``scores`` (float32, or int32 for exact integer metrics) and
        ``indices`` (int64 corpus rows), ``(q, min(k, n))``, best first; ties
        go to the lower row.
    """
    args = prepare(queries, corpus, metric)
    k = check_k(k)
    allowed = None if mask is None else row_mask_bits(mask, len(args.queries), len(args.corpus))
    scores, indices = _backend.active.topk(args, k, resolve_threads(threads), allowed)
    return TopK(args.shaped(scores), args.shaped(indices))


def range_search(queries: ArrayLike, corpus: ArrayLike, threshold: float, metric: str = "cosine",
                 *, max_results: Optional[int] = None, mask: Optional[ArrayLike] = None,
                 threads: Optional[int] = None) -> RangeResult:
    """Every corpus row within ``threshold`` of each query.

    Parameters
    ----------
    queries, corpus : array_like
        As for `topk`.
    threshold : float
        Rows whose score is at least this (cosine, dot) or at most this
        (sqeuclidean, l2, hamming) are returned: inclusive, where faiss's
        ``range_search`` is strict. The score is compared exactly, widened to
        float64.
    metric : str
        As for `topk`.
    max_results : int, optional
        The most results, over all queries, the call may return: past it a
        ValueError is raised, before more results are held. Default: no cap.
    mask : array_like of bool, optional
        The rows that may be returned, as for `topk`.
    threads : int, optional

    Returns
    -------
    RangeResult
        ``lims`` (``q + 1`` offsets), ``scores`` and ``indices`` (flat),
        each query's results best first, ties to the lower row.
    """
    args = prepare(queries, corpus, metric)
    threshold = check_threshold(threshold)
    cap = check_max_results(max_results)
    allowed = None if mask is None else row_mask_bits(mask, len(args.queries), len(args.corpus))
    lims, scores, indices = _backend.active.range_search(args, threshold, cap,
                                                         resolve_threads(threads), allowed)
    return RangeResult(lims, scores, indices)


def cdist(a: ArrayLike, b: ArrayLike, metric: str = "cosine", threads: Optional[int] = None,
          out: Optional[np.ndarray] = None) -> np.ndarray:
    """The full ``(m, n)`` matrix of metric values between rows of ``a`` and ``b``.

    Parameters
    ----------
    a, b : array_like
        ``(m, d)`` and ``(n, d)``, with the element types of `topk` (``a`` as
        queries, ``b`` as corpus). A 1-D ``a`` gives a 1-D ``(n,)`` result.
    metric : str
        As for `topk`; the values are the metric's own (cosine similarity,
        not ``1 - cos``).
    threads : int, optional
    out : numpy.ndarray, optional
        C-contiguous array of the result's shape and dtype to write into.

    Returns
    -------
    numpy.ndarray
        float32, or int32 for exact integer metrics.
    """
    args = prepare(a, b, metric, query_name="a", corpus_name="b")
    shape = (args.queries.shape[0], args.corpus.shape[0])
    target = check_out(out, shape[1:] if args.one_query else shape, args.score_dtype)
    # An out that overlaps an input would be overwritten while still being
    # read: the scores go to a temporary first, then into out.
    overlapping = out is not None and any(np.may_share_memory(out, array) for array in args.arrays())
    scratch = np.empty_like(target) if overlapping else target
    # A reshape of a C-contiguous array is a view: the backend writes into it.
    _backend.active.cdist(args, resolve_threads(threads), scratch.reshape(shape))
    if overlapping:
        target[...] = scratch
    return target


def rescore(queries: ArrayLike, candidates: ArrayLike, vectors: ArrayLike, k: int = 10,
            metric: str = "cosine", threads: Optional[int] = None) -> TopK:
    """Re-ranks candidate rows of ``vectors`` for each query (two-stage search).

    Parameters
    ----------
    queries : array_like
        ``(q, d)`` or one ``(d,)`` vector.
    candidates : array_like
        ``(q, m)`` integer row numbers into ``vectors``, e.g. a first stage's
        ``indices``; distinct within each row.
    vectors : array_like
        ``(n, d)`` float32, float16, bfloat16 or int8 vectors (an array or a memmap);
        only the candidate rows are read.
    k : int
        Results per query; ``min(k, m)`` are returned.
    metric : str
    threads : int, optional

    Returns
    -------
    TopK
        Scores and row numbers into ``vectors``, best first, ties to the
        lower row.
    """
    args = prepare(queries, vectors, metric, corpus_name="vectors")
    k = check_k(k)
    rows = check_candidates(candidates, args)
    scores, indices = _backend.active.rescore(args, rows, k, resolve_threads(threads))
    return TopK(args.shaped(scores), args.shaped(indices))


def merge_topk(results: Sequence[Any], offsets: Sequence[int], k: int = 10,
               metric: str = "cosine") -> TopK:
    """One top-k from the top-k lists of separate searches over parts of a
    corpus (shards, files, workers), as one search over all of it gives.

    Parameters
    ----------
    results : sequence of TopK or (scores, indices)
        One per part, each ``(q, k_i)`` (or 1-D for one query), indices into
        its part; -1 entries (a filtered search's padding) are left out.
    offsets : sequence of int
        The global row of each part's row 0.
    k : int
    metric : str
        The metric the results were searched with: it says which scores are
        better.

    Returns
    -------
    TopK
        ``(q, min(k, sum k_i))``, best first, ties to the lower global row;
        a query with fewer results is padded with -1 and NaN (0 for int32
        scores), as `topk` pads.
    """
    metric = check_metric(metric)
    k = check_k(k)
    if len(results) == 0 or len(results) != len(offsets):
        raise ValueError(f"results and offsets must be one per part: got {len(results)} results "
                         f"and {len(offsets)} offsets")
    parts = [(np.asarray(scores), np.asarray(indices)) for scores, indices in results]
    one_query = parts[0][0].ndim == 1
    parts = [(np.atleast_2d(scores), np.atleast_2d(indices)) for scores, indices in parts]
    rows = {len(scores) for scores, _ in parts}
    if len(rows) != 1 or any(s.shape != i.shape or s.ndim != 2 for s, i in parts):
        raise ValueError("every result must hold scores and indices of one shape, one row per query")
    keys, index = [], []
    for (scores, indices), offset in zip(parts, offsets):
        if isinstance(offset, (bool, np.bool_)) or int(offset) != offset or offset < 0:
            raise ValueError(f"offsets must be non-negative integers, got {offset!r}")
        padding = indices < 0
        keys.append(np.where(padding, -np.inf, keys_of(metric, scores)))
        index.append(np.where(padding, -1, indices.astype(np.int64) + int(offset)))
    kk = min(k, sum(scores.shape[1] for scores, _ in parts))
    best_keys, best_index = sorted_best(np.hstack(keys), np.hstack(index), kk)
    merged = np.empty(best_keys.shape, np.result_type(*(scores.dtype for scores, _ in parts)))
    merged_index = np.empty(best_keys.shape, np.int64)
    write_results(metric, best_keys, best_index, merged, merged_index)
    return TopK(merged[0] if one_query else merged, merged_index[0] if one_query else merged_index)
