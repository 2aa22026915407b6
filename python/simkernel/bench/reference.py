"""Checks every library's answers, so that a fast wrong answer never wins:
tie-aware recall@k against exact scores on a sample of the queries."""

from __future__ import annotations

import numpy as np

from .. import _numpy_backend
from .._inputs import prepare
from .scenarios import Data, Scenario

SAMPLE = 20


def exact_scores(scenario: Scenario, data: Data, rows: np.ndarray) -> np.ndarray:
    """float64 scores of the sampled queries against every corpus row, on the
    stored representation (decoded int8 codes, bits by Hamming distance)."""
    queries = data.search_queries[rows]
    if scenario.kind == "binary":  # the numpy backend, not the code under test
        args = prepare(queries, data.corpus, "hamming")
        counts = np.empty((len(queries), len(data.corpus)), dtype=np.int32)
        return _numpy_backend.cdist(args, 1, counts).astype(np.float64)
    q = queries.astype(np.float64)
    out = np.empty((len(q), len(data.corpus)))
    for start in range(0, len(data.corpus), 65536):
        block = data.corpus[start:start + 65536].astype(np.float64)
        dots = q @ block.T
        if scenario.metric == "l2":
            dots = (q ** 2).sum(1)[:, None] + (block ** 2).sum(1)[None, :] - 2 * dots
        elif scenario.metric == "cosine":
            dots /= np.linalg.norm(q, axis=1)[:, None] * np.maximum(
                np.linalg.norm(block, axis=1)[None, :], 1e-30)
        out[:, start:start + len(block)] = dots
    return out


def recall(scenario: Scenario, data: Data, indices: np.ndarray) -> float:
    """Share of returned rows that belong in the exact top-k (a row tied with
    the k-th best counts), over a sample of the queries."""
    indices = np.asarray(indices).reshape(scenario.queries, -1)
    rows = np.linspace(0, scenario.queries - 1, min(SAMPLE, scenario.queries)).astype(int)
    exact = exact_scores(scenario, data, rows)
    sign = 1.0 if scenario.metric in ("dot", "cosine") else -1.0
    tolerance = 0.0 if scenario.kind == "binary" else 1e-4 * (1 + np.abs(exact).max())
    hits = 0
    for i, row in enumerate(rows):
        keyed = sign * exact[i]
        kth = np.partition(keyed, -scenario.k)[-scenario.k]
        found = indices[row]
        found = found[(found >= 0) & (found < len(keyed))]
        hits += int((keyed[found] >= kth - tolerance).sum())
    return hits / (len(rows) * scenario.k)
