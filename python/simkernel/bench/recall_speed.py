"""Recall against speed for every storage (issues 4 and 6): each
`simkernel.quality` configuration as an Index, timed on the same queries in
interleaved rounds, its top-k held to exact float32 search and, where the
data has them, to the relevant rows (qrels).

``--data DIR`` takes real embeddings in the ``shared/data`` layout
(``corpus.npy``, ``queries.npy``, ``qrels.npy``); without it, synthetic
clustered ones (see `synthetic`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np

import simkernel as sk
from simkernel import quality

from .run import timed
from .scenarios import unit

NAME = "quality"
K = 10
SYNTHETIC_ROWS = 40_000
SYNTHETIC_QUERIES = 1000
DIM = 384


@dataclass
class Row:
    name: str
    seconds: float
    recall: float
    hit_rate: Optional[float]
    ndcg: Optional[float]
    nbytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], str]:
    """corpus, queries (float32), qrels or None, and a description."""
    corpus = np.load(folder / "corpus.npy").astype(np.float32)
    queries = np.load(folder / "queries.npy").astype(np.float32)
    qrels_path = folder / "qrels.npy"
    qrels = np.load(qrels_path) if qrels_path.exists() else None
    return corpus, queries, qrels, f"{folder.name}: {corpus.shape[0]} x {corpus.shape[1]}"


def synthetic(scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, None, str]:
    """Clustered unit vectors (400 centres, each row its centre plus a larger
    random offset), so rows have near neighbours as real embeddings do, and
    queries near known rows. Without structure, every row's neighbours are
    near-ties and no quantization could keep them. There are no qrels: the
    known rows are too easy to find to say anything."""
    rng = np.random.default_rng(seed)
    n = max(2000, round(SYNTHETIC_ROWS * min(1.0, 20 * scale)))
    centres = unit(rng.standard_normal((400, DIM), dtype=np.float32))
    offsets = unit(rng.standard_normal((n, DIM), dtype=np.float32))
    corpus = unit(centres[rng.integers(0, len(centres), n)] + 1.5 * offsets)
    near = rng.choice(n, size=min(SYNTHETIC_QUERIES, n), replace=False)
    queries = corpus[near] + 0.7 * unit(rng.standard_normal((len(near), DIM), dtype=np.float32))
    return corpus, queries, None, f"synthetic clustered: {n} x {DIM}"


def measure(corpus: np.ndarray, queries: np.ndarray, qrels: Optional[np.ndarray],
            threads: int, rounds: int) -> list[Row]:
    exact = sk.topk(queries, corpus, k=K, metric="cosine", threads=threads).indices
    indexes = quality.build_indexes(corpus, "cosine")
    found = {name: index.search(queries, k=K, threads=threads).indices
             for name, index in indexes.items()}
    times: dict[str, list[float]] = {name: [] for name in indexes}
    for _ in range(rounds):
        for name, index in indexes.items():
            times[name].append(timed(partial(index.search, queries, k=K, threads=threads)))
    return [Row(name, statistics.median(times[name]), quality.recall_at_k(found[name], exact),
                None if qrels is None else quality.hit_rate_at_k(found[name], qrels),
                None if qrels is None else quality.ndcg_at_k(found[name], qrels),
                index.nbytes)
            for name, index in indexes.items()]


def table(rows: list[Row]) -> list[str]:
    base = next(r.seconds for r in rows if r.name == "float32")
    lines = ["| storage (cosine, k=10) | ms | vs float32 | recall@10 vs exact | "
             "recall@10 of qrels | nDCG@10 | MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        qrel = "" if r.hit_rate is None else f"{r.hit_rate:.3f}"
        ndcg = "" if r.ndcg is None else f"{r.ndcg:.3f}"
        lines.append(f"| {r.name} | {1e3 * r.seconds:.1f} | {base / r.seconds:.2f}x | "
                     f"{r.recall:.3f} | {qrel} | {ndcg} | {r.nbytes / 2**20:.1f} |")
    return lines
