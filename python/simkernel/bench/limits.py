"""The physical limits a result is measured against, in the same run
(docs/performance.md): read bandwidth for one query, numpy's sgemm FLOP rate for
many, and the active ISA's FMA (or int8 multiply-add) peak beside it."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import _backend
from .scenarios import FLOAT_KINDS, Data, Scenario

Probe = Callable[[], object]


def read_probe(data: Data, threads: int) -> Probe | None:
    """Every thread streams its own slice of the corpus's own memory with the
    widest vector loads (the values are not the point, the bytes are)."""
    native = _backend.native()
    if native is None or not data.corpus.flags.c_contiguous:
        return None
    raw = data.corpus.reshape(-1).view(np.uint8)
    words = raw[: len(raw) // 4 * 4].view(np.float32)
    return lambda: native._core.stream_sum(words, threads)


def sgemm_probe(scenario: Scenario, data: Data) -> Probe:
    """numpy's sgemm on the scenario's shapes (float32, ``dim`` wide), the
    corpus taken in blocks so the product stays small."""
    block = max(1, (1 << 24) // len(data.queries))
    rows = (data.corpus[:block] if scenario.kind == "float32"
            else np.random.default_rng(1).standard_normal((block, scenario.dim), dtype=np.float32))
    queries = data.queries
    whole, rest = divmod(scenario.corpus, block)

    def probe() -> None:
        for _ in range(whole):
            queries @ rows.T
        if rest:
            queries @ rows[:rest].T
    return probe


# Operations each thread does per call of a compute probe: about 0.1-0.4 s
# on current cores, long enough to reach the steady clock.
PEAK_OPS_PER_THREAD = 2e10


def peak_probe(threads: int, int8: bool = False) -> tuple[Probe, float] | None:
    """Every thread runs independent chains of the active ISA's FMA (or, with
    ``int8``, of its int8 multiply-add step), as many as its batch kernel
    keeps accumulators, no loads: the probe, and the float operations (or
    multiply-adds) one call does."""
    native = _backend.native()
    if native is None:
        return None
    run = native._core.int8_peak if int8 else native._core.fma_peak
    per_step = run(1000, 1) / 1000
    steps = max(1, int(PEAK_OPS_PER_THREAD / per_step))
    return (lambda: run(steps, threads)), per_step * steps * threads


def limit_rate(scenario: Scenario, data: Data, seconds: float) -> float | None:
    """What a search taking ``seconds`` achieves in the limit's unit: GB/s
    read for one query, float GFLOP/s for many, G int8 multiply-adds/s for
    int8 x int8 batches (None for the rest, which do no float operations)."""
    if scenario.one_query:
        return data.corpus.nbytes / seconds / 1e9
    products = scenario.queries * scenario.corpus * scenario.dim / seconds / 1e9
    if scenario.int8_queries:
        return products
    if scenario.kind not in FLOAT_KINDS:
        return None
    return 2.0 * products
