"""Fusion of several rankings of the same ids (hybrid search: dense and
sparse, or several embedding models): reciprocal rank fusion and weighted
score fusion (docs/semantics.md, Fusion)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ._checks import positive_int
from ._inputs import HIGHER_IS_BETTER, check_metric
from ._types import TopK

METHODS = ("rrf", "weighted")
NORMALIZATIONS = ("minmax", "zscore")


def fuse(results: Sequence[Any], method: str = "rrf", k: int = 10, *, rrf_k: float = 60.0,
         weights: Optional[Sequence[float]] = None, normalization: str = "minmax",
         metrics: Optional[Sequence[str]] = None) -> TopK:
    """One ranking per query from several rankings of the same ids.

    Parameters
    ----------
    results : sequence of TopK or (scores, indices)
        Each ``(q, k_i)`` (or 1-D for one query), best first, over the same
        ids (-1 entries, a filtered search's padding, are left out). Lists
        may be of different lengths.
    method : {"rrf", "weighted"}
        ``"rrf"``: an id scores ``sum_i w_i / (rrf_k + rank_i)`` over the
        lists that hold it, ranks counted from 1 (Cormack et al., 2009).
        ``"weighted"``: an id scores ``sum_i w_i * norm_i(score)``, each
        list's scores normalized per query; a list that does not hold the
        id adds nothing.
    k : int
        Results per query.
    rrf_k : float
        The rank constant of ``"rrf"`` (60, as commonly used).
    weights : sequence of float, optional
        One non-negative weight per list; default 1 each.
    normalization : {"minmax", "zscore"}
        ``"weighted"`` only. ``"minmax"``: ``(s - min) / (max - min)`` over
        the query's list, 1 where every score is equal; ``"zscore"``: ``(s -
        mean) / std``, 0 where the scores do not vary.
    metrics : sequence of str, optional
        ``"weighted"`` only: the metric of each list, so that distances
        (sqeuclidean, l2, hamming) count with the sign that makes nearer
        better. Default: similarities.

    Returns
    -------
    TopK
        float64 fused scores and the ids, ``(q, min(k, distinct ids))``
        padded with -1 and NaN where a query has fewer ids; best first,
        ties to the lower id.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    k = positive_int(k, "k")
    lists = [(np.asarray(scores), np.asarray(indices)) for scores, indices in results]
    if not lists:
        raise ValueError("results is empty: pass one or more rankings")
    one_query = lists[0][1].ndim == 1
    lists = [(np.atleast_2d(s).astype(np.float64), np.atleast_2d(i)) for s, i in lists]
    if len({i.shape[0] for _, i in lists}) != 1 or any(s.shape != i.shape or i.ndim != 2
                                                       for s, i in lists):
        raise ValueError("every result must hold scores and indices of one shape, one row per query")
    w = _weights(weights, len(lists))
    signs = [1.0] * len(lists) if metrics is None else _signs(metrics, len(lists))
    if method == "weighted" and normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; "
                         f"got {normalization!r}")
    if method == "rrf" and not (np.isfinite(rrf_k) and rrf_k >= 0):
        raise ValueError(f"rrf_k must be a finite number >= 0, got {rrf_k!r}")

    queries, ids, values = [], [], []
    for (scores, indices), weight, sign in zip(lists, w, signs):
        held = indices >= 0
        if method == "rrf":
            # Ranks among the ids the list holds, best first as given.
            ranks = np.cumsum(held, axis=1)
            contribution = weight / (rrf_k + ranks)
        else:
            contribution = weight * _normalized(sign * scores, held, normalization)
        rows, cols = np.nonzero(held)
        queries.append(rows)
        ids.append(indices[rows, cols].astype(np.int64))
        values.append(contribution[rows, cols])
    return _ranked(queries, ids, values, len(lists[0][1]), k, one_query)


def _weights(weights: Optional[Sequence[float]], count: int) -> np.ndarray:
    if weights is None:
        return np.ones(count)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {count} finite non-negative numbers, one per list")
    return w


def _signs(metrics: Sequence[str], count: int) -> list[float]:
    if len(metrics) != count:
        raise ValueError(f"metrics must name one metric per list ({count})")
    return [1.0 if HIGHER_IS_BETTER[check_metric(m)] else -1.0 for m in metrics]


def _normalized(scores: np.ndarray, held: np.ndarray, normalization: str) -> np.ndarray:
    """Per query (row), over the scores its list holds."""
    # Rows that hold nothing are all zeros here (their values are not used),
    # so that no reduction meets an all-NaN row.
    empty = ~held.any(axis=1, keepdims=True)
    masked = np.where(held, scores, np.nan)
    masked = np.where(empty, 0.0, masked)
    if normalization == "minmax":
        low = np.nanmin(masked, axis=1, keepdims=True)
        span = np.nanmax(masked, axis=1, keepdims=True) - low
        return np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 1.0)
    mean = np.nanmean(masked, axis=1, keepdims=True)
    std = np.nanstd(masked, axis=1, keepdims=True)
    return np.where(std > 0, (scores - mean) / np.where(std > 0, std, 1.0), 0.0)


def _ranked(queries: list[np.ndarray], ids: list[np.ndarray], values: list[np.ndarray],
            nq: int, k: int, one_query: bool) -> TopK:
    """Sums each (query, id)'s contributions, one list's per element of the
    arguments, and keeps the best k per query, ties to the lower id."""
    all_queries, all_ids = np.concatenate(queries), np.concatenate(ids)
    order = np.lexsort((all_ids, all_queries))
    new_group = np.r_[True, (np.diff(all_queries[order]) != 0) | (np.diff(all_ids[order]) != 0)] \
        if len(order) else np.empty(0, bool)
    group = np.empty(len(order), np.int64)
    group[order] = np.cumsum(new_group) - 1
    q, i = all_queries[order[new_group]], all_ids[order[new_group]]
    # Added list by list, in the callers' order (the definition's order of
    # addition), so that ids tied in the definition tie here too and go to
    # the lower id; a list holds an id once per query.
    fused = np.zeros(len(q))
    start = 0
    for part in values:
        np.add.at(fused, group[start:start + len(part)], part)
        start += len(part)
    best = np.lexsort((i, -fused, q))
    q, i, fused = q[best], i[best], fused[best]
    first = np.searchsorted(q, np.arange(nq))
    rank = np.arange(len(q)) - first[q]
    counts = np.bincount(q, minlength=nq)
    width = min(k, int(counts.max(initial=0)))
    scores = np.full((nq, width), np.nan)
    indices = np.full((nq, width), -1, dtype=np.int64)
    kept = rank < width
    scores[q[kept], rank[kept]] = fused[kept]
    indices[q[kept], rank[kept]] = i[kept]
    return TopK(scores[0] if one_query else scores, indices[0] if one_query else indices)
