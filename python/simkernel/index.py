"""``sk.Index``: vectors under stable ids, searched by the kernels, saved safely.

The Index is a façade over small parts (docs/index.md):

- `_ids.IdMap`: which row holds which id (rows in increasing id order, so
  ties to the lower row are ties to the lower id), dead rows, the next id;
- `_storage.Store`: each representation's rows, in pieces the core searches
  as one corpus;
- `_codecs`: one codec per storage kind (encode, decode, plan a search);
- `_filters`: which rows a filtered search may return, and how it runs.

Its whole state is one `_Contents` value. A change builds the next value
aside (the parts are values too: nothing the current one shows is written)
and publishes it with one assignment, so an interrupted or failed change
leaves the index exactly as it was, and every read sees one consistent
state without taking the lock.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _backend, _index_file
from ._checks import is_float, positive_int
from ._codecs import CODECS
from ._dlpack import as_array
from ._filters import Allow, Filters, filtered_topk, select
from ._ids import IdMap, one_id
from ._index_file import IndexFileError, Section
from ._inputs import (HIGHER_IS_BETTER, check_k, check_max_results, check_metric,
                      check_threshold, prepare)
from ._storage import Pieces, Store
from ._threads import resolve_threads
from ._types import Calibration, RangeResult, TopK
from .quantize import Int8Quantizer

STORAGE = ("float32", "float16", "bfloat16", "int8", "binary")
RESCORE = (None, "float32", "float16", "bfloat16", "int8")
# remove() reclaims the space of dead rows once they are this share of all.
_DEAD_SHARE = 0.25
# An int8 scale fitted on fewer first rows than this may clip later ones.
_FIT_MIN_ROWS = 100


@contextmanager
def _ctrl_c_held_back() -> Iterator[None]:
    """Holds Ctrl-C back while a change holds the Index's lock, and raises it
    once the lock is free. A KeyboardInterrupt can land between any two
    bytecodes, and one that lands as a ``with lock:`` block exits, before the
    lock's ``__exit__`` runs, would leave the lock held for ever. Python runs
    signal handlers in the main thread only, so other threads need nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # None: a handler installed outside Python, which Python cannot restore
        return
    arrived: list[Any] = []
    signal.signal(signal.SIGINT, lambda number, frame: arrived.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if arrived and callable(previous):
        previous(signal.SIGINT, arrived[-1])
    elif arrived and previous == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)


class _Contents(NamedTuple):
    """Everything an Index holds; a search works on the one it starts with."""

    ids: IdMap
    stores: dict[str, Store]  # "primary", and "rescore" if any; never changed in place
    quantizer: Optional[Int8Quantizer]

    def taken(self, rows: np.ndarray) -> "_Contents":
        """Only these rows (a permutation or a subset), in that order."""
        return self._replace(ids=self.ids.taken(rows),
                             stores={name: s.taken(rows) for name, s in self.stores.items()})

    def compacted(self) -> "_Contents":
        return self.taken(self.ids.live_rows()) if self.ids.dead else self


def _float_rows(x: ArrayLike, name: str, dim: int,
                unit: bool = False) -> tuple[np.ndarray, bool]:
    """float32 (n, dim) finite rows (scaled to unit length if ``unit``), and
    whether ``x`` was one 1-D vector."""
    array = as_array(x, name)
    if not is_float(array.dtype):
        raise TypeError(f"{name} must be float vectors (float16, bfloat16, float32 or float64), "
                        f"got dtype {array.dtype}")
    one = array.ndim == 1
    rows = array[np.newaxis, :] if one else array
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}) for this index, got {array.shape}")
    rows = rows.astype(np.float32, copy=False)
    if unit:
        return _normalized(rows, name), one
    if not np.isfinite(rows).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return rows, one


