"""Runs scenarios: every library side by side, rounds interleaved, medians,
answers checked, and the physical limit measured in the same rounds."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from .._backend import capabilities
from .libraries import LIBRARIES, Search
from .limits import limit_rate, peak_probe, read_probe, sgemm_probe
from .reference import recall
from .scenarios import FLOAT_KINDS, Data, Scenario, available_memory, make_data

# A scenario runs only if its corpus, with room for the peers' copies and
# indexes (faiss, numkong and simkernel's Index keep their own), fits four
# times in free memory.
MEMORY_HEADROOM = 4

# Before each timed call the runner waits until the process's threads are
# quiet: idle threads that spin after a call (OpenBLAS's for about 0.1 s,
# OpenMP's) would otherwise hold cores the next library needs. Measured on
# an AMD EPYC (Zen 3, 2 cores), one query over 100k x 768 float32:
# simkernel took 16.5 ms alone, 26.7 ms 0.05 s after a numpy call, 17.7 ms
# 0.5 s after one. Quiet means under a tenth of a core over a window; the
# wait is at most SETTLE_SECONDS.
SETTLE_WINDOW = 0.01
SETTLE_SECONDS = 1.0
# A library whose first call takes longer than this is timed by that call
# alone, so one slow peer cannot hold the run for many minutes.
SLOW_SECONDS = 20.0
LIMIT = "limit"
PEAK = "peak"
# The compute probe row's label (float batches, int8 x int8 ones), with the
# ISA after it.
PEAK_NAME = "FMA peak"
INT8_PEAK_NAME = "int8 multiply-add peak"
PEAK_NAMES = (PEAK_NAME, INT8_PEAK_NAME)


@dataclass
class Result:
    scenario: str
    library: str
    seconds: float | None = None
    recall: float | None = None
    rate: float | None = None  # GB/s read (one query), GFLOP/s (many), G int8 MAC/s (int8 x int8)
    limit_share: float | None = None  # rate / the limit's rate in this run
    peak_share: float | None = None  # batches: rate / the compute peak in this run
    peak_bytes: int | None = None  # what prepare + one search add, in a process of its own
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def settle() -> None:
    """Waits until this process's threads use under a tenth of a core."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        used = time.process_time()
        time.sleep(SETTLE_WINDOW)
        if time.process_time() - used < SETTLE_WINDOW / 10:
            return


def timed(search: Callable[[], object]) -> float:
    """Seconds one call takes, once other libraries' threads are quiet."""
    settle()
    start = time.perf_counter()
    search()
    return time.perf_counter() - start


def too_big(scenario: Scenario) -> str | None:
    """Why ``scenario``'s corpus is not made here (it would not fit
    MEMORY_HEADROOM times in free memory), or None if it fits."""
    free = available_memory()
    if free is None or MEMORY_HEADROOM * scenario.corpus_bytes <= free:
        return None
    return (f"skipped: needs about {MEMORY_HEADROOM * scenario.corpus_bytes / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free")


def run_scenario(scenario: Scenario, threads: int, rounds: int,
                 libraries: Iterable[str] = tuple(LIBRARIES), *, probes: bool = True,
                 data: Data | None = None) -> list[Result]:
    """Times each library on ``scenario`` (on ``data`` if given, else data
    made for it); with ``probes`` the first Result rows are the limits."""
    if data is None:
        note = too_big(scenario)
        if note is not None:
            return [Result(scenario.name, name, note=note) for name in libraries]
        data = make_data(scenario)
    results: dict[str, Result] = {}
    searches: dict[str, Callable[[], object]] = {}
    slow: dict[str, float] = {}
    for name in libraries:
        results[name] = Result(scenario.name, name)
        try:
            search: Search = LIBRARIES[name](scenario, data, threads)
            started = time.perf_counter()
            _, indices = search()  # warm-up, and the answers to check
            first_call = time.perf_counter() - started
            results[name].recall = recall(scenario, data, indices)
            if first_call > SLOW_SECONDS:
                slow[name] = first_call
                results[name].note = "timed once (slow)"
            else:
                searches[name] = search
        except ImportError as missing:
            results[name].note = f"not available: {missing}"[:120]
        except Exception as error:  # a broken peer is reported, never fatal
            results[name].note = f"failed: {type(error).__name__}: {error}"[:120]
    # Integer batches have no sgemm limit to be a share of.
    float_batch = scenario.kind in FLOAT_KINDS
    probe = (None if not probes else read_probe(data, threads) if scenario.one_query
             else sgemm_probe(scenario, data) if float_batch else None)
    limit_name = "read bandwidth (stream)" if scenario.one_query else "numpy sgemm"
    if probe is not None:
        searches[LIMIT] = probe
        results[LIMIT] = Result(scenario.name, limit_name)
        probe()
    compute_batch = probes and (float_batch or scenario.int8_queries)
    peak = peak_probe(threads, int8=scenario.int8_queries) if compute_batch else None
    if peak is not None:
        searches[PEAK] = peak[0]
        label = INT8_PEAK_NAME if scenario.int8_queries else PEAK_NAME
        results[PEAK] = Result(scenario.name, f"{label} ({capabilities()['isa']})")
        peak[0]()
    times: dict[str, list[float]] = {name: [] for name in searches}
    times.update({name: [seconds] for name, seconds in slow.items()})
    for _ in range(rounds):
        for name, call in searches.items():
            times[name].append(timed(call))
    for name, samples in times.items():
        median = statistics.median(samples)
        results[name].seconds = median
        results[name].rate = limit_rate(scenario, data, median)
    peak_seconds = results[PEAK].seconds if PEAK in results else None
    if peak is not None and peak_seconds:
        results[PEAK].rate = peak[1] / peak_seconds / 1e9
    limit, fma = results.get(LIMIT), results.get(PEAK)
    for result in results.values():
        if limit is not None and limit.rate and result.rate and result is not fma:
            result.limit_share = result.rate / limit.rate
        if fma is not None and fma.rate and result.rate:
            result.peak_share = result.rate / fma.rate
    ordered = [results[row] for row in (LIMIT, PEAK) if row in results]
    return ordered + [results[name] for name in libraries]

