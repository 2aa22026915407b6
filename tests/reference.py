"""A float64 oracle and the checks that hold results to it (docs/semantics.md, Results)."""

from __future__ import annotations

import numpy as np

HIGHER_IS_BETTER = {"cosine": True, "dot": True, "sqeuclidean": False, "l2": False,
                    "hamming": False}


def widened(x: np.ndarray, dim: int, corpus_of_bits: bool) -> np.ndarray:
    """Rows as float64 as the metric sees them; bit rows become +1 / -1."""
    if corpus_of_bits:
        return np.unpackbits(x, axis=1, count=dim).astype(np.float64) * 2 - 1
    return x.astype(np.float64)


def exact_scores(queries: np.ndarray, corpus: np.ndarray, metric: str) -> np.ndarray:
    """The metric in float64 (exact integers for integer inputs)."""
    q, c = queries, corpus
    if metric == "hamming":
        qb = np.unpackbits(q, axis=1).astype(np.int64)
        cb = np.unpackbits(c, axis=1).astype(np.int64)
        return (qb[:, None, :] != cb[None, :, :]).sum(-1).astype(np.float64)
    bits = q.dtype != np.uint8 and c.dtype == np.uint8
    q64 = q.astype(np.float64)
    c64 = widened(c, q.shape[1], bits)
    dots = q64 @ c64.T
    if metric == "dot":
        return dots
    if metric == "cosine":
        qn = np.linalg.norm(q64, axis=1)[:, None]
        cn = np.linalg.norm(c64, axis=1)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((qn == 0) | (cn == 0), 0.0, dots / (qn * cn))
    squared = ((q64[:, None, :] - c64[None, :, :]) ** 2).sum(-1)
    return squared if metric == "sqeuclidean" else np.sqrt(squared)


def tolerance(queries: np.ndarray, corpus: np.ndarray, metric: str) -> np.ndarray:
    """docs/semantics.md's bound on |score - exact|, per pair of rows."""
    if metric == "hamming":
        return np.full((len(queries), len(corpus)), 1e-9)
    bits = corpus.dtype == np.uint8
    q64 = queries.astype(np.float64)
    c64 = widened(corpus, queries.shape[1], bits)
    d = max(queries.shape[1], 1)
    qn2 = (q64 ** 2).sum(1)[:, None]
    cn2 = (c64 ** 2).sum(1)[None, :]
    if queries.dtype == np.int8:
        # Integer arithmetic is exact; cosine and l2 round once to float32.
        scale = np.sqrt(qn2 + cn2) if metric == "l2" else 1.0
        return np.broadcast_to(1e-6 * (1 + scale), (len(queries), len(corpus)))
    if metric == "dot":
        return 1e-5 * np.sqrt(d) * np.sqrt(qn2 * cn2) + 1e-30
    if metric == "cosine":
        return np.full(qn2.shape[:1] + cn2.shape[1:], 1e-5 * np.sqrt(d))
    squared_tol = 1e-5 * np.sqrt(d) * (qn2 + cn2) + 1e-30
    return squared_tol if metric == "sqeuclidean" else np.sqrt(squared_tol)


def assert_valid_topk(scores, indices, queries, corpus, metric, k, tol=None):
    """Holds a top-k result to the oracle, allowing for near-ties.

    Checks shapes, dtypes, order, that each returned score is its row's exact
    score within tolerance (`tolerance`'s unless given), and that no better
    row was left out.
    """
    nq, n = len(queries), len(corpus)
    kk = min(k, n)
    assert scores.shape == indices.shape == (nq, kk)
    assert indices.dtype == np.int64
    assert scores.flags.c_contiguous and indices.flags.c_contiguous
    if nq == 0 or kk == 0:
        return
    exact = exact_scores(queries, corpus, metric)
    tol = tolerance(queries, corpus, metric) if tol is None else tol
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    for i in range(nq):
        idx = indices[i]
        assert len(set(idx.tolist())) == kk, "a row is returned twice"
        assert ((idx >= 0) & (idx < n)).all()
        got = scores[i].astype(np.float64)
        np.testing.assert_array_less(np.abs(got - exact[i, idx]), tol[i, idx] + 1e-12)
        assert (np.diff(sign * got) <= 0).all(), "scores are not sorted best first"
        kth_best = np.sort(sign * exact[i])[::-1][kk - 1]
        worst_kept = (sign * exact[i, idx]).min()
        assert worst_kept >= kth_best - 2 * tol[i].max(), "a better row was left out"
