"""Which rows a filtered search may return, and how it is searched
(docs/index.md, Filters): every filter given (an allow-list, a deny-list, a
mask over ids, an id range) becomes one bitmap over the rows, shared or one
per query; a shared selection of few rows is gathered and searched on its
own, per-query selections of few rows are scored row by row, anything else
scans every row and lets the core consult the bitmap."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from ._backend import Backend
from ._ids import IdMap, id_array
from ._inputs import prepare
from ._storage import Pieces

Allow = Union[ArrayLike, Sequence[ArrayLike], None]

# A selection that leaves at most this share of the rows is searched by
# gathering those rows (a shared one) or scoring them one by one (per-query
# ones): cheaper than scanning every row through the bitmap.
SPARSE_SHARE = 1 / 16


class Filters(NamedTuple):
    """What a caller asked to keep out of an Index search's results."""

    allow: Allow = None       # ids that may be returned
    exclude: Allow = None     # ids that may not
    mask: Optional[ArrayLike] = None      # booleans indexed by id
    id_range: Optional[ArrayLike] = None  # [low, high) ids

    def given(self) -> bool:
        return any(value is not None for value in self)


class Selection(NamedTuple):
    """The rows each query may return: little-endian bitmaps, one row for
    every query (shape (1, ceil(n / 8))) or one per query, and their counts."""

    bits: np.ndarray
    counts: np.ndarray
    rows_total: int

    def rows(self, i: int) -> np.ndarray:
        """The rows of bitmap ``i``, in increasing order."""
        return np.flatnonzero(np.unpackbits(self.bits[i], count=self.rows_total,
                                            bitorder="little"))


def _id_lists(value: Allow, name: str, nq: int) -> Optional[list[np.ndarray]]:
    """One 1-D list of ids for every query (a list of one), or one per query."""
    if value is None:
        return None
    per_query = (isinstance(value, np.ndarray) and value.ndim == 2) or (
        isinstance(value, (list, tuple)) and len(value) > 0
        and all(np.ndim(a) == 1 for a in value))
    lists: list[Any] = list(value) if per_query else [value]  # type: ignore[arg-type]
    if per_query and len(lists) != nq:
        raise ValueError(f"{name} must be one list of ids, or one per query: "
                         f"{len(lists)} lists for {nq} queries")
    return [id_array(ids, name) for ids in lists]


def _masks(mask: Optional[ArrayLike], nq: int) -> Optional[np.ndarray]:
    """Booleans indexed by id: (1, m) for every query, or (nq, m)."""
    if mask is None:
        return None
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(f"mask must be booleans indexed by id, got dtype {array.dtype}")
    if array.ndim == 1:
        return array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] != nq:
        raise ValueError(f"mask must be 1-D (every query) or have one row per query: "
                         f"mask shape {array.shape}, {nq} queries")
    return array


def _ranges(id_range: Optional[ArrayLike], nq: int) -> Optional[np.ndarray]:
    """[low, high) id ranges: (1, 2) for every query, or (nq, 2)."""
    if id_range is None:
        return None
    array = np.asarray(id_range)
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"id_range must be integer ids (low, high), got dtype {array.dtype}")
    if array.shape == (2,):
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] not in (1, nq):
        raise ValueError(f"id_range must be (low, high), or one pair per query: "
                         f"id_range shape {np.shape(id_range)}, {nq} queries")
    return array.astype(np.int64)


def _apply(keep: np.ndarray, ids: IdMap, kind: str, part: Any) -> None:
    """Clears in ``keep`` (over the rows) what one filter's part leaves out."""
    if kind == "allow":
        rows, _, alive = ids.find(part)
        only = np.zeros(len(keep), bool)
        only[rows[alive]] = True
        keep &= only
    elif kind == "exclude":
        rows, _, alive = ids.find(part)
        keep[rows[alive]] = False
    elif kind == "mask":
        row_ids = ids.ids
        covered = row_ids < len(part)  # ids past the mask's end are not in it
        inside = np.zeros(len(keep), bool)
        inside[covered] = part[row_ids[covered]]
        keep &= inside
    else:
        low, high = part
        keep &= (ids.ids >= low) & (ids.ids < high)


def select(ids: IdMap, filters: Filters, nq: int) -> Selection:
    """The live rows that pass every filter given, per query or shared."""
    parts = {"allow": _id_lists(filters.allow, "allow", nq),
             "exclude": _id_lists(filters.exclude, "exclude", nq),
             "mask": _masks(filters.mask, nq), "id_range": _ranges(filters.id_range, nq)}
    given = {kind: part for kind, part in parts.items() if part is not None}
    n = ids.count
    # The shared filters once, then each query's own on a copy of that.
    shared = np.ones(n, bool) if ids.alive is None else ids.alive.copy()
    for kind, part in given.items():
        if len(part) == 1:
            _apply(shared, ids, kind, part[0])
    own = {kind: part for kind, part in given.items() if len(part) > 1}
    count = nq if own else 1
    bits = np.empty((count, (n + 7) // 8), np.uint8)
    counts = np.empty(count, np.int64)
    for i in range(count):
        keep = shared.copy() if own else shared
        for kind, part in own.items():
            _apply(keep, ids, kind, part[i])
        counts[i] = np.count_nonzero(keep)
        bits[i] = np.packbits(keep, bitorder="little")
    return Selection(bits, counts, n)


def filtered_topk(backend: Backend, queries: np.ndarray, rows: Pieces, metric: str,
                  selection: Selection, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of the selected rows (row numbers into ``rows``; -1 pads a
    query with fewer)."""
    n, lists = len(rows), len(selection.counts)
    if lists == 1 and selection.counts[0] <= SPARSE_SHARE * n:
        shared = selection.rows(0)
        scores, found = backend.topk(prepare(queries, rows[shared], metric), k, threads)
        return scores, np.where(found >= 0, shared[np.maximum(found, 0)], -1)
    args = prepare(queries, rows, metric)
    if lists > 1 and selection.counts.sum() <= SPARSE_SHARE * n * lists:
        return backend.rescore(args, padded([selection.rows(i) for i in range(lists)]), k,
                               threads)
    return backend.topk(args, k, threads, selection.bits)


def padded(lists: list[np.ndarray]) -> np.ndarray:
    """Per-query row lists as one (q, longest) matrix padded with -1."""
    out = np.full((len(lists), max(map(len, lists), default=0)), -1, np.int64)
    for i, rows in enumerate(lists):
        out[i, :len(rows)] = rows
    return out


def row_mask_bits(mask: ArrayLike, nq: int, n: int) -> np.ndarray:
    """`topk`'s ``mask`` (booleans over the corpus rows, (n,) or (nq, n)) as
    the core's bitmap."""
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(f"mask must be booleans over the corpus rows, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != n or array.shape[0] not in (1, nq):
        raise ValueError(f"mask must have one boolean per corpus row, for every query or one "
                         f"row per query: mask shape {np.shape(mask)}, {nq} queries, {n} rows")
    return np.packbits(array, axis=1, bitorder="little")
