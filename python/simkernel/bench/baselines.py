"""What users run today, written as they would write it: blocked
``q @ corpus.T`` and ``np.argpartition``. The numpy baseline every simkernel
figure is compared with."""

from __future__ import annotations

import numpy as np

# Bytes of temporaries per block (scores, or XOR-ed codes), as a careful user
# would bound them.
_BLOCK_BYTES = 1 << 26
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def numpy_topk(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by dot product (cosine for unit rows), or by Hamming distance for
    bit-packed corpora, one corpus block at a time."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_index = np.empty((len(queries), 0), dtype=np.int64)
    binary = corpus.dtype == np.uint8
    packed_queries = np.packbits(queries > 0, axis=1)
    row_bytes = len(queries) * (corpus.shape[1] if binary else 4)
    block_rows = max(k, _BLOCK_BYTES // max(row_bytes, 1))
    for start in range(0, len(corpus), block_rows):
        block = corpus[start:start + block_rows]
        if binary:
            xor = packed_queries[:, None, :] ^ block[None, :, :]
            scores = -_POPCOUNT[xor].sum(axis=2, dtype=np.int32).astype(np.float32)
        else:
            scores = queries @ block.astype(np.float32, copy=False).T
        part = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_scores = np.hstack([best_scores, np.take_along_axis(scores, part, 1)])
        best_index = np.hstack([best_index, part + start])
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, 1)
        best_index = np.take_along_axis(best_index, keep, 1)
    return best_scores, best_index
