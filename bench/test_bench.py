"""pytest-benchmark suite: each scenario of ``simkernel.bench.scenarios``, with
simkernel and the numpy baseline in the same group so the report sets them
side by side. ``SIMKERNEL_BENCH_SCALE=0.001`` runs a tiny version (CI)."""

from __future__ import annotations

import pytest

from simkernel.bench.runner import searches
from simkernel.bench.scenarios import scenarios

SCENARIOS = scenarios()


@pytest.fixture(scope="module", params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def scenario_data(request):
    scenario = request.param
    return scenario, *scenario.make()


@pytest.mark.parametrize("library", ["simkernel", "numpy"])
def test_search(benchmark, scenario_data, library):
    scenario, queries, corpus = scenario_data
    benchmark.group = scenario.name
    search = searches(scenario, queries, corpus)[library]
    scores, indices = benchmark(search)
    assert indices.shape == (scenario.queries, scenario.k)
