"""Result types shared by every backend."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TopK(NamedTuple):
    """The best ``k`` results per query, best first.

    Attributes
    ----------
    scores : numpy.ndarray
        ``(q, k')`` metric values: float32, or int32 for exact integer metrics.
    indices : numpy.ndarray
        ``(q, k')`` int64 row numbers into the corpus.
    """

    scores: np.ndarray
    indices: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Valid results per query: fewer than ``k'`` only where a filtered
        `Index.search` padded a row with id -1."""
        return np.count_nonzero(self.indices >= 0, axis=-1)


class RangeResult(NamedTuple):
    """Every result within a threshold, per query, flattened as faiss's
    ``range_search`` returns them.

    Attributes
    ----------
    lims : numpy.ndarray
        ``(q + 1,)`` int64 offsets: query ``i``'s results are entries
        ``lims[i]:lims[i + 1]`` of ``scores`` and ``indices`` (``(2,)`` for
        one 1-D query).
    scores : numpy.ndarray
        float32, or int32 for exact integer metrics; best first within each
        query, ties to the lower row.
    indices : numpy.ndarray
        int64 corpus rows (ids, from `Index.range_search`).
    """

    lims: np.ndarray
    scores: np.ndarray
    indices: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Results per query."""
        return np.diff(self.lims)

    def query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``(scores, indices)`` of query ``i``."""
        if not -len(self.lims) < i < len(self.lims) - 1:
            raise IndexError(f"query {i} out of range for {len(self.lims) - 1} queries")
        i %= len(self.lims) - 1
        start, stop = int(self.lims[i]), int(self.lims[i + 1])
        return self.scores[start:stop], self.indices[start:stop]


class Calibration(NamedTuple):
    """What `Index.calibrate` measured and chose.

    Attributes
    ----------
    rescore_factor : float
        The factor chosen (and set on the index): ``depth / k``.
    depth : int
        Candidates rescored per search of k: the least depth that met the
        aim, or the deepest measured where none did.
    recall : float
        The measured overlap@k at that depth.
    target_recall : float
    met : bool
        Whether some depth up to ``k * max_factor`` met the aim.
    recall_by_depth : numpy.ndarray
        The overlap@k after rescoring the first stage's best D, at entry
        ``D - 1``.
    queries : int
        How many queries it was measured on.
    """

    rescore_factor: float
    depth: int
    recall: float
    target_recall: float
    met: bool
    recall_by_depth: np.ndarray
    queries: int
