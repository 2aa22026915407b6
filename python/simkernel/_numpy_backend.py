"""The pure-numpy backend: the reference every native path is held to, and the
fallback where the extension cannot load.

It works block by block and keeps only a running top-k per query, so its
memory stays bounded however large the corpus (never a q x n score matrix).
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from ._inputs import HIGHER_IS_BETTER, SearchArgs, non_finite_error, too_many_results_error

name = "numpy"

_QUERY_BLOCK = 1024
# Scores held at once per block (4 MiB of float32: with the float64 keys,
# partitions and masks a block needs, about 40 MiB of temporaries), and bytes
# of corpus rows widened to float at once.
_BLOCK_SCORES = 1 << 20
_BLOCK_WIDENED_BYTES = 1 << 26


# A squared distance below this share of |q|^2 + |c|^2 lost too many bits to
# cancellation in |q|^2 + |c|^2 - 2 q.c (float64 keeps ~53 - 10 of them
# there, 24 are returned): such pairs are summed again as (q - c)^2.
_CANCELLED = 2.0**-10
# Pair differences held at once by that recomputation.
_DIFFERENCE_ELEMENTS = 1 << 22


def _corpus_block_rows(args: SearchArgs, query_rows: int) -> int:
    widened_row_bytes = 8 * max(args.dim, 1)
    return max(1, min(_BLOCK_SCORES // max(query_rows, 1),
                      _BLOCK_WIDENED_BYTES // widened_row_bytes))


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _unpack_bits(bits: np.ndarray, count: int, dtype: type) -> np.ndarray:
    return np.unpackbits(bits, axis=1, count=count).astype(dtype)


def _float_rows(args: SearchArgs, rows: np.ndarray) -> np.ndarray:
    """Corpus rows as float64 (exact for every stored type); bits become +1 / -1,
    Int8Codes the vectors they decode to."""
    if args.pair == "f32_bits":
        return _unpack_bits(rows, args.dim, np.float64) * 2.0 - 1.0
    if args.affine is not None:
        steps, offsets, _ = args.affine
        return offsets.astype(np.float64) + steps.astype(np.float64) * rows
    return rows.astype(np.float64)


def _sqnorms(rows: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", rows, rows)


def _float_scores(args: SearchArgs, q32: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # In float64, rounded once to float32 at the end: products of float32
    # values are exact in float64 and the sums keep ~29 bits more than are
    # returned, so how BLAS blocks the product (which changes with the
    # number of queries and rows) is invisible in all but ~1e-8 of scores,
    # and float32's range cannot overflow or underflow a norm.
    q, c = q32.astype(np.float64), _float_rows(args, rows)
    dots = q @ c.T
    if args.metric == "dot":
        return _finite_float32(args, dots)
    q_norms = _sqnorms(q)
    c_norms = np.full(len(c), float(args.dim)) if args.pair == "f32_bits" else _sqnorms(c)
    if args.metric == "cosine":
        return _finite_float32(args, _cosine(dots, np.sqrt(q_norms)[:, None] * np.sqrt(c_norms)))
    sizes = q_norms[:, None] + c_norms[None, :]
    squared = np.maximum(sizes - 2 * dots, 0.0)
    _sum_cancelled_again(squared, sizes, q, c)
    return _finite_float32(args, squared if args.metric == "sqeuclidean" else np.sqrt(squared))


def _sum_cancelled_again(squared: np.ndarray, sizes: np.ndarray, q: np.ndarray,
                         c: np.ndarray) -> None:
    """Replaces the squared distances that cancellation left inaccurate by
    sums of (q - c)^2: so a vector is at distance exactly 0 from itself."""
    qi, cj = np.nonzero(squared < _CANCELLED * sizes)
    step = max(1, _DIFFERENCE_ELEMENTS // max(q.shape[1], 1))
    for start in range(0, len(qi), step):
        i, j = qi[start:start + step], cj[start:start + step]
        difference = q[i] - c[j]
        squared[i, j] = np.einsum("ij,ij->i", difference, difference)


def _finite_float32(args: SearchArgs, values: np.ndarray) -> np.ndarray:
    """float32 scores; a NaN or infinity, in the inputs or past float32's
    range, is the native core's ValueError."""
    scores = values.astype(np.float32)
    if not np.isfinite(scores).all():
        raise non_finite_error(args)
    return scores


