"""Every library the benchmark runs, doing the same search: the scenario's
top-k over its stored corpus, on the same threads.

Each ``prepare_*`` does the untimed setup a user does once (build an index,
pack a matrix) and returns the timed search. A library that is not installed
(or not usable here) raises ImportError; the runner reports it and goes on. Peers search what
their documentation advises for the metric: inner product on unit-norm rows
for cosine, their own int8 codes for int8 (faiss trains per-dimension ranges;
usearch and numkong take int8 queries too), bits for binary.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np

import simkernel as sk

from .scenarios import Data, Scenario

Search = Callable[[], tuple[np.ndarray, np.ndarray]]
Prepare = Callable[[Scenario, Data, int], Search]

# Bytes of temporaries per block (scores, widened rows or XOR-ed codes), as a
# careful user bounds them.
_BLOCK_BYTES = 1 << 26
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Bits set per byte: numpy's own popcount where it has one (numpy >= 2)."""
    count = getattr(np, "bitwise_count", None)
    return count(x) if count is not None else _POPCOUNT[x]


def prepare_simkernel(scenario: Scenario, data: Data, threads: int) -> Search:
    def search() -> tuple[np.ndarray, np.ndarray]:
        return sk.topk(data.search_queries, data.corpus, k=scenario.k, metric=scenario.metric,
                       threads=threads)
    return search


def prepare_simkernel_avx2(scenario: Scenario, data: Data, threads: int) -> Search:
    """simkernel on its AVX2 kernels where it would choose a wider ISA
    (AVX-512): what the narrower path gives on the same CPU."""
    caps = sk.capabilities()
    if "avx2" not in caps["supported"]:
        raise ImportError("this CPU or build has no AVX2")
    if caps["isa"] == "avx2":
        raise ImportError("AVX2 is already simkernel's ISA here")
    plain = prepare_simkernel(scenario, data, threads)

    def search() -> tuple[np.ndarray, np.ndarray]:
        with sk.use_isa("avx2"):
            return plain()
    return search


def prepare_simkernel_index(scenario: Scenario, data: Data, threads: int) -> Search:
    """``sk.Index`` holding the same rows (its own copy, added in blocks):
    what an Index adds to the bare search."""
    if scenario.int8_queries:
        raise ImportError("the Index searches float queries")
    index = sk.Index(scenario.dim, scenario.metric, scenario.kind, quantizer=data.codec)
    if scenario.kind == "binary":
        index.add(data.corpus)  # bit-packed rows as they are
    else:
        for rows in _float_rows(data):
            index.add(rows)

    def search() -> tuple[np.ndarray, np.ndarray]:
        # Automatic ids are row numbers, so answers check like the others'.
        return index.search(data.queries, k=scenario.k, threads=threads)
    return search


