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
