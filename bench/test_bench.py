"""pytest-benchmark suite over the CLI's scenarios (``simkernel.bench``):
each library in the scenario's group, so the report sets them side by side.
Libraries that are not installed are skipped. ``SIMKERNEL_BENCH_SCALE=0.001``
runs a tiny version (CI); speed is reported here, never asserted."""

from __future__ import annotations

import os

import pytest

import simkernel as sk
from simkernel.bench import index_costs, matrix, recall_speed
from simkernel.bench.libraries import LIBRARIES
from simkernel.bench.reference import recall
from simkernel.bench.scenarios import make_data, scenarios

SCENARIOS = scenarios()
SCALE = float(os.environ.get("SIMKERNEL_BENCH_SCALE", "1"))
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


@pytest.fixture(scope="module")
def index_batches():
    return index_costs.make_batches(max(index_costs.BATCHES, round(index_costs.FULL_ROWS * SCALE)))


@pytest.mark.parametrize("step", ["np.concatenate", "Index.add l2", "Index.add cosine"])
def test_index_add(benchmark, index_batches, step):
    benchmark.group = "index costs: add in batches"
    if step == "np.concatenate":
        benchmark(index_costs.concatenate, index_batches)
    else:
        index = benchmark(index_costs.add_in_batches, index_batches, step.split()[-1])
        assert len(index) == sum(map(len, index_batches))


@pytest.mark.parametrize("rows", [index_costs.SMALL_ROWS, index_costs.FULL_ROWS])
def test_index_load_mmap(benchmark, tmp_path, rows):
    rows = max(index_costs.BATCHES, round(rows * SCALE))
    path = str(tmp_path / "index.sk")
    index_costs.saved_index(rows, path)
    benchmark.group = "index costs: load memory-mapped"
    assert len(benchmark(sk.Index.load, path, mmap=True)) == rows


@pytest.fixture(scope="module")
def storage_indexes():
    corpus, queries, _, _ = recall_speed.synthetic(SCALE)
    return queries, sk.quality.build_indexes(corpus, "cosine")


@pytest.mark.parametrize("storage", list(sk.quality.CONFIGURATIONS))
def test_storage_search(benchmark, storage_indexes, storage):
    queries, indexes = storage_indexes
    benchmark.group = "recall vs speed: each storage, synthetic clustered"
    result = benchmark(indexes[storage].search, queries, k=recall_speed.K)
    assert result.indices.shape == (len(queries), recall_speed.K)


def test_matrix_cells_compare_simkernel_with_the_fastest_peer(tmp_path, monkeypatch):
    grid = matrix.Grid(("float32", "binary"), (10_000,), (128,), (1, 16), (10,))
    # The 16-query cells are over the cap: listed as skipped, not run.
    monkeypatch.setattr(matrix, "MAX_WORK", 10.0 * max(10, round(10_000 * SCALE)) * 128)
    cells = matrix.run(grid, SCALE, THREADS, 1, ["numpy"])
    assert [(c.storage, c.queries) for c in cells] == [("float32", 1), ("float32", 16),
                                                       ("binary", 1), ("binary", 16)]
    for cell in cells:
        if cell.queries == 1:
            assert cell.peer == "numpy" and cell.ratio > 0 and not cell.note
        else:
            assert cell.ratio is None and cell.note.startswith("skipped")
    assert len(matrix.table(cells)) == 2 + len(cells)
    assert matrix.heat_map(cells, tmp_path / "matrix.png", "test").stat().st_size > 0