def _normalized(x: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), checked finite on the
    way: a NaN or infinity makes its row's norm non-finite, so no pass of its
    own is needed. float32 sums are accurate to about 1e-6 here, far inside
    the cosine tolerance."""
    norms2 = np.einsum("ij,ij->i", x, x)
    if not np.isfinite(norms2).all():
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinity")
        # Finite values whose squares overflow float32: divide in float64.
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
        return (x / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
    norms = np.sqrt(norms2)
    scale = np.divide(np.float32(1), norms, out=np.zeros_like(norms), where=norms > 0)
    return x * scale[:, None]


class Index:
    """Vectors under stable int64 ids, searched exactly or over quantized codes.

    Parameters
    ----------
    dim : int
        Dimensions of every vector.
    metric : {"cosine", "dot", "sqeuclidean", "l2", "hamming"}
        Binary storage takes "cosine" or "dot" (float queries against sign
        bits, each bit +1 or -1) or "hamming" (sign bits of the queries).
    dtype : {"float32", "float16", "bfloat16", "int8", "binary"}
        How vectors are stored and searched first. Cosine indexes store
        normalized rows (`normalized`); with float32 storage their search is
        then a dot product with the unit query.
    rescore : {None, "float32", "float16", "bfloat16", "int8"}
        Also store the vectors this way, and re-rank the first stage's best
        ``k * rescore_factor`` rows with them.
    rescore_factor : float
        Candidates per result for the rescoring stage (at least 1; the
        stage takes ``ceil(k * rescore_factor)``); `calibrate` chooses it
        for a target recall.
    asymmetric : bool
        Search int8 and binary storage with the float queries as they are
        (True, more accurate) or with quantized queries (False, integer
        kernels).
    quantizer : Int8Quantizer, optional
        The int8 scale. By default it is fitted on the first vectors added
        (after normalization, for cosine).

    Notes
    -----
    Searches may run from many threads at once, and while another thread
    changes the index: each works on a snapshot taken when it starts.
    `add`, `remove` and `compact` are serialized by a lock.
    """

    def __init__(self, dim: int, metric: str = "cosine", dtype: str = "float32",
                 rescore: Optional[str] = None, rescore_factor: float = 4, *,
                 asymmetric: bool = True, quantizer: Optional[Int8Quantizer] = None) -> None:
        self.dim = positive_int(dim, "dim")
        self.metric = check_metric(metric)
        if dtype not in STORAGE:
            raise ValueError(f"dtype must be one of {', '.join(STORAGE)}; got {dtype!r}")
        if rescore not in RESCORE:
            raise ValueError(f"rescore must be None or one of {', '.join(RESCORE[1:])}; "
                             f"got {rescore!r}")
        if dtype == "binary" and metric not in ("cosine", "dot", "hamming"):
            raise ValueError(f"binary storage searches by cosine, dot or hamming; got "
                             f"metric {metric!r}")
        if metric == "hamming" and (dtype != "binary" or rescore is not None):
            raise ValueError("metric 'hamming' needs dtype='binary' and no rescore")
        if quantizer is not None and not isinstance(quantizer, Int8Quantizer):
            raise TypeError(f"quantizer must be an Int8Quantizer, got {type(quantizer).__name__}")
        if quantizer is not None and quantizer.per_dimension:
            raise ValueError("an Index stores symmetric int8 codes (one scale); search "
                             "per-dimension codes as sk.Int8Codes with sk.topk")
        self.dtype = dtype
        self.rescore = rescore
        self.rescore_factor = _rescore_factor(rescore_factor)
        self.asymmetric = bool(asymmetric)
        self._lock = threading.Lock()  # serializes changes; reads need none
        self._contents = _Contents(
            IdMap.empty(), {name: Store.empty(CODECS[kind].dtype, CODECS[kind].width(self.dim))
                            for name, kind in self._kinds().items()}, quantizer)

    def _kinds(self) -> dict[str, str]:
        """The storage kind of each store."""
        kinds = {"primary": self.dtype}
        if self.rescore is not None:
            kinds["rescore"] = self.rescore
        return kinds

    # -- what it holds ---------------------------------------------------------

    @property
    def normalized(self) -> bool:
        """Whether rows are stored normalized to unit length (cosine indexes)."""
        return self.metric == "cosine"

    @property
    def quantizer(self) -> Optional[Int8Quantizer]:
        """The int8 scale in use (None until fitted, or without int8 storage)."""
        return self._contents.quantizer

    @property
    def nbytes(self) -> int:
        """Bytes of stored rows and ids (removed rows included until compacted)."""
        now = self._contents
        return now.ids.ids.nbytes + sum(
            s.count * s.width * s.dtype.itemsize for s in now.stores.values())

    @property
    def ids(self) -> np.ndarray:
        """The ids in the index, in increasing order."""
        return self._contents.ids.live_ids()

    def __len__(self) -> int:
        return len(self._contents.ids)

    def __contains__(self, id_: object) -> bool:
        number = one_id(id_)
        if number is None:
            return False
        return bool(self._contents.ids.find(np.asarray([number], dtype=np.int64))[2][0])

    def __repr__(self) -> str:
        stored = "normalized rows" if self.normalized else "rows as given"
        return (f"Index(dim={self.dim}, metric={self.metric!r}, dtype={self.dtype!r}, "
                f"rescore={self.rescore!r}, rescore_factor={self.rescore_factor}): "
                f"{len(self)} vectors, {stored}, {self.nbytes / 2**20:.1f} MiB")

    # -- changes ---------------------------------------------------------------
    # Each builds the next _Contents from the current one and publishes it in
    # its last statement: before that, nothing anyone can see has changed.

    def add(self, vectors: ArrayLike, ids: Optional[ArrayLike] = None, *,
            replace: bool = False) -> np.ndarray:
        """Adds vectors; returns their ids.

        Parameters
        ----------
        vectors : array_like
            ``(n, dim)`` or one ``(dim,)`` float vector; a binary index
            without rescore storage also takes bit-packed uint8 rows
            ``(n, ceil(dim / 8))`` as `binary_quantize` gives them.
        ids : array_like, optional
            ``(n,)`` distinct non-negative int64 ids; by default the next free
            ones (one more than the largest id ever added, and upwards).
        replace : bool
            Whether ids already in the index are overwritten (else an error).

        Returns
        -------
        numpy.ndarray
            int64 ids of the added vectors, in the order given.
        """
        vectors = as_array(vectors, "vectors")
        bits = self._packed_bits(vectors)
        x = bits if bits is not None else _float_rows(vectors, "vectors", self.dim,
                                                      unit=self.normalized)[0]
        with _ctrl_c_held_back(), self._lock:
            now = self._contents
            new = now.ids.new_ids(ids, len(x), replace)
            if len(new) == 0:
                return new
            quantizer = now.quantizer
            if bits is not None:
                encoded = {"primary": bits}
            else:
                if quantizer is None and "int8" in self._kinds().values():
                    quantizer = _fit_int8(x)
                encoded = {name: CODECS[kind].encode(x, quantizer)
                           for name, kind in self._kinds().items()}
            contents = now._replace(quantizer=quantizer)
            if ids is not None:  # automatic ids are new by construction
                _, found, alive = contents.ids.find(new)
                if alive.any():
                    dead = contents.ids.find(new[alive])[0]
                    contents = contents._replace(ids=contents.ids.with_dead(dead))
                if found.any():
                    contents = contents.compacted()  # a dead row still holds one of these ids
            self._contents = _appended(contents, new, encoded, source=vectors)
        return new

    def _packed_bits(self, vectors: ArrayLike) -> Optional[np.ndarray]:
        """Rows already bit-packed (uint8, as `binary_quantize` gives), which a
        binary index without rescore storage takes as they are; else None."""
        array = np.asarray(vectors)
        if array.dtype != np.uint8:
            return None
        if self.dtype != "binary" or self.rescore is not None:
            raise TypeError("vectors are uint8: only a binary index without rescore storage "
                            "takes bit-packed rows; pass float vectors")
        rows = array[np.newaxis, :] if array.ndim == 1 else array
        width = (self.dim + 7) // 8
        if rows.ndim != 2 or rows.shape[1] != width:
            raise ValueError(f"bit-packed vectors must have shape (n, {width}) for dim "
                             f"{self.dim}, got {array.shape}")
        return rows

    def remove(self, ids: ArrayLike) -> None:
        """Removes vectors by id; no other id changes.

        Raises
        ------
        KeyError
            If any id is not in the index (then nothing is removed).
        """
        with _ctrl_c_held_back(), self._lock:
            now = self._contents
            rows = np.unique(now.ids.rows_of(ids))
            contents = now._replace(ids=now.ids.with_dead(rows))
            if contents.ids.dead > _DEAD_SHARE * contents.ids.count:
                contents = contents.compacted()
            self._contents = contents

    def compact(self) -> None:
        """Reclaims the space of removed vectors (ids are unchanged)."""
        with _ctrl_c_held_back(), self._lock:
            self._contents = self._contents.compacted()

    def get(self, ids: ArrayLike) -> np.ndarray:
        """Stored vectors by id, decoded to float32: ``(m, dim)``, or ``(dim,)`` for one id.

        They are what the index holds: normalized for cosine, and from the
        finest storage it has (bits decode to +1 / -1).
        """
        one = np.ndim(ids) == 0
        now = self._contents
        rows = now.ids.rows_of(np.atleast_1d(ids))
        name = "rescore" if "rescore" in now.stores else "primary"
        stored = now.stores[name].view()[rows]
        vectors = CODECS[self._kinds()[name]].decode(stored, self.dim, now.quantizer)
        return vectors[0] if one else vectors

    # -- search ----------------------------------------------------------------

    def search(self, queries: ArrayLike, k: int = 10, *, allow: Allow = None,
               exclude: Allow = None, mask: Optional[ArrayLike] = None,
               id_range: Optional[ArrayLike] = None, dims: Optional[int] = None,
               refine: Optional[bool] = None, threads: Optional[int] = None) -> TopK:
        """The ``k`` best vectors for each query, by id.

        Parameters
        ----------
        queries : array_like
            ``(q, dim)`` or one ``(dim,)`` float vector.
        k : int
        allow : array_like or sequence of array_like, optional
            Ids that may be returned: one 1-D list for every query, or one
            list per query (a sequence of q lists, or a 2-D array). Ids not in
            the index are ignored.
        exclude : array_like or sequence of array_like, optional
            Ids that may not be returned, shared or per query as ``allow``.
        mask : array_like of bool, optional
            ``mask[id]`` says whether ``id`` may be returned (ids past its
            end may not): 1-D for every query, or one row per query.
        id_range : (int, int) or array_like, optional
            Only ids in ``[low, high)``: one pair, or one per query.
        dims : int, optional
            Search on the first ``dims`` dimensions only (Matryoshka
            embeddings; a multiple of 8 for binary storage).
        refine : bool, optional
            Re-rank the best ``k * rescore_factor`` with full vectors: the
            rescore storage if there is one, else the stored vectors at full
            ``dim``. Default: whenever there is rescore storage or ``dims``.
        threads : int, optional

        Returns
        -------
        TopK
            float32 ``scores`` and int64 ids as ``indices``, ``(q, min(k,
            len(index)))``, best first, ties to the lower id. A query with
            fewer allowed vectors has its row padded with id -1 and score NaN;
            ``counts`` gives the valid results per row.
        """
        q, one = _float_rows(queries, "queries", self.dim)
        k = check_k(k)
        threads = resolve_threads(threads)
        dims = self._check_dims(dims)
        if refine is None:
            refine = self.rescore is not None or dims is not None
        now = self._contents
        columns = min(k, len(now.ids))
        scores = np.full((len(q), columns), np.nan, np.float32)
        ids = np.full((len(q), columns), -1, np.int64)
        if columns:
            # Queries meet stored rows as they were stored: normalized for
            # cosine (which the int8 scale was fitted on).
            unit = _normalized(q, "queries") if self.normalized else q
            final = "rescore" if "rescore" in now.stores else "primary"
            wanted = min(_depth(k, self.rescore_factor), len(now.ids.ids)) if refine else k
            filters = Filters(allow, exclude, mask, id_range)
            found_scores, rows = self._stage_topk(now, "primary", unit, wanted, dims, filters,
                                                   threads)
            if refine:
                found_scores, rows = self._refined(now, final, unit, rows, k, threads)
            # A stage may return fewer columns (a short allow-list) or more
            # (dead rows counted): the rest of each row stays padding.
            width = min(columns, rows.shape[1])
            rows = rows[:, :width]
            valid = rows >= 0
            scores[:, :width] = np.where(valid, found_scores[:, :width], np.nan)
            ids[:, :width] = np.where(valid, now.ids.ids[np.where(valid, rows, 0)], -1)
        return TopK(scores[0] if one else scores, ids[0] if one else ids)

    def range_search(self, queries: ArrayLike, threshold: float, *, allow: Allow = None,
                     exclude: Allow = None, mask: Optional[ArrayLike] = None,
                     id_range: Optional[ArrayLike] = None, max_results: Optional[int] = None,
                     threads: Optional[int] = None) -> RangeResult:
        """Every vector within ``threshold`` of each query, by id.

        Every row is scored with the index's most precise storage (the
        rescore storage when there is one): the scores `search` ends with,
        and no first stage that could miss a row.

        Parameters
        ----------
        queries : array_like
            ``(q, dim)`` or one ``(dim,)`` float vector.
        threshold : float
            Vectors scoring at least this (cosine, dot) or at most this
            (sqeuclidean, l2, hamming), in the units `search` returns,
            compared exactly.
        allow, exclude, mask, id_range : optional
            As for `search`.
        max_results : int, optional
            As for `sk.range_search`; rows within a rounding margin of the
            threshold count towards it when the storage's scores are scaled
            (int8).
        threads : int, optional

        Returns
        -------
        RangeResult
            float32 ``scores`` and int64 ids as ``indices``, each query's
            best first, ties to the lower id.
        """
        q, _ = _float_rows(queries, "queries", self.dim)
        threshold = check_threshold(threshold)
        cap = check_max_results(max_results)
        threads = resolve_threads(threads)
        now = self._contents
        unit = _normalized(q, "queries") if self.normalized else q
        store = "rescore" if "rescore" in now.stores else "primary"
        planned, rows, metric, factor = self._planned(now, store, unit, None)
        filters = Filters(allow, exclude, mask, id_range)
        allowed = None
        if filters.given() or now.ids.alive is not None:
            allowed = select(now.ids, filters, len(unit)).bits
        higher = HIGHER_IS_BETTER[metric]
        # The kernels' scores are scaled by `factor` after: they are searched
        # with the threshold in their units, widened by a margin for the
        # rounding of that product, and the scaled scores then held to the
        # threshold itself.
        inner = threshold / factor
        margin = 0.0 if factor == 1.0 else abs(inner) * 2.0**-20 + 2.0**-126
        lims, scores, found = _backend.active.range_search(
            prepare(planned, rows, metric), inner - margin if higher else inner + margin, cap,
            threads, allowed)
        values = scores.astype(np.float32) * np.float32(factor)
        query = np.repeat(np.arange(len(unit)), np.diff(lims))
        wide = values.astype(np.float64)
        keep = wide >= threshold if higher else wide <= threshold
        query, values, found, wide = query[keep], values[keep], found[keep], wide[keep]
        # Scaled scores may tie where the kernels' did not: ties go to the lower id.
        order = np.lexsort((found, -wide if higher else wide, query))
        lims = np.searchsorted(query[order], np.arange(len(unit) + 1)).astype(np.int64)
        return RangeResult(lims, values[order], now.ids.ids[found[order]])

    def _check_dims(self, dims: Optional[int]) -> Optional[int]:
        if dims is None:
            return None
        dims = positive_int(dims, "dims")
        if dims > self.dim or (self.dtype == "binary" and dims % 8):
            rule = ", a multiple of 8 for binary storage" if self.dtype == "binary" else ""
            raise ValueError(f"dims must be in [1, {self.dim}]{rule}; got {dims}")
        return None if dims == self.dim else dims

    def _planned(self, now: _Contents, store: str, unit: np.ndarray,
                 dims: Optional[int]) -> tuple[np.ndarray, Pieces, str, float]:
        """What the kernels get for one store: queries, rows, metric, and the
        factor that turns their scores into the metric on decoded vectors."""
        codec = CODECS[self._kinds()[store]]
        prefix = unit if dims is None else unit[:, :dims]
        queries, metric, factor = codec.plan(
            prefix, self.metric, unit_rows=self.normalized and dims is None,
            asymmetric=self.asymmetric, quantizer=now.quantizer)
        rows = now.stores[store].view()
        if dims is not None:
            rows = rows.columns(codec.width(dims))
        return queries, rows, metric, factor

    def calibrate(self, target_recall: float = 0.99, k: int = 10, *,
                  queries: Optional[ArrayLike] = None, sample: int = 256, max_factor: int = 64,
                  seed: int = 0, threads: Optional[int] = None) -> Calibration:
        """Sets ``rescore_factor`` to the least that keeps ``target_recall`` of
        the exact top-``k``, measured on a sample.

        "Exact" is a search of every row with the rescore storage: the best
        that rescoring can return. Overlap@k after rescoring the first
        stage's best ``D`` is the share of the exact top-k among those ``D``
        candidates, so one first-stage search of depth ``k * max_factor``
        measures every depth at once.

        Parameters
        ----------
        target_recall : float
            In (0, 1].
        k : int
            The k your searches use.
        queries : array_like, optional
            ``(q, dim)`` float queries like yours: the depth is the least that
            meets the target on them. By default, ``sample`` of the index's own
            vectors (as `get` returns them), each held out (its own id dropped
            from its results); such queries sit nearer their neighbours than
            typical ones, so the depth chosen is the least that halves the
            miss rate, ``1 - target_recall``, on them (docs/index.md).
        sample : int
        max_factor : int
            The deepest first stage measured, as a multiple of ``k``.
        seed : int
            Which vectors are sampled.
        threads : int, optional

        Returns
        -------
        Calibration
            The factor chosen, and the recall measured at every depth.
        """
        now = self._contents
        if "rescore" not in now.stores:
            raise ValueError("calibrate chooses how deep to rescore: the index needs rescore "
                             "storage (Index(..., rescore=...))")
        target = float(target_recall)
        if not 0 < target <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
        k, max_factor = check_k(k), positive_int(max_factor, "max_factor")
        threads = resolve_threads(threads)
        held_out = queries is None
        if queries is None:
            if len(now.ids) < 2:
                raise ValueError("calibrate needs at least 2 vectors in the index to sample")
            live = now.ids.live_ids()
            own = np.random.default_rng(seed).choice(
                live, min(positive_int(sample, "sample"), len(live)), replace=False)
            q = self.get(own)
            aim = 1 - (1 - target) / 2
        else:
            q, _ = _float_rows(queries, "queries", self.dim)
            if len(q) == 0 or len(now.ids) == 0:
                raise ValueError("calibrate needs queries and vectors in the index")
            own = np.full(len(q), -1, np.int64)
            aim = target
        unit = _normalized(q, "queries") if self.normalized else q
        k = min(k, len(now.ids) - held_out)
        depth = min(k * max_factor, len(now.ids) - held_out)
        # One more than needed, so that dropping a query's own id leaves enough.
        exact = self._ids_without(self._stage_topk(now, "rescore", unit, k + held_out, None,
                                                   Filters(), threads)[1], own, k, now)
        first = self._ids_without(self._stage_topk(now, "primary", unit, depth + held_out,
                                                   None, Filters(), threads)[1], own, depth, now)
        # The position of each exact id among the candidates (depth: absent).
        position = np.full(exact.shape, depth)
        for i in range(len(exact)):
            at = {int(j): p for p, j in enumerate(first[i])}
            position[i] = [at.get(int(j), depth) for j in exact[i]]
        found = np.cumsum(np.bincount(position.ravel(), minlength=depth + 1)[:depth])
        recall = found / position.size  # entry D - 1: rescoring the best D
        meets = k - 1 + np.flatnonzero(recall[k - 1:] >= aim)
        chosen = int(meets[0]) + 1 if len(meets) else depth
        self.rescore_factor = chosen / k
        return Calibration(self.rescore_factor, chosen, float(recall[chosen - 1]), target,
                           bool(len(meets)), recall, len(q))

    @staticmethod
    def _ids_without(rows: np.ndarray, own: np.ndarray, width: int, now: _Contents) -> np.ndarray:
        """Each row's ids without the query's own id, cut to ``width``."""
        ids = np.where(rows >= 0, now.ids.ids[np.maximum(rows, 0)], -1)
        kept = ids != own[:, None]
        return np.stack([ids[i][kept[i]][:width] for i in range(len(ids))])

    def _stage_topk(self, now: _Contents, store: str, unit: np.ndarray, k: int,
                    dims: Optional[int], filters: Filters,
                    threads: int) -> tuple[np.ndarray, np.ndarray]:
        """The best k rows of one store for each query."""
        queries, rows, metric, factor = self._planned(now, store, unit, dims)
        backend = _backend.active
        if not filters.given() and now.ids.alive is None:
            scores, found = backend.topk(prepare(queries, rows, metric), k, threads)
        else:
            selection = select(now.ids, filters, len(unit))
            scores, found = filtered_topk(backend, queries, rows, metric, selection, k, threads)
        return scores.astype(np.float32) * np.float32(factor), found

    def _refined(self, now: _Contents, store: str, unit: np.ndarray, candidates: np.ndarray,
                 k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        queries, rows, metric, factor = self._planned(now, store, unit, None)
        args = prepare(queries, rows, metric, corpus_name="vectors")
        scores, found = _backend.active.rescore(args, candidates, k, threads)
        return scores.astype(np.float32) * np.float32(factor), found

    # -- persistence -----------------------------------------------------------

    def _settings(self, now: _Contents) -> dict[str, Any]:
        return {"dim": self.dim, "metric": self.metric, "dtype": self.dtype,
                "rescore": self.rescore, "rescore_factor": self.rescore_factor,
                "asymmetric": self.asymmetric, "next_id": now.ids.next_id,
                "int8_scale": None if now.quantizer is None else now.quantizer.scale}

    @staticmethod
    def _sections(now: _Contents) -> list[Section]:
        if now.ids.alive is None:
            return [Section("ids", [now.ids.ids])] + [
                Section(name, store.view().arrays) for name, store in now.stores.items()]
        keep = now.ids.live_rows()
        return [Section("ids", [now.ids.ids[keep]])] + [
            Section(name, [store.view()[keep]]) for name, store in now.stores.items()]

    @classmethod
    def _restore(cls, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Index":
        scale = settings["int8_scale"]
        if not isinstance(settings["asymmetric"], bool):
            raise IndexFileError(f"asymmetric must be true or false, got {settings['asymmetric']!r}")
        index = cls(settings["dim"], settings["metric"], settings["dtype"], settings["rescore"],
                    settings["rescore_factor"], asymmetric=settings["asymmetric"],
                    quantizer=None if scale is None else Int8Quantizer(scale))
        ids = arrays["ids"]
        if ids.dtype != np.int64 or ids.ndim != 1:
            raise IndexFileError(f"section 'ids' has dtype {ids.dtype}, shape {ids.shape}")
        next_id = settings["next_id"]
        _check_ids(ids, next_id)
        stores = {}
        for name, store in index._contents.stores.items():
            rows = arrays[name]
            expected = (len(ids), store.width)
            if rows.dtype != store.dtype or rows.shape != expected:
                raise IndexFileError(f"section {name!r} has dtype {rows.dtype} and shape "
                                     f"{rows.shape}; expected {store.dtype} {expected}")
            stores[name] = store.holding(rows)
        if len(ids) and scale is None and "int8" in index._kinds().values():
            raise IndexFileError("int8 rows are stored but the file gives no int8_scale")
        index._contents = index._contents._replace(ids=IdMap.of(ids, next_id), stores=stores)
        return index

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Writes the index to ``path`` atomically: a failed or interrupted save
        leaves any previous file at ``path`` as it was. It writes the index as
        it was when the save began, while changes may go on."""
        now = self._contents
        _index_file.write(path, self._settings(now), self._sections(now))

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]], mmap: bool = True,
             verify: bool = False) -> "Index":
        """Opens a saved index.

        Parameters
        ----------
        path : str or os.PathLike
        mmap : bool
            Map the vectors instead of reading them: loading costs the same
            for any size, and an index larger than memory can be searched.
        verify : bool
            With ``mmap``, also check the payload checksums (reads the file).
            Without ``mmap`` they are always checked.

        Raises
        ------
        IndexFileError
            A foreign, truncated, corrupt or newer-format file, one whose
            contents break the rules a save keeps, or not a regular file.

        Notes
        -----
        With ``mmap=True`` the index reads the file while it is used: if
        another process truncates or rewrites that file in place, the next
        search that touches the lost pages dies of SIGBUS (inherent to
        memory maps). Where files may change underneath, load with
        ``mmap=False``; `save` itself is safe (it writes a new file and
        renames it over the old one).
        """
        settings, arrays = _index_file.read(path, mmap, verify)
        try:
            return cls._restore(settings, arrays)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, IndexFileError):
                raise IndexFileError(f"{os.fspath(path)}: {error}") from None
            raise IndexFileError(f"{os.fspath(path)} has settings this simkernel cannot "
                                 f"use: {error!r}") from None

    def __reduce__(self) -> tuple[Any, ...]:
        now = self._contents
        arrays = {s.name: np.concatenate(s.arrays) for s in self._sections(now)}
        return Index._restore, (self._settings(now), arrays)


