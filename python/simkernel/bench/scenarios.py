"""The benchmark scenarios of DESIGN section 4, and the data they search.

Sizes are the full ones; ``SIMKERNEL_BENCH_SCALE`` (or ``--scale``) shrinks
every corpus and query count, so CI can run a tiny version of the same suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

import simkernel as sk


@dataclass(frozen=True)
class Scenario:
    """One search: ``queries`` x ``corpus`` vectors of ``dim`` dimensions."""

    name: str
    kind: str  # how the corpus is stored: float32, float16, int8 or binary
    queries: int
    corpus: int
    dim: int = 384
    k: int = 10
    metric: str = "cosine"

    def scaled(self, scale: float) -> "Scenario":
        return replace(self, queries=max(1, round(self.queries * scale)) if self.queries > 1 else 1,
                       corpus=max(self.k, round(self.corpus * scale)))

    def make(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Synthetic unit-norm float32 queries and the corpus in ``kind``."""
        rng = np.random.default_rng(seed)
        queries = _unit_rows(rng, self.queries, self.dim)
        corpus = np.empty((self.corpus, self.dim), dtype=np.float32)
        for start in range(0, self.corpus, 65536):  # bounded temporaries
            rows = min(65536, self.corpus - start)
            corpus[start:start + rows] = _unit_rows(rng, rows, self.dim)
        if self.kind == "float16":
            return queries, corpus.astype(np.float16)
        if self.kind == "int8":
            return queries, sk.Int8Quantizer.fit(corpus[:10000]).encode(corpus)
        if self.kind == "binary":
            return queries, sk.binary_quantize(corpus)
        return queries, corpus


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


SCENARIOS = (
    Scenario("one query, 1M x 384 float32", "float32", 1, 1_000_000),
    Scenario("1000 queries, 200k x 384 float32", "float32", 1000, 200_000),
    Scenario("one query, 1M x 384 float16", "float16", 1, 1_000_000),
    Scenario("one query, 1M x 384 int8", "int8", 1, 1_000_000),
    Scenario("1000 queries, 200k x 384 int8", "int8", 1000, 200_000),
    Scenario("one query, 4M x 1024-bit", "binary", 1, 4_000_000, dim=1024),
    Scenario("1000 queries, 1M x 1024-bit", "binary", 1000, 1_000_000, dim=1024),
)


def scenarios(scale: float | None = None) -> list[Scenario]:
    """The scenarios at ``scale`` (default: ``SIMKERNEL_BENCH_SCALE`` or 1)."""
    if scale is None:
        scale = float(os.environ.get("SIMKERNEL_BENCH_SCALE", "1"))
    return [s.scaled(scale) for s in SCENARIOS]
