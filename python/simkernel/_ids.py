"""An Index's ids: which row holds which id, which rows are dead, and the
next automatic id (docs/index.md, Ids).

`IdMap` is a value: every change returns a new one and leaves the old one as
it was. Ids are kept in increasing order (so ties to the lower row are ties
to the lower id, and an id is found by binary search), in a buffer that grows
by doubling: a new map writes only past the ids the old one shows, so n ids
appended in any batches cost O(n) copying in all.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

# Ids are int64; automatic ones stop here rather than wrap.
MAX_ID = 2**63 - 1


def id_array(ids: ArrayLike, name: str = "ids") -> np.ndarray:
    """``ids`` as a 1-D int64 array; TypeError or ValueError naming ``name``."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {array.dtype}")
    if array.size and array.dtype.kind == "u" and array.max() > MAX_ID:
        raise ValueError(f"{name} must fit int64; got {array.max()}")
    return array.astype(np.int64)


def one_id(value: object) -> Optional[int]:
    """``value`` as an id if it is an integer (not a bool, not 1.5), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None
    return number if -2**63 <= number <= MAX_ID else None


@dataclass(frozen=True)
class IdMap:
    buffer: np.ndarray      # ids in increasing order in buffer[:count]; spare room after
    count: int
    alive: Optional[np.ndarray] = None  # None: every row is alive
    dead: int = 0
    next_id: int = 0        # one more than the largest id ever added

    def replaced(self, **changes: Any) -> "IdMap":
        return replace(self, **changes)

    @classmethod
    def empty(cls) -> "IdMap":
        return cls(np.empty(0, np.int64), 0)

    @classmethod
    def of(cls, ids: np.ndarray, next_id: int) -> "IdMap":
        return cls(ids, len(ids), None, 0, next_id)

    @property
    def ids(self) -> np.ndarray:
        """The id of every row, dead ones included."""
        return self.buffer[:self.count]

    def __len__(self) -> int:
        return self.count - self.dead

    def live_ids(self) -> np.ndarray:
        ids = self.ids
        return np.array(ids if self.alive is None else ids[self.alive])

    def live_rows(self) -> np.ndarray:
        return np.arange(self.count) if self.alive is None else np.flatnonzero(self.alive)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each id: its row, whether a row holds it, whether that row is alive."""
        stored = self.ids
        if len(stored) == 0:
            nowhere = np.zeros(len(ids), bool)
            return np.zeros(len(ids), np.int64), nowhere, nowhere
        rows = np.minimum(np.searchsorted(stored, ids), len(stored) - 1)
        found = stored[rows] == ids
        alive = found if self.alive is None else found & self.alive[rows]
        return rows, found, alive

    def rows_of(self, ids: ArrayLike, name: str = "ids") -> np.ndarray:
        """The rows of live ids; KeyError naming the first missing ones."""
        wanted = id_array(ids, name)
        rows, _, alive = self.find(wanted)
        if not alive.all():
            missing = wanted[~alive][:5].tolist()
            raise KeyError(f"ids not in the index: {missing}"
                           f"{' ...' if (~alive).sum() > 5 else ''}")
        return rows

    def new_ids(self, ids: Optional[ArrayLike], n: int, replace: bool) -> np.ndarray:
        """The ids for n vectors being added: checked ones given, or the next
        automatic ones."""
        if ids is None:
            if self.next_id + n - 1 > MAX_ID:
                raise ValueError(f"no automatic ids left for {n} vectors (the next would pass "
                                 f"2**63 - 1); pass ids= explicitly")
            return np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        new = id_array(ids)
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
            present = new[self.find(new)[2]]
            if len(present):
                raise ValueError(f"ids already in the index: {present[:5].tolist()}; "
                                 f"pass replace=True to overwrite them")
        return new

    def appended(self, sorted_ids: np.ndarray) -> "IdMap":
        """This map with rows for ``sorted_ids`` (increasing) after its own;
        the caller restores id order if they start below its largest."""
        needed = self.count + len(sorted_ids)
        buffer = self.buffer
        # A loaded memory map is read-only: the first append copies it out.
        if needed > len(buffer) or not buffer.flags.writeable:
            buffer = np.empty(max(needed, 2 * len(buffer)), np.int64)
            buffer[:self.count] = self.ids
        buffer[self.count:needed] = sorted_ids
        alive = None if self.alive is None else np.concatenate(
            [self.alive, np.ones(len(sorted_ids), bool)])
        next_id = max(self.next_id, int(sorted_ids[-1]) + 1) if len(sorted_ids) else self.next_id
        return IdMap(buffer, needed, alive, self.dead, next_id)

    def with_dead(self, rows: np.ndarray) -> "IdMap":
        """This map with ``rows`` (distinct, alive) marked dead."""
        alive = np.ones(self.count, bool) if self.alive is None else self.alive.copy()
        alive[rows] = False
        return self.replaced(alive=alive, dead=self.dead + len(rows))

    def taken(self, rows: np.ndarray) -> "IdMap":
        """A map of these rows (a permutation or a subset), in that order."""
        ids = self.ids[rows]
        alive = None if self.alive is None else self.alive[rows]
        dead = 0 if alive is None else len(ids) - int(np.count_nonzero(alive))
        return IdMap(ids, len(ids), alive if dead else None, dead, self.next_id)
