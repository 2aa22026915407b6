"""Bounded memory: top-k over a large corpus keeps q x k results, never the
q x n score matrix that ``q @ corpus.T`` builds (docs/backends.md, docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import NATIVE

# Peak resident memory growth of one call, in a fresh process: Linux resets
# the peak (VmHWM) to the current size when "5" is written to clear_refs.
KIB = textwrap.dedent("""
    def kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
""")

SCRIPT = KIB + textwrap.dedent("""
    import sys
    import numpy as np
    import simkernel as sk
    n, q, d = int(sys.argv[1]), int(sys.argv[2]), 384
    rng = np.random.default_rng(0)
    corpus = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 65536):  # in pieces, so generating it sets no peak
        rows = min(65536, n - start)
        corpus[start:start + rows] = rng.standard_normal((rows, d), dtype=np.float32)
    queries = rng.standard_normal((q, d), dtype=np.float32)
    sk.topk(queries[:2], corpus[:1000], k=10)


    open("/proc/self/clear_refs", "w").write("5")
    before = kib("VmRSS:")
    sk.topk(queries, corpus, k=10)
    print(sk.capabilities()["backend"], (kib("VmHWM:") - before) * 1024)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("backend_name,queries,share", [
    ("numpy", 1000, 0.10),   # blocks of scores, a tenth at most
    pytest.param("native", 1000, 0.05, marks=pytest.mark.skipif(NATIVE is None,
                                                                reason="no native core")),
])
def test_peak_memory_stays_a_small_share_of_the_score_matrix(backend_name, queries, share):
    n = 1_000_000
    env = {**os.environ, "SIMKERNEL_BACKEND": backend_name}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(n), str(queries)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    used, growth = done.stdout.split()
    assert used == backend_name
    score_matrix = queries * n * 4
    assert int(growth) < share * score_matrix


HUGE_THREADS = KIB + textwrap.dedent("""
    import numpy as np
    import simkernel as sk
    corpus = np.ones((100, 32), dtype=np.float32)
    queries = np.ones((50, 32), dtype=np.float32)
    sk.topk(queries, corpus, k=5, threads=1)


    open("/proc/self/clear_refs", "w").write("5")
    before = kib("VmRSS:")
    for call in (lambda: sk.topk(queries, corpus, k=5, threads=10**5),
                 lambda: sk.cdist(queries, corpus, threads=10**5),
                 lambda: sk.rescore(queries, np.tile(np.arange(9), (50, 1)), corpus, k=3,
                                    threads=10**5)):
        call()
    print((kib("VmHWM:") - before) * 1024)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.skipif(NATIVE is None, reason="no native core")
def test_memory_follows_the_work_not_the_thread_count():
    # Before workers were capped at the tasks, threads=10**5 on 100 rows took 1.8 GB.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMKERNEL_")}
    done = subprocess.run([sys.executable, "-c", HUGE_THREADS], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    assert int(done.stdout) < 32 * 2**20


CAPPED_RANGE = KIB + textwrap.dedent("""
    import numpy as np
    import simkernel as sk
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((200_000, 16), dtype=np.float32)
    queries = rng.standard_normal((200, 16), dtype=np.float32)
    sk.range_search(queries[:2], corpus[:1000], 0.0, "dot")


    open("/proc/self/clear_refs", "w").write("5")
    before = kib("VmRSS:")
    try:
        sk.range_search(queries, corpus, -np.inf, "dot", max_results=10_000)
    except ValueError as error:
        assert "max_results=10000" in str(error), error
    else:
        raise AssertionError("no error past max_results")
    print(sk.capabilities()["backend"], (kib("VmHWM:") - before) * 1024)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("backend_name", [
    "numpy", pytest.param("native", marks=pytest.mark.skipif(NATIVE is None,
                                                              reason="no native core"))])
def test_a_runaway_range_search_stops_at_max_results_before_holding_the_rest(backend_name):
    # Every one of the 40M pairs passes: held, they would be 480 MB at least.
    env = {**os.environ, "SIMKERNEL_BACKEND": backend_name}
    done = subprocess.run([sys.executable, "-c", CAPPED_RANGE], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    used, growth = done.stdout.split()
    assert used == backend_name
    assert int(growth) < 48 * 2**20