def _top_k(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row (argpartition), in no order."""
    keys = -scores if largest else scores
    part = np.argpartition(keys, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, part, 1), part


def _best_first(scores: np.ndarray, indices: np.ndarray,
                largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """A top-k put in order, best first, as simkernel, faiss and torch return it."""
    order = np.argsort(-scores if largest else scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(indices, order, 1)


def prepare_numpy(scenario: Scenario, data: Data, threads: int) -> Search:
    """Blocked ``q @ corpus.T`` (or a popcount table for bits) + argpartition,
    then the k put in order."""
    queries, corpus, k = data.search_queries, data.corpus, scenario.k
    binary = scenario.kind == "binary"
    largest = scenario.metric in ("dot", "cosine")
    row_bytes = len(queries) * (corpus.shape[1] if binary else 4)
    block = max(k, _BLOCK_BYTES // max(row_bytes, 1))

    def block_scores(rows: np.ndarray) -> np.ndarray:
        if binary:
            return _popcount(queries[:, None, :] ^ rows[None, :, :]).sum(axis=2, dtype=np.int32)
        dots = queries @ rows.astype(np.float32, copy=False).T
        if scenario.metric != "l2":
            return dots
        norms = np.einsum("ij,ij->i", rows, rows, dtype=np.float32)
        return norms[None, :] - 2 * dots  # + |q|^2, the same for every row

    def search() -> tuple[np.ndarray, np.ndarray]:
        best_scores = np.empty((len(queries), 0), dtype=np.float32)
        best_index = np.empty((len(queries), 0), dtype=np.int64)
        for start in range(0, len(corpus), block):
            scores, cols = _top_k(block_scores(corpus[start:start + block]), k, largest)
            best_scores = np.hstack([best_scores, scores])
            best_index = np.hstack([best_index, cols + start])
            best_scores, keep = _top_k(best_scores, k, largest)
            best_index = np.take_along_axis(best_index, keep, 1)
        return _best_first(best_scores, best_index, largest)
    return search


def _int8_queries(data: Data) -> np.ndarray:
    """The queries as int8 codes of the corpus's codec (for peers that need
    queries and corpus of one type)."""
    if data.search_queries.dtype == np.int8:
        return data.search_queries
    if data.codec is None:
        raise ValueError("int8 data without its codec")
    return data.codec.encode(data.search_queries)


def _same_type_queries(scenario: Scenario, data: Data) -> np.ndarray:
    """The queries in the corpus's element type, for peers that take one type
    for both (16-bit floats rounded, int8 encoded)."""
    if scenario.kind in ("float16", "bfloat16"):
        return data.search_queries.astype(data.corpus.dtype)
    if scenario.kind == "int8":
        return _int8_queries(data)
    return data.search_queries


def _float_rows(data: Data) -> list[np.ndarray]:
    """The corpus as float32 blocks (decoded for int8), for indexes that take floats."""
    step = 65536
    blocks = []
    for start in range(0, len(data.corpus), step):
        rows = data.corpus[start:start + step]
        blocks.append(data.codec.decode(rows) if data.codec else rows.astype(np.float32, copy=False))
    return blocks


@functools.lru_cache(maxsize=None)
def fix_faiss_openblas() -> str:
    """faiss-cpu's wheels bundle an OpenBLAS (0.3.15 in faiss-cpu 1.15) that
    does not know every CPU: on an Intel Xeon Ice Lake server (family 6,
    model 106, under KVM) it fell back to its SSE3 kernels ("Core:
    Prescott"), and IndexFlatIP over 1000 x 200k x 384 took 4.9 s where it
    takes 1.06 s with its AVX-512 ones. Where a first import in a child
    process reports that fallback on a CPU with AVX2, this names the
    kernels by the CPU's features (OPENBLAS_CORETYPE, read when faiss's
    OpenBLAS loads), as a user who noticed would; a value the caller set is
    kept. Returns the value in force ("" for none)."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    cpu = set(sk.capabilities()["cpu"])
    core = "SkylakeX" if {"avx512f", "avx512bw"} <= cpu else "Haswell" if "avx2" in cpu else ""
    if not core:
        return ""
    try:
        probe = subprocess.run([sys.executable, "-c", "import faiss"], capture_output=True,
                               text=True, timeout=120,
                               env={**os.environ, "OPENBLAS_VERBOSE": "2"})
    except (OSError, subprocess.SubprocessError):
        return ""
    if "Core: Prescott" not in probe.stdout + probe.stderr:
        return ""
    os.environ["OPENBLAS_CORETYPE"] = core
    return core


def prepare_faiss(scenario: Scenario, data: Data, threads: int) -> Search:
    """IndexFlatIP / IndexFlatL2, IndexScalarQuantizer (fp16, bf16, 8-bit),
    IndexBinaryFlat; on its best BLAS kernels (fix_faiss_openblas)."""
    fix_faiss_openblas()
    import faiss

    faiss.omp_set_num_threads(threads)
    d = scenario.dim
    index: Any
    if scenario.kind == "binary":
        index = faiss.IndexBinaryFlat(d)
        index.add(data.corpus)
    else:
        metric = faiss.METRIC_L2 if scenario.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if scenario.kind == "float32":
            index = faiss.IndexFlat(d, metric)
        else:
            kind = {"float16": faiss.ScalarQuantizer.QT_fp16,
                    "bfloat16": faiss.ScalarQuantizer.QT_bf16,
                    "int8": faiss.ScalarQuantizer.QT_8bit}[scenario.kind]
            index = faiss.IndexScalarQuantizer(d, kind, metric)
        blocks = _float_rows(data) if scenario.kind != "float32" else [data.corpus]
        index.train(blocks[0])
        for rows in blocks:
            index.add(rows)

    def search() -> tuple[np.ndarray, np.ndarray]:
        scores, indices = index.search(data.search_queries, scenario.k)
        return scores, indices
    return search


def prepare_usearch(scenario: Scenario, data: Data, threads: int) -> Search:
    """``usearch.index.search(..., exact=True)``."""
    from usearch.index import MetricKind, ScalarKind, search as usearch_search

    metric = {"dot": MetricKind.IP, "cosine": MetricKind.IP, "l2": MetricKind.L2sq,
              "hamming": MetricKind.Hamming}[scenario.metric]
    queries, corpus, dtype = _same_type_queries(scenario, data), data.corpus, None
    if scenario.kind == "bfloat16":
        # usearch reads bfloat16 as raw 16-bit words with its dtype named.
        queries, corpus, dtype = queries.view(np.uint16), corpus.view(np.uint16), ScalarKind.BF16

    def search() -> tuple[np.ndarray, np.ndarray]:
        matches = usearch_search(corpus, queries, scenario.k, metric, exact=True,
                                 threads=threads, dtype=dtype)
        return np.asarray(matches.distances), np.asarray(matches.keys, dtype=np.int64)
    return search


