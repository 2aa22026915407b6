"""The benchmark scenarios of docs/performance.md (one
query at several corpus sizes, for the time-vs-size plot), and the data they
search.

Sizes are the full ones; ``SIMKERNEL_BENCH_SCALE`` (or ``--scale``) shrinks
every corpus and query count, so CI can run a tiny version of the same suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np

import simkernel as sk

# How each storage kind's corpus is held, and the kinds searched as floats.
STORED = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
          "bfloat16": np.dtype(ml_dtypes.bfloat16), "int8": np.dtype(np.int8),
          "binary": np.dtype(np.uint8)}
FLOAT_KINDS = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Scenario:
    """One search: ``queries`` x ``corpus`` vectors of ``dim`` dimensions."""

    name: str
    kind: str  # how the corpus is stored: a key of STORED
    queries: int
    corpus: int
    dim: int = 384
    k: int = 10
    metric: str = "dot"
    # int8 x int8: the queries are int8 codes of the corpus's codec too, so
    # simkernel takes its exact integer path (as usearch and numkong do).
    int8_queries: bool = False

    @property
    def one_query(self) -> bool:
        return self.queries == 1

    @property
    def corpus_bytes(self) -> int:
        width = (self.dim + 7) // 8 if self.kind == "binary" else self.dim
        return self.corpus * width * STORED[self.kind].itemsize

    @property
    def family(self) -> str:
        """What is searched, without the corpus size: scenarios of one family
        differ only in size (the time-vs-size plot draws each as a line)."""
        who = "one query" if self.one_query else f"{self.queries} queries"
        kind = "int8 x int8" if self.int8_queries else self.kind
        return f"{who}, {self.dim}-dim {kind}, {self.metric}"

    def scaled(self, scale: float) -> Scenario:
        queries = self.queries if self.one_query else max(2, round(self.queries * scale))
        return replace(self, queries=queries, corpus=max(self.k, round(self.corpus * scale)))


@dataclass
class Data:
    """A scenario's float32 queries and its corpus as stored (``corpus``), with
    what simkernel and the peers search: ``search_queries`` (packed bits for
    binary) and, for int8, the codec that made the codes."""

    queries: np.ndarray
    corpus: np.ndarray
    search_queries: np.ndarray
    codec: sk.Int8Quantizer | None = None


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return unit(rng.standard_normal((n, dim), dtype=np.float32))


def make_data(scenario: Scenario, seed: int = 0) -> Data:
    """Synthetic unit-norm embeddings, stored as the scenario says; built in
    pieces so that making them sets no memory peak of its own."""
    rng = np.random.default_rng(seed)
    queries = _unit_rows(rng, scenario.queries, scenario.dim)
    stored = STORED[scenario.kind]
    width = (scenario.dim + 7) // 8 if scenario.kind == "binary" else scenario.dim
    corpus = np.empty((scenario.corpus, width), dtype=stored)
    codec = None
    for start in range(0, scenario.corpus, 65536):
        rows = _unit_rows(rng, min(65536, scenario.corpus - start), scenario.dim)
        if scenario.kind == "int8":
            codec = codec or sk.Int8Quantizer.fit(rows)
            rows = codec.encode(rows)
        elif scenario.kind == "binary":
            rows = sk.binary_quantize(rows)
        corpus[start:start + len(rows)] = rows
    search_queries = sk.binary_quantize(queries) if scenario.kind == "binary" else queries
    if scenario.int8_queries and codec is not None:
        search_queries = codec.encode(queries)
    return Data(queries, corpus, search_queries, codec)


SCENARIOS = (
    Scenario("one query, 10k x 384 float32", "float32", 1, 10_000),
    Scenario("one query, 100k x 384 float32", "float32", 1, 100_000),
    Scenario("one query, 1M x 384 float32", "float32", 1, 1_000_000),
    Scenario("one query, 3M x 384 float32", "float32", 1, 3_000_000),
    Scenario("one query, 1M x 384 float32, cosine", "float32", 1, 1_000_000, metric="cosine"),
    Scenario("one query, 1M x 384 float32, l2", "float32", 1, 1_000_000, metric="l2"),
    Scenario("one query, 1M x 384 float16", "float16", 1, 1_000_000),
    Scenario("one query, 1M x 384 bfloat16", "bfloat16", 1, 1_000_000),
    Scenario("16 queries, 1M x 384 float32", "float32", 16, 1_000_000),
    Scenario("1000 queries, 200k x 384 float32", "float32", 1000, 200_000),
    Scenario("1000 queries, 200k x 384 float32, cosine", "float32", 1000, 200_000, metric="cosine"),
    Scenario("1000 queries, 200k x 384 float32, l2", "float32", 1000, 200_000, metric="l2"),
    Scenario("1000 queries, 200k x 384 bfloat16", "bfloat16", 1000, 200_000),
    Scenario("one query, 1M x 384 int8", "int8", 1, 1_000_000),
    Scenario("1000 queries, 200k x 384 int8", "int8", 1000, 200_000),
    Scenario("1000 queries, 200k x 384 int8 x int8", "int8", 1000, 200_000, int8_queries=True),
    Scenario("one query, 40k x 1024-bit", "binary", 1, 40_000, dim=1024, metric="hamming"),
    Scenario("one query, 400k x 1024-bit", "binary", 1, 400_000, dim=1024, metric="hamming"),
    Scenario("one query, 4M x 1024-bit", "binary", 1, 4_000_000, dim=1024, metric="hamming"),
    Scenario("1000 queries, 1M x 1024-bit", "binary", 1000, 1_000_000, dim=1024, metric="hamming"),
)


def available_memory() -> int | None:
    """Bytes this machine can still give (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def scenarios(scale: float | None = None) -> list[Scenario]:
    """The scenarios at ``scale`` (default: ``SIMKERNEL_BENCH_SCALE`` or 1)."""
    if scale is None:
        scale = float(os.environ.get("SIMKERNEL_BENCH_SCALE", "1"))
    return [s.scaled(scale) for s in SCENARIOS]
