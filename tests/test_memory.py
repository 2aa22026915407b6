"""Bounded memory: top-k over a large corpus keeps q x k results, never the
q x n score matrix that ``q @ corpus.T`` builds (DESIGN sections 3 and 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import NATIVE

# Peak resident memory growth of one call, in a fresh process.
SCRIPT = textwrap.dedent("""
    import resource, sys
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
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sk.topk(queries, corpus, k=10)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(sk.capabilities()["backend"], (after - before) * 1024)
""")


@pytest.mark.parametrize("backend_name,queries", [
    ("numpy", 1000),
    pytest.param("native", 1000, marks=pytest.mark.skipif(NATIVE is None, reason="no native core")),
])
def test_peak_memory_stays_under_a_tenth_of_the_score_matrix(backend_name, queries):
    n = 1_000_000
    env = {**os.environ, "SIMKERNEL_BACKEND": backend_name}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(n), str(queries)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)
    used, growth = done.stdout.split()
    assert used == backend_name
    score_matrix = queries * n * 4
    assert int(growth) < 0.10 * score_matrix
