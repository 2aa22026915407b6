"""pytest-benchmark suite over the CLI's scenarios (``simkernel.bench``):
each library in the scenario's group, so the report sets them side by side.
Libraries that are not installed are skipped. ``SIMKERNEL_BENCH_SCALE=0.001``
runs a tiny version (CI); speed is reported here, never asserted."""

from __future__ import annotations

import pytest

from simkernel.bench.libraries import LIBRARIES
from simkernel.bench.reference import recall
from simkernel.bench.scenarios import make_data, scenarios

SCENARIOS = scenarios()
THREADS = 2


@pytest.fixture(scope="module", params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def scenario_data(request):
    return request.param, make_data(request.param)


@pytest.mark.parametrize("library", list(LIBRARIES))
def test_search(benchmark, scenario_data, library):
    scenario, data = scenario_data
    try:
        search = LIBRARIES[library](scenario, data, THREADS)
    except ImportError as missing:
        pytest.skip(f"{library}: {missing}")
    benchmark.group = scenario.name
    _, indices = benchmark(search)
    if library.startswith("simkernel"):  # exact search must find the exact top-k
        assert recall(scenario, data, indices) == 1.0