def _rescore_factor(value: object) -> float:
    """A rescore factor: a real number >= 1 (an int stays an int)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"rescore_factor must be a number >= 1, got {value!r}")
    if not value >= 1 or not np.isfinite(value):
        raise ValueError(f"rescore_factor must be a number >= 1, got {value!r}")
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _depth(k: int, factor: float) -> int:
    """How many candidates a search of k results rescores: ceil(k * factor),
    read past the rounding of a factor chosen as depth / k."""
    return max(k, math.ceil(k * factor - 1e-9 * k * factor))


def _appended(now: _Contents, new: np.ndarray, encoded: dict[str, np.ndarray],
              source: np.ndarray) -> _Contents:
    """``now`` with the rows ``encoded`` under ids ``new``, kept in id order."""
    order = None if bool((new[1:] > new[:-1]).all()) else np.argsort(new)
    new_ids = new if order is None else new[order]
    largest = now.ids.ids[-1] if now.ids.count else -1
    stores = {}
    for name, rows in encoded.items():
        if order is not None:
            rows = rows[order]
        # Rows the index made itself (normalized, encoded, reordered) need
        # no copy; the caller's own array must be copied.
        stores[name] = now.stores[name].appended(rows, not np.may_share_memory(rows, source))
    contents = now._replace(ids=now.ids.appended(new_ids), stores=stores)
    if new_ids[0] < largest:
        # Ids below the largest so far: rows are put back in id order (one copy).
        contents = contents.taken(np.argsort(contents.ids.ids, kind="stable"))
    return contents


def _fit_int8(x: np.ndarray) -> Int8Quantizer:
    """The int8 scale from an Index's first rows, where they can give one."""
    if not np.any(x):
        raise ValueError("the int8 scale cannot be fitted from a first batch of zero vectors: "
                         "pass quantizer=sk.Int8Quantizer.fit(sample) with a sample of your "
                         "vectors")
    if len(x) < _FIT_MIN_ROWS:
        warnings.warn(f"the int8 scale is fitted on the first {len(x)} vectors only; later "
                      f"vectors with larger values will be clipped. Pass "
                      f"quantizer=sk.Int8Quantizer.fit(sample) with a representative sample",
                      RuntimeWarning, stacklevel=3)
    return Int8Quantizer.fit(x)


def _check_ids(ids: np.ndarray, next_id: object) -> None:
    """A stored id section must be what an Index writes: distinct
    non-negative ids in increasing order, all below ``next_id``."""
    if isinstance(next_id, bool) or not isinstance(next_id, int):
        raise IndexFileError(f"next_id must be an integer, got {next_id!r}")
    if len(ids) == 0:
        return
    if ids[0] < 0:
        raise IndexFileError(f"ids must be non-negative; the first is {ids[0]}")
    if not bool((ids[1:] > ids[:-1]).all()):
        raise IndexFileError("ids are not distinct and in increasing order")
    if next_id <= ids[-1]:
        raise IndexFileError(f"next_id {next_id} is not above the largest id {ids[-1]}")


__all__ = ["Index", "IndexFileError"]
