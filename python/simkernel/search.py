"""Exact search: top-k, range search, full score matrices, and rescoring of
candidates."""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _backend
from ._inputs import (check_candidates, check_k, check_max_results, check_out, check_threshold,
                      prepare)
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
