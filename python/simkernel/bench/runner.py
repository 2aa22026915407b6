"""Runs one scenario with simkernel and with the numpy baseline."""

from __future__ import annotations

from typing import Callable

import numpy as np

import simkernel as sk

from .baselines import numpy_topk
from .scenarios import Scenario

Search = Callable[[], tuple[np.ndarray, np.ndarray]]


def searches(scenario: Scenario, queries: np.ndarray, corpus: np.ndarray,
             threads: int | None = None) -> dict[str, Search]:
    """The same search by each library, as a zero-argument callable."""
    if scenario.kind == "binary":
        packed = sk.binary_quantize(queries)

        def simkernel() -> tuple[np.ndarray, np.ndarray]:
            return sk.topk(packed, corpus, k=scenario.k, metric="hamming", threads=threads)
    else:

        def simkernel() -> tuple[np.ndarray, np.ndarray]:
            return sk.topk(queries, corpus, k=scenario.k, metric=scenario.metric, threads=threads)

    return {"simkernel": simkernel,
            "numpy": lambda: numpy_topk(queries, corpus, scenario.k)}
