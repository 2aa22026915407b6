"""What an Index costs besides its searches (issue 5), each beside a baseline
in the same rounds: adding 1M x 384 vectors in batches of 10,000 against one
``np.concatenate`` of the same batches, and loading a saved index
memory-mapped at 10,000 and at 1,000,000 vectors (it should not read the
payload, so both cost about the same), with a full read for contrast.

``NAME`` is what ``--only`` matches. The pytest-benchmark suite
(``bench/test_bench.py``) times the same steps.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

import numpy as np

import simkernel as sk

from .run import timed

NAME = "index costs"
FULL_ROWS = 1_000_000
SMALL_ROWS = 10_000
DIM = 384
BATCHES = 100


@dataclass
class Cost:
    operation: str
    seconds: float
    baseline: str = ""
    ratio: float | None = None  # seconds / the baseline's seconds

    def as_dict(self) -> dict:
        return asdict(self)


def make_batches(rows: int, seed: int = 0) -> list[np.ndarray]:
    """``rows`` float32 vectors in 100 batches (10,000 each at full size)."""
    rng = np.random.default_rng(seed)
    size = max(1, rows // BATCHES)
    return [rng.standard_normal((size, DIM), dtype=np.float32) for _ in range(rows // size)]


def concatenate(batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(batches)


def add_in_batches(batches: list[np.ndarray], metric: str) -> sk.Index:
    index = sk.Index(DIM, metric)
    for batch in batches:
        index.add(batch)
    return index


def saved_index(rows: int, path: str) -> float:
    """Saves an index of ``rows`` vectors at ``path``; returns the seconds ``save`` took."""
    index = sk.Index(DIM, "l2")
    for batch in make_batches(rows, seed=1):
        index.add(batch)
    return timed(lambda: index.save(path))


def _median_seconds(step: Callable[[], object], rounds: int) -> float:
    return statistics.median(timed(step) for _ in range(rounds))


def measure(scale: float, rounds: int) -> list[Cost]:
    """The index costs at ``scale`` of full size (1M rows; 10k for the small load)."""
    rows = max(BATCHES, round(FULL_ROWS * scale))
    batches = make_batches(rows)
    size = len(batches[0])
    steps: dict[str, Callable[[], object]] = {
        "np.concatenate": lambda: concatenate(batches),
        "Index.add, l2": lambda: add_in_batches(batches, "l2"),
        "Index.add, cosine (normalizes)": lambda: add_in_batches(batches, "cosine"),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # interleaved, so no step gets a quieter machine
        for name, step in steps.items():
            times[name].append(timed(step))
    label = f"{len(batches)} batches of {size} x {DIM}"
    base = statistics.median(times["np.concatenate"])
    costs = [Cost(f"{name}: {label}", statistics.median(t),
                  "" if name == "np.concatenate" else "np.concatenate",
                  None if name == "np.concatenate" else statistics.median(t) / base)
             for name, t in times.items()]
    with tempfile.TemporaryDirectory() as folder:
        small, large = os.path.join(folder, "small.sk"), os.path.join(folder, "large.sk")
        small_rows = min(SMALL_ROWS, rows)
        saved_index(small_rows, small)
        costs.append(Cost(f"Index.save, {rows} x {DIM} (checksums, fsync)",
                          saved_index(rows, large)))
        small_load = _median_seconds(lambda: sk.Index.load(small, mmap=True), 7 * rounds)
        costs.append(Cost(f"Index.load(mmap=True), {small_rows} vectors", small_load))
        for mmap in (True, False):
            seconds = _median_seconds(partial(sk.Index.load, large, mmap=mmap), rounds)
            costs.append(Cost(f"Index.load(mmap={mmap}), {rows} vectors", seconds,
                              f"load of {small_rows}", seconds / small_load))
    return costs


def table(costs: list[Cost]) -> list[str]:
    lines = ["| operation | median ms | baseline | x baseline |", "| --- | ---: | --- | ---: |"]
    for c in costs:
        ratio = "" if c.ratio is None else f"{c.ratio:.2f}x"
        lines.append(f"| {c.operation} | {1e3 * c.seconds:.2f} | {c.baseline} | {ratio} |")
    return lines