def _cosine(dots: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """u.v / (|u||v|), and 0 where either vector is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, 0.0, dots / denominator)


def _inverse_norms(norms2: np.ndarray) -> np.ndarray:
    return np.divide(1.0, np.sqrt(norms2), out=np.zeros_like(norms2), where=norms2 > 0)


def _int8_scores(args: SearchArgs, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # float64 holds every int8 product sum exactly (|sum| < 2**30 < 2**53), and
    # runs on BLAS, unlike numpy's integer matmul.
    q64, c64 = q.astype(np.float64), rows.astype(np.float64)
    dots = q64 @ c64.T
    if args.metric == "dot":
        return dots.astype(np.int32)
    q_norms, c_norms = _sqnorms(q64), _sqnorms(c64)
    if args.metric == "cosine":
        # dots * (1/|q| * 1/|c|) in float64, in the native core's order, so
        # the two agree bit for bit; 0 where either vector is zero.
        inverse = _inverse_norms(q_norms)[:, None] * _inverse_norms(c_norms)[None, :]
        return (dots * inverse).astype(np.float32)
    squared = q_norms[:, None] + c_norms[None, :] - 2 * dots
    if args.metric == "sqeuclidean":
        return squared.astype(np.int32)
    return np.sqrt(squared).astype(np.float32)


def _hamming_scores(args: SearchArgs, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    # popcount(a ^ b) = popcount(a) + popcount(b) - 2 popcount(a & b), the last
    # a 0/1 matrix product; float32 is exact while counts stay below 2**24.
    dtype = np.float32 if args.dim < 2**24 else np.float64
    qb, cb = _unpack_bits(q, args.dim, dtype), _unpack_bits(rows, args.dim, dtype)
    common = qb @ cb.T
    return (qb.sum(1)[:, None] + cb.sum(1)[None, :] - 2 * common).astype(np.int32)


def score_block(args: SearchArgs, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The metric's values for queries ``q`` against corpus ``rows``, as returned."""
    if args.pair == "bits_bits":
        return _hamming_scores(args, q, rows)
    if args.pair == "i8_i8":
        return _int8_scores(args, q, rows)
    # A NaN or infinity is reported as a ValueError by the finiteness checks,
    # without numpy's warnings about the arithmetic on the way.
    with np.errstate(invalid="ignore", over="ignore"):
        return _float_scores(args, q, rows)


def keys_of(metric: str, scores: np.ndarray) -> np.ndarray:
    """Scores as float64 keys where higher is better (exact for float32, int32)."""
    keys = scores.astype(np.float64)
    return keys if HIGHER_IS_BETTER[metric] else -keys


def _block_best(keys: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k best keys per row (in no order), ties to the lower column."""
    n = keys.shape[1]
    if k >= n:
        return np.broadcast_to(np.arange(n), keys.shape)
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(keys, part, axis=1).min(axis=1, keepdims=True)
    better = keys > kth
    tied = keys == kth
    wanted_ties = k - better.sum(axis=1, keepdims=True)
    take = better | (tied & (np.cumsum(tied, axis=1) <= wanted_ties))
    return np.nonzero(take)[1].reshape(keys.shape[0], k)


def sorted_best(keys: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (key, index) per row, best first, ties to the lower index."""
    order = np.lexsort((index, -keys), axis=1)[:, :k]
    return np.take_along_axis(keys, order, axis=1), np.take_along_axis(index, order, axis=1)


def write_results(metric: str, keys: np.ndarray, index: np.ndarray,
                  scores: np.ndarray, indices: np.ndarray) -> None:
    """Writes sorted (keys, index) as results, in the dtype of ``scores``;
    -inf keys (filtered rows) become padding: index -1, score NaN (0 for
    int32 scores)."""
    padding = keys == -np.inf
    values = np.where(padding, 0.0, keys)
    scores[...] = values if HIGHER_IS_BETTER[metric] else -values
    if scores.dtype.kind == "f":
        scores[padding] = np.nan
    indices[...] = np.where(padding, -1, index)


def topk(args: SearchArgs, k: int, threads: int,
         allowed: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    q_all, corpus = args.queries, args.corpus
    nq, n = q_all.shape[0], corpus.shape[0]
    kk = min(k, n)
    scores = np.empty((nq, kk), dtype=args.score_dtype)
    indices = np.empty((nq, kk), dtype=np.int64)
    if kk == 0:
        return scores, indices
    for qs in _blocks(nq, _QUERY_BLOCK):
        q = q_all[qs]
        best_keys = np.empty((len(q), 0))
        best_index = np.empty((len(q), 0), dtype=np.int64)
        for cs in _blocks(n, _corpus_block_rows(args, len(q))):
            keys = keys_of(args.metric, score_block(args, q, corpus[cs]))
            if allowed is not None:
                keys[~np.broadcast_to(_allowed_block(allowed, qs, cs), keys.shape)] = -np.inf
            cols = _block_best(keys, min(kk, keys.shape[1]))
            best_keys, best_index = sorted_best(
                np.hstack([best_keys, np.take_along_axis(keys, cols, axis=1)]),
                np.hstack([best_index, cols + cs.start]), kk)
        write_results(args.metric, best_keys, best_index, scores[qs], indices[qs])
    return scores, indices


def _allowed_block(allowed: np.ndarray, qs: slice, cs: slice) -> np.ndarray:
    """The filter bitmap as booleans for queries ``qs`` x rows ``cs``."""
    bits = allowed if allowed.shape[0] == 1 else allowed[qs]
    first_byte = cs.start // 8
    unpacked = np.unpackbits(bits[:, first_byte:(cs.stop + 7) // 8], axis=1, bitorder="little")
    return unpacked[:, cs.start - 8 * first_byte:cs.stop - 8 * first_byte].astype(bool)


def cdist(args: SearchArgs, threads: int, out: np.ndarray) -> np.ndarray:
    nq, n = args.queries.shape[0], args.corpus.shape[0]
    for qs in _blocks(nq, _QUERY_BLOCK):
        for cs in _blocks(n, _corpus_block_rows(args, qs.stop - qs.start)):
            out[qs, cs] = score_block(args, args.queries[qs], args.corpus[cs])
    return out


def rescore(args: SearchArgs, candidates: np.ndarray, k: int,
            threads: int) -> tuple[np.ndarray, np.ndarray]:
    nq, m = candidates.shape
    kk = min(k, m)
    scores = np.empty((nq, kk), dtype=args.score_dtype)
    indices = np.empty((nq, kk), dtype=np.int64)
    if kk == 0:
        return scores, indices
    for i in range(nq):
        # Negative candidates are padding from a filtered first stage.
        rows = candidates[i][candidates[i] >= 0]
        keys = np.full((1, m), -np.inf)
        index = np.full((1, m), -1, dtype=np.int64)
        # Fancy indexing reads only these rows, also from a memmap.
        keys[:, :len(rows)] = keys_of(args.metric, score_block(args, args.queries[i:i + 1],
                                                      args.corpus[rows]))
        index[:, :len(rows)] = rows
        best_keys, best_index = sorted_best(keys, index, kk)
        write_results(args.metric, best_keys, best_index, scores[i:i + 1],
                      indices[i:i + 1])
    return scores, indices


def range_search(args: SearchArgs, threshold: float, max_results: int, threads: int,
                 allowed: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q_all, corpus = args.queries, args.corpus
    nq, n = q_all.shape[0], corpus.shape[0]
    higher = HIGHER_IS_BETTER[args.metric]
    queries, rows, values = [], [], []
    held = 0
    for qs in _blocks(nq, _QUERY_BLOCK):
        q = q_all[qs]
        for cs in _blocks(n, _corpus_block_rows(args, len(q))):
            scores = score_block(args, q, corpus[cs])
            # Compared in float64, as the native core compares (exactly).
            wide = scores.astype(np.float64)
            hit = wide >= threshold if higher else wide <= threshold
            if allowed is not None:
                hit &= _allowed_block(allowed, qs, cs)
            # Counted before the hits are gathered: past the cap, none is held.
            held += int(np.count_nonzero(hit))
            if held > max_results:
                raise too_many_results_error(max_results)
            qi, cj = np.nonzero(hit)
            queries.append(qi + qs.start)
            rows.append(cj + cs.start)
            values.append(scores[qi, cj])
    query = np.concatenate(queries) if queries else np.empty(0, np.int64)
    row = np.concatenate(rows).astype(np.int64) if rows else np.empty(0, np.int64)
    value = np.concatenate(values) if values else np.empty(0, args.score_dtype)
    # Per query, best first, ties to the lower row.
    key = value.astype(np.float64)
    order = np.lexsort((row, -key if higher else key, query))
    lims = np.searchsorted(query[order], np.arange(nq + 1)).astype(np.int64)
    return lims, value[order].astype(args.score_dtype), row[order]
