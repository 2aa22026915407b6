"""simkernel.compat keeps sentence-transformers' documented contract:
quantize_embeddings' layouts value for value, semantic_search's hits and
format, and the two-stage search over every precision (their
semantic_search_faiss / _usearch), on random and real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

import simkernel as sk
from conftest import DATA
from simkernel import compat


def embeddings(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def their_levels(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Their uint8 level: floor((x - min) / step), step = (max - min) / 255 in
    float32, clipped to [0, 255]."""
    ranges = ranges.astype(np.float32)
    return np.clip(np.floor((x - ranges[0]) / ((ranges[1] - ranges[0]) / 255)), 0, 255)


def exact_top(queries: np.ndarray, corpus: np.ndarray, k: int, cosine: bool = True):
    q, c = queries.astype(np.float64), corpus.astype(np.float64)
    if cosine:
        q, c = q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
    scores = q @ c.T
    order = np.lexsort((np.broadcast_to(np.arange(len(c)), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def ids(hits) -> np.ndarray:
    return np.array([[h["corpus_id"] for h in row] for row in hits])


# quantize_embeddings


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_int8_and_uint8_levels_are_theirs_value_for_value(dtype):
    x = embeddings(500, 48, 0).astype(dtype)
    ranges = np.vstack([x.min(axis=0), x.max(axis=0)])
    levels = their_levels(x, ranges)
    np.testing.assert_array_equal(compat.quantize_embeddings(x, "uint8", ranges=ranges),
                                  levels.astype(np.uint8))
    np.testing.assert_array_equal(compat.quantize_embeddings(x, "int8", ranges=ranges),
                                  (levels - 128).astype(np.int8))
    with pytest.raises(ValueError, match="single embedding"):
        compat.quantize_embeddings(x[:1], "int8")
    # Ranges from calibration embeddings, or (their default) from x itself.
    np.testing.assert_array_equal(compat.quantize_embeddings(x, "int8", calibration_embeddings=x),
                                  compat.quantize_embeddings(x, "int8"))


def test_binary_layouts_are_packed_sign_bits():
    x = embeddings(20, 64, 1)
    packed = np.packbits(x > 0, axis=-1)
    np.testing.assert_array_equal(compat.quantize_embeddings(x, "ubinary"), packed)
    signed = compat.quantize_embeddings(x, "binary")
    assert signed.dtype == np.int8
    np.testing.assert_array_equal(signed, (packed.astype(np.int16) - 128).astype(np.int8))
    assert compat.quantize_embeddings(x, "float32").dtype == np.float32


def test_values_outside_the_ranges_clip_to_the_end_levels():
    ranges = np.array([[0.0, -1.0], [1.0, 1.0]])
    codes = compat.quantize_embeddings(np.array([[-5.0, 0.0], [5.0, 2.0]]), "uint8", ranges=ranges)
    np.testing.assert_array_equal(codes, [[0, 127], [255, 255]])


def test_tensors_and_lists_are_read_like_arrays():
    x = embeddings(10, 16, 2)
    want = compat.quantize_embeddings(x, "ubinary")


    class DLPackOnly:  # what a tensor offers, and nothing numpy reads otherwise
        def __dlpack__(self, **kwargs):
            return x.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return x.__dlpack_device__()

    dlpack_like = DLPackOnly()
    np.testing.assert_array_equal(compat.quantize_embeddings(list(x), "ubinary"), want)
    np.testing.assert_array_equal(compat.quantize_embeddings(dlpack_like, "ubinary"), want)


@pytest.mark.parametrize("call, error, message", [
    (lambda: compat.quantize_embeddings(np.zeros((2, 3), np.int8), "int8"), TypeError, "float"),
    (lambda: compat.quantize_embeddings(np.zeros((2, 3)), "int4"), ValueError, "precision"),
    (lambda: compat.quantize_embeddings(np.zeros((2, 3)), "int8", ranges=np.zeros((2, 4))),
     ValueError, r"shape \(2, 3\)"),
    (lambda: compat.semantic_search(np.zeros((1, 3)), np.zeros((2, 3)), score_function="l1"),
     ValueError, "score_function"),
    (lambda: compat.semantic_search(np.zeros((1, 3)), np.zeros((2, 3), np.int8)), TypeError,
     "semantic_search_simkernel"),
    (lambda: compat.semantic_search_simkernel(np.zeros((1, 3))), ValueError, "exactly one"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


# semantic_search


@pytest.mark.parametrize("score_function", ["cos_sim", "dot_score"])
def test_semantic_search_gives_the_exact_hits_in_their_format(backend, score_function):
    corpus = embeddings(3000, 32, 3) * np.random.default_rng(4).uniform(0.5, 2, (3000, 1))
    queries = embeddings(25, 32, 5)
    hits = compat.semantic_search(queries, corpus, top_k=7, score_function=score_function)
    want_scores, want_ids = exact_top(queries, corpus, 7, cosine=score_function == "cos_sim")
    assert len(hits) == 25 and all(len(row) == 7 for row in hits)
    assert all(set(h) == {"corpus_id", "score"} and type(h["corpus_id"]) is int
               and type(h["score"]) is float for row in hits for h in row)
    np.testing.assert_array_equal(ids(hits), want_ids)
    np.testing.assert_allclose([[h["score"] for h in row] for row in hits], want_scores,
                               rtol=1e-5, atol=1e-5)


def test_a_named_score_function_callable_takes_the_fast_path_and_others_their_chunks():
    corpus, queries = embeddings(500, 16, 6), embeddings(9, 16, 7)

    def dot_score(a, b):  # the name sentence_transformers.util.dot_score has
        raise AssertionError("a known score function is computed by simkernel")

    fast = compat.semantic_search(queries, corpus, top_k=5, score_function=dot_score)

    def my_dot(a, b):
        return np.asarray(a, np.float64) @ np.asarray(b, np.float64).T

    chunked = compat.semantic_search(queries, corpus, top_k=5, score_function=my_dot,
                                     query_chunk_size=4, corpus_chunk_size=64)
    np.testing.assert_array_equal(ids(fast), ids(chunked))


def test_euclidean_sim_is_the_negated_distance():
    corpus, queries = embeddings(400, 8, 8) * 3, embeddings(4, 8, 9)
    hits = compat.semantic_search(queries, corpus, top_k=3, score_function="euclidean_sim")
    distances = np.linalg.norm(queries[:, None, :] - corpus[None], axis=2)
    np.testing.assert_array_equal(ids(hits), np.argsort(distances, axis=1, kind="stable")[:, :3])
    assert all(h["score"] <= 0 for row in hits for h in row)


def test_one_query_and_top_k_past_the_corpus():
    corpus = embeddings(5, 8, 10)
    hits = compat.semantic_search(corpus[2], corpus, top_k=50)
    assert len(hits) == 1 and len(hits[0]) == 5 and hits[0][0]["corpus_id"] == 2


# semantic_search_simkernel


def their_binary_two_stage(queries, bits, k, multiplier):
    """Their documented binary search: Hamming top k * multiplier of the
    queries' sign bits, then the float queries' dot with the candidates'
    unpacked bits (0 / 1)."""
    query_bits = np.unpackbits(np.packbits(queries > 0, axis=-1), axis=-1).astype(np.int64)
    corpus_bits = np.unpackbits(bits, axis=-1).astype(np.int64)
    hamming = (query_bits[:, None, :] != corpus_bits[None]).sum(-1)
    first = np.argsort(hamming, axis=1, kind="stable")[:, :k * multiplier]
    scores = np.einsum("ij,ikj->ik", queries.astype(np.float64), corpus_bits[first])
    order = np.lexsort((first, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(first, order, axis=1)


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_binary_two_stage_search_is_theirs(backend, precision):
    corpus, queries = embeddings(2000, 64, 11), embeddings(15, 64, 12)
    codes = compat.quantize_embeddings(corpus, precision)
    hits, seconds, index = compat.semantic_search_simkernel(
        queries, codes, corpus_precision=precision, top_k=10, rescore_multiplier=4,
        output_index=True)
    want_scores, want_ids = their_binary_two_stage(queries, np.packbits(corpus > 0, axis=-1), 10, 4)
    np.testing.assert_array_equal(ids(hits), want_ids)
    np.testing.assert_allclose([[h["score"] for h in row] for row in hits], want_scores,
                               rtol=1e-5, atol=1e-5)
    assert seconds >= 0
    again, _ = compat.semantic_search_simkernel(queries, corpus_index=index,
                                                corpus_precision=precision, top_k=10,
                                                rescore_multiplier=4)
    assert again == hits


def test_binary_without_rescoring_ranks_by_hamming_distance(backend):
    corpus, queries = embeddings(300, 32, 13), embeddings(4, 32, 14)
    codes = compat.quantize_embeddings(corpus, "ubinary")
    hits, _ = compat.semantic_search_simkernel(queries, codes, corpus_precision="ubinary",
                                               top_k=5, rescore=False)
    distances = (np.unpackbits(codes, axis=1)[None] != (queries[:, None, :] > 0)).sum(-1)
    np.testing.assert_array_equal(ids(hits), np.argsort(distances, axis=1, kind="stable")[:, :5])
    np.testing.assert_array_equal([[h["score"] for h in row] for row in hits],
                                  np.sort(distances, axis=1)[:, :5])


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_int8_corpora_are_searched_as_their_decoded_vectors(backend, precision):
    corpus, queries = embeddings(2000, 32, 15), embeddings(12, 32, 16)
    ranges = np.vstack([corpus.min(axis=0), corpus.max(axis=0)])
    codes = compat.quantize_embeddings(corpus, precision, ranges=ranges)
    hits, _ = compat.semantic_search_simkernel(queries, codes, corpus_precision=precision,
                                               top_k=10, ranges=ranges)
    step = (ranges[1] - ranges[0]) / 255
    levels = codes.astype(np.float64) + (128 if precision == "int8" else 0)
    decoded = ranges[0] + levels * step
    want_scores, want_ids = exact_top(queries, decoded, 10, cosine=False)
    np.testing.assert_array_equal(ids(hits), want_ids)
    np.testing.assert_allclose([[h["score"] for h in row] for row in hits], want_scores,
                               rtol=1e-5, atol=1e-5)


def test_float32_corpus_is_an_exact_inner_product_search(backend):
    corpus, queries = embeddings(1000, 24, 17), embeddings(6, 24, 18)
    hits, _ = compat.semantic_search_simkernel(queries, corpus, top_k=4, rescore=False)
    np.testing.assert_array_equal(ids(hits), exact_top(queries, corpus, 4, cosine=False)[1])


@pytest.mark.skipif(not (DATA / "corpus.npy").exists(), reason=f"no shared embeddings at {DATA}")
def test_their_int8_codes_keep_the_exact_top10_on_real_embeddings():
    # Searched as raw numbers their codes keep 0.894 of the exact top-10
    # (cosine); as the vectors they decode to 0.994, what the decoded
    # vectors keep (all 2,000 queries).
    corpus = np.load(DATA / "corpus.npy").astype(np.float32)
    queries = np.load(DATA / "queries.npy")[:300].astype(np.float32)
    exact = sk.topk(queries, corpus, 10, "dot").indices
    codes = compat.quantize_embeddings(corpus, "int8", calibration_embeddings=corpus)
    hits, _ = compat.semantic_search_simkernel(queries, codes, corpus_precision="int8", top_k=10,
                                               calibration_embeddings=corpus)
    found = ids(hits)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert overlap >= 0.99
    raw = sk.topk(queries, codes, 10, "cosine").indices
    raw_overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(raw, exact)])
    assert raw_overlap < overlap


# Against sentence-transformers itself, where it is installed (CI installs it
# beside the CPU torch wheel).


def theirs():
    pytest.importorskip("torch")
    return pytest.importorskip("sentence_transformers.util.quantization",
                               reason="sentence-transformers is not installed")


def their_util():
    theirs()
    from sentence_transformers import util
    return util


@pytest.mark.parametrize("precision", compat.PRECISIONS)
def test_quantize_embeddings_equals_theirs(precision):
    module = theirs()
    x = embeddings(700, 96, 20) * np.float32(3)
    calibration = embeddings(1000, 96, 21) * np.float32(3)
    for kwargs in ({}, {"calibration_embeddings": calibration},
                   {"ranges": np.vstack([calibration.min(0), calibration.max(0)])}):
        want = module.quantize_embeddings(x, precision, **kwargs)
        got = compat.quantize_embeddings(x, precision, **kwargs)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("score_function", ["cos_sim", "dot_score"])
def test_semantic_search_equals_theirs_on_torch_tensors(score_function):
    util = their_util()
    import torch
    corpus = torch.from_numpy(embeddings(4000, 64, 22) * 2)
    queries = torch.from_numpy(embeddings(30, 64, 23))
    function = getattr(util, score_function)
    want = util.semantic_search(queries, corpus, top_k=12, score_function=function)
    got = compat.semantic_search(queries, corpus, top_k=12, score_function=function)
    np.testing.assert_array_equal(ids(got), ids(want))
    np.testing.assert_allclose([[h["score"] for h in row] for row in got],
                               [[h["score"] for h in row] for row in want], rtol=1e-5, atol=1e-5)
    listed = compat.semantic_search(list(queries), list(corpus), top_k=12, score_function=function)
    assert ids(listed).tolist() == ids(got).tolist()


@pytest.mark.parametrize("precision", ["ubinary", "int8"])
def test_two_stage_search_equals_theirs(precision):
    module = theirs()
    pytest.importorskip("faiss" if precision == "ubinary" else "usearch")
    corpus, queries = embeddings(3000, 64, 24), embeddings(20, 64, 25)
    codes = module.quantize_embeddings(corpus, precision, calibration_embeddings=corpus)
    search = module.semantic_search_faiss if precision == "ubinary" else module.semantic_search_usearch
    # usearch's int8 first stage is approximate-free but ties its own way; a
    # deep enough first stage leaves the rescored top-10 to the scores.
    want, _ = search(queries, codes, corpus_precision=precision, top_k=10, rescore_multiplier=40,
                     calibration_embeddings=corpus)
    got, _ = compat.semantic_search_simkernel(queries, codes, corpus_precision=precision, top_k=10,
                                              rescore_multiplier=40, calibration_embeddings=corpus)
    np.testing.assert_array_equal(ids(got), ids(want))
    np.testing.assert_allclose([[h["score"] for h in row] for row in got],
                               [[h["score"] for h in row] for row in want], rtol=1e-5, atol=1e-5)
