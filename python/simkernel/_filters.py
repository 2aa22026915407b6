"""Which rows a filtered Index search may return, and how it is searched
(docs/index.md, Search): a small shared allow-list is gathered and searched
on its own, small per-query lists are scored row by row, anything else scans
every row and lets the core consult a bitmap."""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from ._backend import Backend
from ._ids import IdMap, id_array
from ._inputs import prepare
from ._storage import Pieces

Allow = Union[ArrayLike, Sequence[ArrayLike], None]

# A filter that leaves at most this share of the rows is searched by
# gathering those rows (a shared list) or scoring them one by one (per-query
# lists): cheaper than scanning every row through the bitmap.
SPARSE_SHARE = 1 / 16


def allowed_rows(ids: IdMap, allow: Allow, nq: int) -> list[np.ndarray]:
    """Live rows a search may return, sorted: one array for every query (a
    list of one) or one per query."""
    if allow is None:
        return [ids.live_rows()]
    per_query = (isinstance(allow, np.ndarray) and allow.ndim == 2) or (
        isinstance(allow, (list, tuple)) and len(allow) > 0
        and all(np.ndim(a) == 1 for a in allow))
    lists: list[Any] = list(allow) if per_query else [allow]  # type: ignore[arg-type]
    if per_query and len(lists) != nq:
        raise ValueError(f"allow must be one list of ids, or one per query: "
                         f"{len(lists)} lists for {nq} queries")
    found = []
    for wanted in lists:
        rows, _, alive = ids.find(id_array(wanted, "allow"))
        found.append(np.unique(rows[alive]))
    return found


def filtered_topk(backend: Backend, queries: np.ndarray, rows: Pieces, metric: str,
                  lists: list[np.ndarray], k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of the allowed rows (row numbers into ``rows``; -1 pads a
    query with fewer)."""
    n = len(rows)
    if len(lists) == 1 and len(lists[0]) <= SPARSE_SHARE * n:
        shared = lists[0]
        scores, found = backend.topk(prepare(queries, rows[shared], metric), k, threads)
        return scores, np.where(found >= 0, shared[np.maximum(found, 0)], -1)
    args = prepare(queries, rows, metric)
    if sum(map(len, lists)) <= SPARSE_SHARE * n * len(lists):
        return backend.rescore(args, padded(lists), k, threads)
    return backend.topk(args, k, threads, bitmap(lists, n))


def padded(lists: list[np.ndarray]) -> np.ndarray:
    """Per-query row lists as one (q, longest) matrix padded with -1."""
    out = np.full((len(lists), max(map(len, lists), default=0)), -1, np.int64)
    for i, rows in enumerate(lists):
        out[i, :len(rows)] = rows
    return out


def bitmap(lists: list[np.ndarray], n: int) -> np.ndarray:
    """Row lists as the core's filter: one little-endian bitmap row per list."""
    out = np.empty((len(lists), (n + 7) // 8), np.uint8)
    for i, rows in enumerate(lists):
        mask = np.zeros(n, bool)
        mask[rows] = True
        out[i] = np.packbits(mask, bitorder="little")
    return out
