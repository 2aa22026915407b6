"""``sk.Index``: vectors under stable ids, searched by the kernels, saved safely.

An Index is a thin composition of `topk` and `rescore` over arrays it keeps:

- rows are kept in increasing id order, so that ties broken by the lower row
  are ties broken by the lower id (docs/semantics.md) and an id is found by
  binary search;
- removed rows stay in place, marked dead, until `compact` (or enough of
  them) reclaims them, so no id is ever renumbered;
- filters and dead rows become a bitmap the core consults only when a score
  would enter the top-k, so a filtered search runs the same kernels; a small
  allow-list is instead gathered and searched on its own.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _backend, _index_file
from ._checks import positive_int
from ._index_file import IndexFileError, Section
from ._inputs import Pieces, check_k, check_metric, prepare
from ._threads import resolve_threads
from ._types import TopK
from .quantize import Int8Quantizer, binary_quantize

STORAGE = ("float32", "float16", "int8", "binary")
RESCORE = (None, "float32", "float16", "int8")
_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}
# A filter that leaves at most this share of the rows is searched by
# gathering those rows (a shared list) or scoring them one by one (per-query
# lists): cheaper than scanning every row through the bitmap.
_SPARSE_SHARE = 1 / 16
# Rows added in small batches are gathered in a tail piece of this many bytes
# (and at least this many rows).
_TAIL_BYTES = 1 << 25
_TAIL_MIN_ROWS = 64
# remove() reclaims the space of dead rows once they are this share of all.
_DEAD_SHARE = 0.25

Allow = Union[ArrayLike, Sequence[ArrayLike], None]


class _Growable:
    """A 1-D array that grows by doubling its capacity, so n values appended
    in any batches cost O(n) copying in all."""

    def __init__(self, initial: np.ndarray) -> None:
        self._data = initial
        self.count = len(initial)

    @property
    def array(self) -> np.ndarray:
        return self._data[:self.count]

    def append(self, values: np.ndarray) -> None:
        needed = self.count + len(values)
        # A loaded memory map is read-only: the first append copies it out.
        if needed > len(self._data) or not self._data.flags.writeable:
            grown = np.empty(max(needed, 2 * len(self._data)), self._data.dtype)
            grown[:self.count] = self.array
            self._data = grown
        self._data[self.count:needed] = values
        self.count = needed

    def replace(self, array: np.ndarray) -> None:
        self._data = array
        self.count = len(array)


class _Store:
    """One representation of the vectors, in pieces that are never copied
    again once written (the core searches pieces as one corpus).

    A batch of at least half a tail becomes a piece of its own (an eighth,
    if the index made it itself: normalized or encoded rows, kept without a
    copy); smaller ones fill a tail piece of fixed capacity, sealed when full. So every row is
    copied once, pieces stay few, and a loaded memory map stays mapped
    however much is added after it. Views handed to a search stay valid.
    """

    def __init__(self, kind: str, dim: int) -> None:
        self.dtype = np.dtype(_DTYPES[kind])
        self.width = (dim + 7) // 8 if kind == "binary" else dim
        self.pieces: list[np.ndarray] = []
        self._tail: Optional[np.ndarray] = None
        self._tail_count = 0
        self._tail_rows = max(_TAIL_MIN_ROWS, _TAIL_BYTES // (self.width * self.dtype.itemsize))

    @property
    def count(self) -> int:
        return sum(map(len, self.pieces)) + self._tail_count

    def view(self) -> Pieces:
        arrays = list(self.pieces)
        if self._tail is not None:
            arrays.append(self._tail[:self._tail_count])
        return Pieces(arrays or [np.empty((0, self.width), self.dtype)])

    def append(self, block: np.ndarray, owned: bool = False) -> None:
        """Adds rows; an ``owned`` block (made by the index, shared with no
        one) of an eighth of a tail or more is kept as it is, uncopied."""
        if len(block) >= self._tail_rows // (8 if owned else 2):
            self._seal()
            self.pieces.append(block if owned else np.array(block, dtype=self.dtype))
            return
        while len(block):
            if self._tail is None:
                self._tail = np.empty((self._tail_rows, self.width), self.dtype)
            room = self._tail_rows - self._tail_count
            self._tail[self._tail_count:self._tail_count + len(block[:room])] = block[:room]
            self._tail_count += len(block[:room])
            block = block[room:]
            if self._tail_count == self._tail_rows:
                self._seal()

    def _seal(self) -> None:
        if self._tail is not None and self._tail_count:
            self.pieces.append(self._tail[:self._tail_count])
        self._tail, self._tail_count = None, 0

    def replace(self, array: np.ndarray) -> None:
        self.pieces = [array]
        self._tail, self._tail_count = None, 0


class _State(NamedTuple):
    """What one search sees: taken at its start, unchanged by later changes."""

    ids: np.ndarray
    alive: Optional[np.ndarray]  # None: every row is alive
    stores: dict[str, Pieces]


def _float_rows(x: ArrayLike, name: str, dim: int,
                unit: bool = False) -> tuple[np.ndarray, bool]:
    """float32 (n, dim) finite rows (scaled to unit length if ``unit``), and
    whether ``x`` was one 1-D vector."""
    array = np.asarray(x)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be float vectors (float16, float32 or float64), "
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
    dtype : {"float32", "float16", "int8", "binary"}
        How vectors are stored and searched first. Cosine indexes store
        normalized rows (`normalized`); with float32 storage their search is
        then a dot product with the unit query.
    rescore : {None, "float32", "float16", "int8"}
        Also store the vectors this way, and re-rank the first stage's best
        ``k * rescore_factor`` rows with them.
    rescore_factor : int
        Candidates per result for the rescoring stage.
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
                 rescore: Optional[str] = None, rescore_factor: int = 4, *,
                 asymmetric: bool = True, quantizer: Optional[Int8Quantizer] = None) -> None:
        self.dim = positive_int(dim, "dim")
        self.metric = check_metric(metric)
        if dtype not in STORAGE:
            raise ValueError(f"dtype must be one of {', '.join(STORAGE)}; got {dtype!r}")
        if rescore not in RESCORE:
            raise ValueError(f"rescore must be None or one of float32, float16, int8; "
                             f"got {rescore!r}")
        if dtype == "binary" and metric not in ("cosine", "dot", "hamming"):
            raise ValueError(f"binary storage searches by cosine, dot or hamming; got "
                             f"metric {metric!r}")
        if metric == "hamming" and (dtype != "binary" or rescore is not None):
            raise ValueError("metric 'hamming' needs dtype='binary' and no rescore")
        if quantizer is not None and not isinstance(quantizer, Int8Quantizer):
            raise TypeError(f"quantizer must be an Int8Quantizer, got {type(quantizer).__name__}")
        self.dtype = dtype
        self.rescore = rescore
        self.rescore_factor = positive_int(rescore_factor, "rescore_factor")
        self.asymmetric = bool(asymmetric)
        self.quantizer = quantizer
        self._lock = threading.RLock()
        self._ids = _Growable(np.empty(0, np.int64))
        self._stores = {"primary": _Store(dtype, self.dim)}
        if rescore is not None:
            self._stores["rescore"] = _Store(rescore, self.dim)
        self._alive: Optional[np.ndarray] = None  # None: every row is alive
        self._dead = 0
        self._next_id = 0

    # -- what it holds ---------------------------------------------------------

    @property
    def normalized(self) -> bool:
        """Whether rows are stored normalized to unit length (cosine indexes)."""
        return self.metric == "cosine"

    @property
    def nbytes(self) -> int:
        """Bytes of stored rows and ids (removed rows included until compacted)."""
        return self._ids.array.nbytes + sum(
            s.count * s.width * s.dtype.itemsize for s in self._stores.values())

    @property
    def ids(self) -> np.ndarray:
        """The ids in the index, in increasing order."""
        ids = self._ids.array
        return np.array(ids if self._alive is None else ids[self._alive])

    def __len__(self) -> int:
        return self._ids.count - self._dead

    def __contains__(self, id_: object) -> bool:
        return bool(self._find(np.asarray([id_], dtype=np.int64))[2][0])

    def __repr__(self) -> str:
        stored = "normalized rows" if self.normalized else "rows as given"
        return (f"Index(dim={self.dim}, metric={self.metric!r}, dtype={self.dtype!r}, "
                f"rescore={self.rescore!r}, rescore_factor={self.rescore_factor}): "
                f"{len(self)} vectors, {stored}, {self.nbytes / 2**20:.1f} MiB")

    def _state(self) -> _State:
        with self._lock:
            return _State(self._ids.array, self._alive,
                          {name: store.view() for name, store in self._stores.items()})

    def _kind(self, store: str) -> str:
        return self.dtype if store == "primary" else str(self.rescore)

    # -- ids -------------------------------------------------------------------

    def _find(self, ids: np.ndarray,
              state: Optional[_State] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each id: its row, whether a row holds it, whether that row is
        alive (in ``state``, default the index as it is now)."""
        stored, alive_rows = (self._ids.array, self._alive) if state is None else state[:2]
        if len(stored) == 0:
            nowhere = np.zeros(len(ids), bool)
            return np.zeros(len(ids), np.int64), nowhere, nowhere
        rows = np.minimum(np.searchsorted(stored, ids), len(stored) - 1)
        found = stored[rows] == ids
        alive = found if alive_rows is None else found & alive_rows[rows]
        return rows, found, alive

    @staticmethod
    def _id_array(ids: ArrayLike, name: str = "ids") -> np.ndarray:
        array = np.asarray(ids)
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
        if array.size and array.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integers, got dtype {array.dtype}")
        return array.astype(np.int64)

    def _live_rows(self, ids: ArrayLike, state: Optional[_State] = None) -> np.ndarray:
        wanted = self._id_array(ids)
        rows, _, alive = self._find(wanted, state)
        if not alive.all():
            missing = wanted[~alive][:5].tolist()
            raise KeyError(f"ids not in the index: {missing}"
                           f"{' ...' if (~alive).sum() > 5 else ''}")
        return rows

    def _new_ids(self, ids: Optional[ArrayLike], n: int, replace: bool) -> np.ndarray:
        if ids is None:
            return np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        new = self._id_array(ids)
        if len(new) != n:
            raise ValueError(f"ids must give one id per vector: ids shape {new.shape}, "
                             f"{n} vectors")
        if n and new.min() < 0:
            raise ValueError(f"ids must be non-negative (-1 marks a missing result); "
                             f"got {new.min()}")
        ordered = np.sort(new)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if len(repeated):
            raise ValueError(f"ids holds id {repeated[0]} more than once")
        if not replace:
            present = new[self._find(new)[2]]
            if len(present):
                raise ValueError(f"ids already in the index: {present[:5].tolist()}; "
                                 f"pass replace=True to overwrite them")
        return new

    # -- changes ---------------------------------------------------------------

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
        bits = self._packed_bits(vectors)
        x = bits if bits is not None else _float_rows(vectors, "vectors", self.dim,
                                                      unit=self.normalized)[0]
        with self._lock:
            new = self._new_ids(ids, len(x), replace)
            if len(new) == 0:
                return new
            quantizer = self.quantizer
            if bits is not None:
                encoded = {"primary": bits}
            else:
                if quantizer is None and "int8" in (self.dtype, self.rescore):
                    quantizer = Int8Quantizer.fit(x)
                encoded = {name: self._encode(self._kind(name), x, quantizer)
                           for name in self._stores}
            # Everything that can fail has: the index changes from here on.
            self.quantizer = quantizer
            if ids is not None:  # automatic ids are new by construction
                _, found, alive = self._find(new)
                if alive.any():
                    self._mark_dead(self._find(new[alive])[0])
                if found.any():
                    self.compact()  # a dead row still holds one of these ids
            self._append(new, encoded, source=np.asarray(vectors))
            self._next_id = max(self._next_id, int(new.max()) + 1)
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

    def _encode(self, kind: str, x: np.ndarray, quantizer: Optional[Int8Quantizer]) -> np.ndarray:
        if kind == "float16":
            if np.abs(x).max(initial=0) > np.finfo(np.float16).max:
                raise ValueError("vectors hold values too large for float16 storage")
            return x.astype(np.float16)
        if kind == "int8":
            assert quantizer is not None
            return quantizer.encode(x)
        if kind == "binary":
            return binary_quantize(x)
        return x

    def _append(self, new: np.ndarray, encoded: dict[str, np.ndarray],
                source: np.ndarray) -> None:
        in_order = bool((new[1:] > new[:-1]).all())
        order = None if in_order else np.argsort(new)
        new_ids = new if order is None else new[order]
        largest = self._ids.array[-1] if self._ids.count else -1
        self._ids.append(new_ids)
        for name, rows in encoded.items():
            if order is not None:
                rows = rows[order]
            # Rows the index made itself (normalized, encoded, reordered) need
            # no copy; the caller's own array must be copied.
            self._stores[name].append(rows, not np.may_share_memory(rows, source))
        if self._alive is not None:
            self._alive = np.concatenate([self._alive, np.ones(len(new), bool)])
        if new_ids[0] < largest:
            # Ids below the largest so far: rows are put back in id order (one copy).
            self._take(np.argsort(self._ids.array, kind="stable"))

    def _take(self, rows: np.ndarray) -> None:
        """Keeps only ``rows`` (a permutation or a subset), in that order."""
        self._ids.replace(self._ids.array[rows])
        for store in self._stores.values():
            store.replace(store.view()[rows])
        if self._alive is not None:
            self._alive = self._alive[rows]

    def _mark_dead(self, rows: np.ndarray) -> None:
        # A new mask, not a change to the old one, which searches may be reading.
        alive = np.ones(self._ids.count, bool) if self._alive is None else self._alive.copy()
        alive[rows] = False
        self._alive = alive
        self._dead += len(rows)

    def remove(self, ids: ArrayLike) -> None:
        """Removes vectors by id; no other id changes.

        Raises
        ------
        KeyError
            If any id is not in the index (then nothing is removed).
        """
        with self._lock:
            rows = self._live_rows(ids)
            self._mark_dead(np.unique(rows))
            if self._dead > _DEAD_SHARE * self._ids.count:
                self.compact()

    def compact(self) -> None:
        """Reclaims the space of removed vectors (ids are unchanged)."""
        with self._lock:
            if self._dead:
                assert self._alive is not None
                self._take(np.flatnonzero(self._alive))
            self._alive, self._dead = None, 0

    def get(self, ids: ArrayLike) -> np.ndarray:
        """Stored vectors by id, decoded to float32: ``(m, dim)``, or ``(dim,)`` for one id.

        They are what the index holds: normalized for cosine, and from the
        finest storage it has (bits decode to +1 / -1).
        """
        one = np.ndim(ids) == 0
        state = self._state()
        rows = self._live_rows(np.atleast_1d(ids), state)
        name = "rescore" if "rescore" in self._stores else "primary"
        kind = self._kind(name)
        stored = state.stores[name][rows]
        if kind == "int8":
            assert self.quantizer is not None
            vectors = self.quantizer.decode(stored)
        elif kind == "binary":
            bits = np.unpackbits(stored, axis=1, count=self.dim)
            vectors = bits.astype(np.float32) * 2 - 1
        else:
            vectors = stored.astype(np.float32)
        return vectors[0] if one else vectors

    # -- search ----------------------------------------------------------------

    def search(self, queries: ArrayLike, k: int = 10, *, allow: Allow = None,
               dims: Optional[int] = None, refine: Optional[bool] = None,
               threads: Optional[int] = None) -> TopK:
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
        state = self._state()
        live = len(state.ids) - (0 if state.alive is None else
                                 len(state.alive) - np.count_nonzero(state.alive))
        columns = min(k, live)
        scores = np.full((len(q), columns), np.nan, np.float32)
        ids = np.full((len(q), columns), -1, np.int64)
        if columns:
            final = "rescore" if "rescore" in state.stores else "primary"
            wanted = k * self.rescore_factor if refine else k
            found_scores, rows = self._first_stage(state, q, wanted, dims, allow, threads)
            if refine:
                found_scores, rows = self._rescore(state, final, q, rows, k, threads)
            # A stage may return fewer columns (a short allow-list) or more
            # (dead rows counted): the rest of each row stays padding.
            width = min(columns, rows.shape[1])
            rows = rows[:, :width]
            valid = rows >= 0
            scores[:, :width] = np.where(valid, found_scores[:, :width], np.nan)
            ids[:, :width] = np.where(valid, state.ids[np.where(valid, rows, 0)], -1)
        return TopK(scores[0] if one else scores, ids[0] if one else ids)

    def _check_dims(self, dims: Optional[int]) -> Optional[int]:
        if dims is None:
            return None
        dims = positive_int(dims, "dims")
        if dims > self.dim or (self.dtype == "binary" and dims % 8):
            rule = ", a multiple of 8 for binary storage" if self.dtype == "binary" else ""
            raise ValueError(f"dims must be in [1, {self.dim}]{rule}; got {dims}")
        return None if dims == self.dim else dims

    def _plan(self, kind: str, q: np.ndarray, dims: Optional[int]) -> tuple[np.ndarray, str, float]:
        """What the kernels get for this storage: queries, metric, and the
        factor that turns their scores into the metric on decoded vectors."""
        # Queries meet stored rows as they were stored: normalized for
        # cosine (which the int8 scale was fitted on).
        unit = _normalized(q, "queries") if self.normalized else q
        prefix = unit if dims is None else unit[:, :dims]
        if kind == "binary":
            if self.metric == "hamming" or not self.asymmetric:
                return binary_quantize(prefix), "hamming", 1.0
            return prefix, self.metric, 1.0
        if kind == "int8":
            assert self.quantizer is not None
            s = self.quantizer.scale
            if not self.asymmetric:
                factor = {"cosine": 1.0, "dot": s * s, "sqeuclidean": s * s, "l2": s}
                return self.quantizer.encode(prefix), self.metric, factor[self.metric]
            # Float queries meet codes (= vectors / s): dot is scaled after,
            # distances need the queries in code units first.
            if self.metric in ("sqeuclidean", "l2"):
                factor = {"sqeuclidean": s * s, "l2": s}
                return prefix / np.float32(s), self.metric, factor[self.metric]
            return prefix, self.metric, s if self.metric == "dot" else 1.0
        if self.normalized and kind == "float32" and dims is None:
            # Stored rows are unit length (to float32 rounding): cosine is a
            # dot with the unit query. float16 rounding moves a row's length
            # by up to 5e-4, so there the kernels still divide by it.
            return prefix, "dot", 1.0
        return prefix, self.metric, 1.0

    def _search_store(self, state: _State, store: str, q: np.ndarray,
                      dims: Optional[int]) -> tuple[np.ndarray, Pieces, str, float]:
        queries, metric, factor = self._plan(self._kind(store), q, dims)
        rows = state.stores[store]
        if dims is not None:
            rows = rows.columns(dims // 8 if self.dtype == "binary" else dims)
        return queries, rows, metric, factor

    def _first_stage(self, state: _State, q: np.ndarray, k: int, dims: Optional[int],
                     allow: Allow, threads: int) -> tuple[np.ndarray, np.ndarray]:
        queries, rows, metric, factor = self._search_store(state, "primary", q, dims)
        backend = _backend.active
        if allow is None and state.alive is None:
            args = prepare(queries, rows, metric)
            scores, found = backend.topk(args, k, threads)
        else:
            lists = self._allowed_rows(state, allow, len(q))
            n = len(state.ids)
            if len(lists) == 1 and len(lists[0]) <= _SPARSE_SHARE * n:
                shared = lists[0]
                args = prepare(queries, rows[shared], metric)
                scores, found = backend.topk(args, k, threads)
                found = np.where(found >= 0, shared[np.maximum(found, 0)], -1)
            elif sum(map(len, lists)) <= _SPARSE_SHARE * n * len(lists):
                args = prepare(queries, rows, metric)
                scores, found = backend.rescore(args, _padded(lists), k, threads)
            else:
                args = prepare(queries, rows, metric)
                scores, found = backend.topk(args, k, threads, _bitmap(lists, n))
        return scores.astype(np.float32) * np.float32(factor), found

    def _rescore(self, state: _State, store: str, q: np.ndarray, candidates: np.ndarray,
                 k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        queries, rows, metric, factor = self._search_store(state, store, q, None)
        args = prepare(queries, rows, metric, corpus_name="vectors")
        scores, found = _backend.active.rescore(args, candidates, k, threads)
        return scores.astype(np.float32) * np.float32(factor), found

    def _allowed_rows(self, state: _State, allow: Allow, nq: int) -> list[np.ndarray]:
        """Live rows a search may return, sorted: one array for every query
        (a list of one) or one per query."""
        if allow is None:
            assert state.alive is not None
            return [np.flatnonzero(state.alive)]
        per_query = (isinstance(allow, np.ndarray) and allow.ndim == 2) or (
            isinstance(allow, (list, tuple)) and len(allow) > 0
            and all(np.ndim(a) == 1 for a in allow))
        lists: list[Any] = list(allow) if per_query else [allow]  # type: ignore[arg-type]
        if per_query and len(lists) != nq:
            raise ValueError(f"allow must be one list of ids, or one per query: "
                             f"{len(lists)} lists for {nq} queries")
        found = []
        for ids in lists:
            rows, _, alive = self._find(self._id_array(ids, "allow"), state)
            found.append(np.unique(rows[alive]))
        return found

    # -- persistence -----------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {"dim": self.dim, "metric": self.metric, "dtype": self.dtype,
                "rescore": self.rescore, "rescore_factor": self.rescore_factor,
                "asymmetric": self.asymmetric, "next_id": self._next_id,
                "int8_scale": None if self.quantizer is None else self.quantizer.scale}

    def _sections(self) -> list[Section]:
        state = self._state()
        if state.alive is None:
            return [Section("ids", [state.ids])] + [
                Section(name, pieces.arrays) for name, pieces in state.stores.items()]
        keep = np.flatnonzero(state.alive)
        return [Section("ids", [state.ids[keep]])] + [
            Section(name, [pieces[keep]]) for name, pieces in state.stores.items()]

    @classmethod
    def _restore(cls, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Index":
        scale = settings["int8_scale"]
        index = cls(settings["dim"], settings["metric"], settings["dtype"], settings["rescore"],
                    settings["rescore_factor"], asymmetric=settings["asymmetric"],
                    quantizer=None if scale is None else Int8Quantizer(scale))
        ids = arrays["ids"]
        for name, store in index._stores.items():
            rows = arrays[name]
            expected = (len(ids), store.width)
            if rows.dtype != store.dtype or rows.shape != expected:
                raise IndexFileError(f"section {name!r} has dtype {rows.dtype} and shape "
                                     f"{rows.shape}; expected {store.dtype} {expected}")
            store.replace(rows)
        if ids.dtype != np.int64 or ids.ndim != 1:
            raise IndexFileError(f"section 'ids' has dtype {ids.dtype}, shape {ids.shape}")
        index._ids.replace(ids)
        index._next_id = int(settings["next_id"])
        return index

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Writes the index to ``path`` atomically: a failed or interrupted save
        leaves any previous file at ``path`` as it was."""
        with self._lock:
            _index_file.write(path, self._settings(), self._sections())

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
            A foreign, truncated, corrupt or newer-format file.
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
        arrays = {s.name: np.concatenate(s.arrays) for s in self._sections()}
        return Index._restore, (self._settings(), arrays)


def _padded(lists: list[np.ndarray]) -> np.ndarray:
    """Per-query row lists as one (q, longest) matrix padded with -1."""
    out = np.full((len(lists), max(map(len, lists), default=0)), -1, np.int64)
    for i, rows in enumerate(lists):
        out[i, :len(rows)] = rows
    return out


def _bitmap(lists: list[np.ndarray], n: int) -> np.ndarray:
    """Row lists as the core's filter: one little-endian bitmap row per list."""
    out = np.empty((len(lists), (n + 7) // 8), np.uint8)
    for i, rows in enumerate(lists):
        mask = np.zeros(n, bool)
        mask[rows] = True
        out[i] = np.packbits(mask, bitorder="little")
    return out


__all__ = ["Index", "IndexFileError"]
