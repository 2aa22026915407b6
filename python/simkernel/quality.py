"""What quantization costs in search quality, measured on your own vectors.

>>> report = sk.quantization_report(sample, queries, k=10, metric="cosine")
>>> for row in report: print(row.name, row.recall)

Each configuration is an `Index` as a user would build it; its top-k is
compared with exact float32 search (`recall_at_k`), and, given the relevant
row of each query (qrels), with those too (`hit_rate_at_k`, `ndcg_at_k`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
from numpy.typing import ArrayLike

from ._dlpack import as_array
from .index import Index
from .search import topk

# name -> Index settings: every storage, symmetric and asymmetric first
# stages, and two-stage search.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "float32": {"dtype": "float32"},
    "float16": {"dtype": "float16"},
    "bfloat16": {"dtype": "bfloat16"},
    "int8": {"dtype": "int8"},
    "int8, int8 queries": {"dtype": "int8", "asymmetric": False},
    "binary": {"dtype": "binary"},
    "binary, hamming": {"dtype": "binary", "asymmetric": False},
    "binary + int8 rescore": {"dtype": "binary", "rescore": "int8"},
    "binary + float32 rescore": {"dtype": "binary", "rescore": "float32"},
    "binary, hamming + float32 rescore": {"dtype": "binary", "rescore": "float32",
                                          "asymmetric": False},
}


def recall_at_k(found: ArrayLike, exact: ArrayLike) -> float:
    """The mean share of each query's exact top-k that ``found`` also holds.

    Parameters
    ----------
    found, exact : array_like
        ``(q, k)`` ids (or row numbers) from the search under test and from
        exact search; -1 entries in ``found`` never match.

    Returns
    -------
    float
        In [0, 1]; 1 when every exact neighbour was found (order ignored).
    """
    found_rows, exact_rows = np.atleast_2d(found), np.atleast_2d(exact)
    if found_rows.shape[0] != exact_rows.shape[0]:
        raise ValueError(f"found and exact need one row per query: found shape "
                         f"{found_rows.shape}, exact shape {exact_rows.shape}")
    if exact_rows.size == 0:
        return 1.0
    shares = [len(set(f[f >= 0].tolist()) & set(e.tolist())) / len(e)
              for f, e in zip(found_rows, exact_rows)]
    return float(np.mean(shares))


def _rank_of(found: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's relevant row in ``found``, 0 if absent."""
    hits = found == np.asarray(relevant)[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)


def hit_rate_at_k(found: ArrayLike, relevant: ArrayLike) -> float:
    """The share of queries whose one relevant row is in their ``found`` top-k
    (recall@k when each query has one relevant document)."""
    return float((_rank_of(np.atleast_2d(found), np.asarray(relevant)) > 0).mean())


def ndcg_at_k(found: ArrayLike, relevant: ArrayLike) -> float:
    """nDCG@k with one relevant row per query: 1 / log2(1 + its rank), or 0."""
    rank = _rank_of(np.atleast_2d(found), np.asarray(relevant))
    gains = np.where(rank > 0, 1.0 / np.log2(1.0 + np.maximum(rank, 1)), 0.0)
    return float(gains.mean())


@dataclass
class Quality:
    """One configuration's quality: ``recall`` against exact float32 search,
    and against the relevant rows when they were given."""

    name: str
    recall: float
    hit_rate: Optional[float]
    ndcg: Optional[float]
    nbytes: int  # the Index's storage
    # Two-stage configurations: overlap@k with an exhaustive search of the
    # rescore storage after rescoring the first stage's best D (entry D - 1),
    # up to D = 16 k (`Index.calibrate`); None for one stage.
    recall_by_depth: Optional[np.ndarray] = None


def build_indexes(corpus: ArrayLike, metric: str = "cosine", rescore_factor: int = 4,
                  configurations: Optional[Mapping[str, Mapping[str, Any]]] = None
                  ) -> dict[str, Index]:
    """An Index of ``corpus`` per configuration that the metric allows
    (binary storage searches cosine and dot only)."""
    rows = as_array(corpus, "corpus")
    indexes = {}
    for name, settings in (configurations or CONFIGURATIONS).items():
        if settings.get("dtype") == "binary" and metric not in ("cosine", "dot"):
            continue
        index = Index(rows.shape[1], metric, rescore_factor=rescore_factor, **settings)
        for start in range(0, len(rows), 65536):
            index.add(rows[start:start + 65536])
        indexes[name] = index
    return indexes


def quantization_report(corpus: ArrayLike, queries: ArrayLike, k: int = 10,
                        metric: str = "cosine", rescore_factor: int = 4,
                        relevant: Optional[ArrayLike] = None,
                        configurations: Optional[Mapping[str, Mapping[str, Any]]] = None
                        ) -> list[Quality]:
    """How well each storage keeps the exact top-k, on a sample of your data.

    Parameters
    ----------
    corpus : array_like
        ``(n, d)`` float vectors: a representative sample of what you store.
    queries : array_like
        ``(q, d)`` float queries.
    k : int
    metric : str
    rescore_factor : int
        Candidates per result for the two-stage configurations.
    relevant : array_like, optional
        ``(q,)`` the row of ``corpus`` relevant to each query (qrels); adds
        hit rate (recall of the relevant row) and nDCG at k.
    configurations : mapping, optional
        name -> `Index` settings; default `CONFIGURATIONS`.

    Returns
    -------
    list of Quality
        One per configuration, in order; two-stage ones also give the
        recall at every rescoring depth up to ``16 k``.
    """
    rows = as_array(corpus, "corpus")
    exact = topk(queries, rows.astype(np.float32, copy=False), k=k, metric=metric).indices
    report = []
    for name, index in build_indexes(rows, metric, rescore_factor, configurations).items():
        found = index.search(queries, k=k).indices
        by_depth = None
        if index.rescore is not None:
            by_depth = index.calibrate(k=k, queries=queries, max_factor=16).recall_by_depth
        report.append(Quality(
            name, recall_at_k(found, exact),
            None if relevant is None else hit_rate_at_k(found, relevant),
            None if relevant is None else ndcg_at_k(found, relevant), index.nbytes, by_depth))
    return report