def prepare_numkong(scenario: Scenario, data: Data, threads: int) -> Search:
    """``dots_pack`` + ``dots_packed`` (``hammings_*``, ``euclideans_packed``),
    then argpartition and the k put in order; it returns full score
    matrices, so queries go in blocks."""
    import numkong as nk

    queries = _same_type_queries(scenario, data)
    if scenario.kind == "binary":
        packed, cross, largest = nk.hammings_pack(data.corpus), nk.hammings_packed, False
    elif scenario.metric == "l2":
        packed, cross, largest = nk.dots_pack(data.corpus), nk.euclideans_packed, False
    else:
        packed, cross, largest = nk.dots_pack(data.corpus), nk.dots_packed, True
    rows_per_block = max(1, _BLOCK_BYTES // (4 * len(data.corpus)))

    def search() -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for start in range(0, len(queries), rows_per_block):
            scores = np.asarray(cross(queries[start:start + rows_per_block], packed))
            parts.append(_best_first(*_top_k(scores, scenario.k, largest), largest))
        return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
    return search


def _float32_only(scenario: Scenario, library: str) -> None:
    if scenario.kind != "float32":
        raise ImportError(f"{library} is compared on float32 corpora only")


def prepare_sklearn(scenario: Scenario, data: Data, threads: int) -> Search:
    """scikit-learn's ``NearestNeighbors(algorithm="brute")``. It has no
    inner-product metric: on the benchmark's unit-norm rows its cosine
    distance ranks as dot does."""
    from sklearn.neighbors import NearestNeighbors  # type: ignore[import-untyped]

    _float32_only(scenario, "scikit-learn")
    metric = {"dot": "cosine", "cosine": "cosine", "l2": "euclidean"}[scenario.metric]
    index = NearestNeighbors(n_neighbors=scenario.k, algorithm="brute", metric=metric,
                             n_jobs=threads).fit(data.corpus)

    def search() -> tuple[np.ndarray, np.ndarray]:
        distances, indices = index.kneighbors(data.search_queries)
        return distances, indices
    return search


def prepare_torch(scenario: Scenario, data: Data, threads: int) -> Search:
    """Blocked ``q @ corpus.T`` + ``torch.topk``, only where torch is already
    installed (the bench extra does not pull it in)."""
    import torch  # type: ignore[import-not-found]  # optional: only where installed

    _float32_only(scenario, "torch")
    torch.set_num_threads(threads)
    queries, corpus = torch.from_numpy(data.search_queries), torch.from_numpy(data.corpus)
    largest = scenario.metric in ("dot", "cosine")
    block = max(scenario.k, _BLOCK_BYTES // (4 * len(queries)))

    def search() -> tuple[np.ndarray, np.ndarray]:
        best_scores = torch.empty((len(queries), 0))
        best_index = torch.empty((len(queries), 0), dtype=torch.int64)
        with torch.inference_mode():
            for start in range(0, len(corpus), block):
                rows = corpus[start:start + block]
                scores = queries @ rows.T
                if scenario.metric == "l2":  # + |q|^2, the same for every row
                    scores = torch.einsum("ij,ij->i", rows, rows)[None, :] - 2 * scores
                top = torch.topk(scores, min(scenario.k, scores.shape[1]), dim=1, largest=largest)
                merged = torch.cat([best_scores, top.values], dim=1)
                merged_index = torch.cat([best_index, top.indices + start], dim=1)
                keep = torch.topk(merged, min(scenario.k, merged.shape[1]), dim=1, largest=largest)
                best_scores = keep.values
                best_index = torch.gather(merged_index, 1, keep.indices)
        return best_scores.numpy(), best_index.numpy()
    return search


def prepare_sentence_transformers(scenario: Scenario, data: Data, threads: int) -> Search:
    """``sentence_transformers.util.semantic_search`` (cosine or dot), only
    where it is already installed."""
    import torch  # type: ignore[import-not-found]  # optional: only where installed
    from sentence_transformers import util  # type: ignore[import-not-found]

    _float32_only(scenario, "sentence-transformers")
    if scenario.metric not in ("cosine", "dot"):
        raise ImportError("semantic_search scores by cosine or dot only")
    torch.set_num_threads(threads)
    queries, corpus = torch.from_numpy(data.search_queries), torch.from_numpy(data.corpus)
    score = util.cos_sim if scenario.metric == "cosine" else util.dot_score

    def search() -> tuple[np.ndarray, np.ndarray]:
        hits = util.semantic_search(queries, corpus, top_k=scenario.k, score_function=score)
        scores = np.array([[hit["score"] for hit in row] for row in hits], dtype=np.float32)
        indices = np.array([[hit["corpus_id"] for hit in row] for row in hits], dtype=np.int64)
        return scores, indices
    return search


LIBRARIES: dict[str, Prepare] = {
    "simkernel": prepare_simkernel,
    "simkernel-avx2": prepare_simkernel_avx2,
    "simkernel-index": prepare_simkernel_index,
    "numpy": prepare_numpy,
    "faiss": prepare_faiss,
    "usearch": prepare_usearch,
    "numkong": prepare_numkong,
    "scikit-learn": prepare_sklearn,
    "torch": prepare_torch,
    "sentence-transformers": prepare_sentence_transformers,
}
