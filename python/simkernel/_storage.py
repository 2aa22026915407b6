"""Rows in pieces: `Pieces`, a corpus the core searches as one without
concatenating it, and `Store`, one representation of an Index's vectors.

A `Store` is a value: every change returns a new one and leaves the old one
as it was, so an Index can build its next state aside and publish it in one
assignment (docs/index.md). Rows are copied once: a new store shares the
pieces of the old, and the old one's tail buffer, where it writes only past
the rows the old store shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence, Union

import numpy as np

# Rows added in small batches are gathered in a tail piece of this many bytes
# (and at least this many rows).
TAIL_BYTES = 1 << 25
TAIL_MIN_ROWS = 64


class Pieces:
    """Rows of several arrays of one element type and width, numbered across
    them in order: a corpus searched as one without being concatenated (an
    Index's storage). Indexing by a slice or by row numbers gives one array."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        if not arrays or len({(a.dtype, a.shape[1:]) for a in arrays}) != 1:
            raise ValueError("pieces must be one or more arrays of one dtype and width")
        self.arrays = list(arrays)
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays])
        self.dtype = self.arrays[0].dtype
        self.shape = (int(self.starts[-1]),) + self.arrays[0].shape[1:]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Union[slice, np.ndarray]) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            assert step == 1
            parts = [a[max(start - s, 0):max(stop - s, 0)]
                     for a, s in zip(self.arrays, self.starts)]
            filled = [part for part in parts if len(part)]
            return filled[0] if len(filled) == 1 else np.concatenate(parts)
        rows = np.asarray(rows, dtype=np.int64)
        piece = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows),) + self.shape[1:], self.dtype)
        for p in np.unique(piece):
            chosen = piece == p
            out[chosen] = self.arrays[p][rows[chosen] - self.starts[p]]
        return out

    def columns(self, width: int) -> "Pieces":
        """The first ``width`` columns of every row, as views."""
        return Pieces([a[:, :width] for a in self.arrays])


@dataclass(frozen=True)
class Store:
    """One representation of the vectors: sealed pieces, never written again,
    and a tail buffer of which the first ``tail_count`` rows belong to this
    store.

    A batch of at least half a tail becomes a piece of its own (an eighth, if
    the index made it itself: normalized or encoded rows, kept without a
    copy); smaller ones fill the tail, sealed into a piece when full. So every
    row is copied once, pieces stay few, and a loaded memory map stays mapped
    however much is added after it.
    """

    dtype: np.dtype
    width: int
    pieces: tuple[np.ndarray, ...] = ()
    tail: Optional[np.ndarray] = None
    tail_count: int = 0

    def replaced(self, **changes: Any) -> "Store":
        return replace(self, **changes)

    @classmethod
    def empty(cls, dtype: np.dtype, width: int) -> "Store":
        return cls(np.dtype(dtype), width)

    @property
    def count(self) -> int:
        return sum(map(len, self.pieces)) + self.tail_count

    @property
    def tail_rows(self) -> int:
        return max(TAIL_MIN_ROWS, TAIL_BYTES // (self.width * self.dtype.itemsize))

    def view(self) -> Pieces:
        arrays = list(self.pieces)
        if self.tail is not None and self.tail_count:
            arrays.append(self.tail[:self.tail_count])
        return Pieces(arrays or [np.empty((0, self.width), self.dtype)])

    def appended(self, block: np.ndarray, owned: bool = False) -> "Store":
        """This store with ``block``'s rows after its own. An ``owned`` block
        (made by the index, shared with no one) of an eighth of a tail or more
        is kept as it is, uncopied."""
        if len(block) >= self.tail_rows // (8 if owned else 2):
            rows = block if owned else np.array(block, dtype=self.dtype)
            sealed = self._sealed()
            return sealed.replaced(pieces=sealed.pieces + (rows,))
        store = self
        while len(block):
            tail = store.tail
            if tail is None:
                tail = np.empty((store.tail_rows, store.width), store.dtype)
                store = store._sealed().replaced(tail=tail)
            room = len(tail) - store.tail_count
            taken = block[:room]
            tail[store.tail_count:store.tail_count + len(taken)] = taken
            store = store.replaced(tail_count=store.tail_count + len(taken))
            block = block[room:]
            if store.tail_count == len(tail):
                store = store._sealed()
        return store

    def _sealed(self) -> "Store":
        """The tail's rows as a piece of their own, and no tail."""
        if self.tail is None or not self.tail_count:
            return self.replaced(tail=None, tail_count=0)
        return self.replaced(pieces=self.pieces + (self.tail[:self.tail_count],), tail=None,
                             tail_count=0)

    def holding(self, array: np.ndarray) -> "Store":
        """A store of ``array``'s rows alone (it becomes the only piece)."""
        return self.replaced(pieces=(array,), tail=None, tail_count=0)

    def taken(self, rows: np.ndarray) -> "Store":
        """A store of these rows of this one (a permutation or a subset), in that order."""
        return self.holding(self.view()[rows])

