"""Threads: per-call thread counts, concurrent callers, fork, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import simkernel as sk
from conftest import NATIVE


def test_concurrent_python_threads_get_the_sequential_answers(backend):
    rng = np.random.default_rng(5)
    corpus = rng.standard_normal((4000, 40)).astype(np.float32)
    codes = rng.integers(-128, 128, size=(4000, 40)).astype(np.int8)
    jobs = [(rng.standard_normal((7, 40)).astype(np.float32), corpus, m) for m in
            ("dot", "cosine", "l2")] * 4
    jobs += [(codes[:5], codes, "sqeuclidean")] * 4
    sequential = [sk.topk(q, c, k=9, metric=m, threads=2) for q, c, m in jobs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(lambda job: sk.topk(job[0], job[1], k=9, metric=job[2],
                                                         threads=2), jobs))
    for want, got in zip(sequential, concurrent):
        np.testing.assert_array_equal(want.indices, got.indices)
        np.testing.assert_array_equal(want.scores, got.scores)


@pytest.mark.parametrize("index_pieces", ["many pieces"], indirect=True)
def test_index_searches_run_while_another_thread_changes_it(backend, index_pieces):
    """Each search sees the index as it was when it started: every id it
    returns names the vector it scored (no id is paired with another's row)."""
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    index = sk.Index(16, "l2")
    index.add(vectors[:1000])

    def change() -> None:
        for start in range(1000, 3000, 50):
            index.add(vectors[start:start + 50])
            index.remove(np.arange(start - 1000, start - 975))

    def search(_: int) -> None:
        for _ in range(20):
            scores, ids = index.search(vectors, k=1, threads=1)
            assert ((ids >= 0) & (ids < 3000)).all()
            want = np.linalg.norm(vectors - vectors[ids[:, 0]], axis=1)
            np.testing.assert_allclose(scores[:, 0], want, atol=1e-2)  # l2 near 0: see README

    with ThreadPoolExecutor(max_workers=3) as pool:
        changing = pool.submit(change)
        list(pool.map(search, range(2)))
        changing.result()
    assert len(index) == 3000 - 40 * 25


# Calls that run for seconds on the scalar kernels: many queries; one query
# rescoring 10M candidates; one tile of very long rows (16 MB each), read in
# place through zero-stride views.
LONG_CALLS = {
    "many queries": """
        corpus = np.ones((400_000, 256), dtype=np.float32)
        call = lambda: sk.topk(np.ones((2_000, 256), dtype=np.float32), corpus, k=10, threads=2)
    """,
    "one query, many candidates": """
        corpus = np.broadcast_to(np.ones(256, dtype=np.float32), (10_000_000, 256))
        candidates = np.arange(10_000_000)[np.newaxis, :]
        call = lambda: sk.rescore(np.ones((1, 256), dtype=np.float32), candidates, corpus, k=5,
                                  metric="dot")
    """,
    "very long rows": """
        row = np.ones(4_000_000, dtype=np.float32)
        corpus = np.broadcast_to(row, (200, row.size))
        call = lambda: sk.topk(np.broadcast_to(row, (16, row.size)), corpus, k=3, metric="dot")
    """,
}


@pytest.mark.skipif(NATIVE is None, reason="the native core is not loaded")
@pytest.mark.parametrize("call", LONG_CALLS)
def test_ctrl_c_stops_a_long_call_quickly(call):
    script = "import sys, time\nimport numpy as np\nimport simkernel as sk\n" + textwrap.dedent(
        LONG_CALLS[call]) + textwrap.dedent("""
        print("ready", flush=True)
        try:
            call()
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
            sys.exit(0)
        print("finished", flush=True)
    """)
    env = {"SIMKERNEL_ISA": "scalar", "PATH": ""}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=env)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    word, when = out.split()
    assert word == "interrupted"
    assert float(when) - sent < 1.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_searches_still_work_in_a_forked_child(backend):
    rng = np.random.default_rng(9)
    corpus = rng.standard_normal((5000, 32)).astype(np.float32)
    queries = corpus[:20]
    expected = sk.topk(queries, corpus, k=5, threads=2)  # the parent's threads exist now
    pid = os.fork()
    if pid == 0:  # the child: only this thread survives the fork
        try:
            got = sk.topk(queries, corpus, k=5, threads=2)
            os._exit(0 if np.array_equal(got.indices, expected.indices) else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the forked child hung")
