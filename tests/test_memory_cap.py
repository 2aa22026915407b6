"""Searches of memory-mapped data bigger than the memory they may use
(docs/backends.md, Memory caps): a child process in a real cgroup v1
memory group capped at a quarter of the file's size searches a memory-mapped
corpus, the same corpus in parts, rescoring from memory-mapped vectors, and
an Index loaded with mmap=True, and gets the uncapped answers. Needs root
and a writable cgroup v1 memory controller; skipped with the reason
elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simkernel as sk

CGROUPS = Path("/sys/fs/cgroup/memory")
ROWS, DIM = 400_000, 384  # 614 MB of float32
LIMIT = 150 << 20

pytestmark = pytest.mark.skipif(
    not (CGROUPS / "cgroup.procs").exists() or not os.access(CGROUPS, os.W_OK),
    reason=f"no writable cgroup v1 memory controller at {CGROUPS} (needs root)")

# The child joins the group before it imports anything, so everything it
# maps or allocates is charged to it.
CHILD = """
import json, os, sys
with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as procs:
    procs.write(str(os.getpid()))
import numpy as np
import simkernel as sk
corpus = np.load(sys.argv[2], mmap_mode="r")
queries = np.load(sys.argv[4])
candidates = np.load(sys.argv[5])
parts = [corpus[:100_000], corpus[100_000:250_000], corpus[250_000:]]
index = sk.Index.load(sys.argv[3], mmap=True)
found = {
    "memmap": sk.topk(queries, corpus, 10, "dot").indices.tolist(),
    "parts": sk.topk(queries, parts, 10, "dot").indices.tolist(),
    "rescore": sk.rescore(queries, candidates, corpus, 10, "dot").indices.tolist(),
    "index": index.search(queries, 10)[1].tolist(),
}
print(json.dumps(found))
"""


def evict(path: Path) -> None:
    """Drops the file's pages from the page cache, so that the child's reads
    are charged to its group rather than served from pages charged elsewhere."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("capped")
    rng = np.random.default_rng(0)
    corpus_path = folder / "corpus.npy"
    corpus = np.lib.format.open_memmap(corpus_path, mode="w+", dtype=np.float32,
                                       shape=(ROWS, DIM))
    index = sk.Index(DIM, "dot")
    for start in range(0, ROWS, 50_000):
        block = rng.standard_normal((min(50_000, ROWS - start), DIM), dtype=np.float32)
        corpus[start:start + len(block)] = block
        index.add(block)
    corpus.flush()
    index_path = folder / "corpus.sk"
    index.save(index_path)
    del index, corpus
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    candidates = rng.choice(ROWS, size=(8, 500), replace=False)
    np.save(folder / "queries.npy", queries)
    np.save(folder / "candidates.npy", candidates)
    return folder


@pytest.fixture
def memory_group():
    group = CGROUPS / f"simkernel-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(LIMIT))
        swap_limit = group / "memory.memsw.limit_in_bytes"
        if swap_limit.exists():  # no escape into swap either
            swap_limit.write_text(str(LIMIT))
        yield group
    finally:
        group.rmdir()


def test_memory_mapped_searches_fit_a_cap_a_quarter_of_the_data(files, memory_group):
    corpus_path, index_path = files / "corpus.npy", files / "corpus.sk"
    assert corpus_path.stat().st_size > 3 * LIMIT and index_path.stat().st_size > 3 * LIMIT
    corpus = np.load(corpus_path, mmap_mode="r")
    queries, candidates = np.load(files / "queries.npy"), np.load(files / "candidates.npy")
    want = sk.topk(queries, corpus, 10, "dot").indices.tolist()
    want_rescored = sk.rescore(queries, candidates, corpus, 10, "dot").indices.tolist()
    del corpus
    for path in (corpus_path, index_path):
        evict(path)

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(memory_group), str(corpus_path), str(index_path),
         str(files / "queries.npy"), str(files / "candidates.npy")],
        capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, f"capped child failed ({child.returncode}): {child.stderr[-2000:]}"
    found = json.loads(child.stdout)
    assert found["memmap"] == want
    assert found["parts"] == want
    assert found["index"] == want
    assert found["rescore"] == want_rescored
    # The cap was reached: the kernel reclaimed scanned file pages to stay
    # under it, which is what the test is about.
    peak = int((memory_group / "memory.max_usage_in_bytes").read_text())
    assert peak >= 0.9 * LIMIT
