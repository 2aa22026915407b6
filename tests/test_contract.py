"""docs/semantics.md, one rule per test, on every backend."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import simkernel as sk

FLOAT_METRICS = ["dot", "cosine", "sqeuclidean", "l2"]
HALF_TYPES = [np.float16, ml_dtypes.bfloat16]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def test_result_is_a_named_tuple_of_scores_and_indices(backend, rng):
    corpus = rng.standard_normal((50, 8)).astype(np.float32)
    result = sk.topk(corpus[:3], corpus, k=4)
    scores, indices = result
    assert scores is result.scores and indices is result.indices
    assert scores.dtype == np.float32 and indices.dtype == np.int64


@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_results_are_sorted_best_first(backend, rng, metric):
    corpus = rng.standard_normal((300, 16)).astype(np.float32)
    scores, _ = sk.topk(rng.standard_normal((5, 16)), corpus, k=20, metric=metric)
    order = -1 if metric in ("dot", "cosine") else 1
    assert (np.diff(order * scores, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_ties_go_to_the_lower_row(backend, metric):
    # Rows 1, 4 and 6 are identical, so they tie under every metric.
    corpus = np.zeros((8, 4), dtype=np.float32)
    corpus[:] = [[-1, 0, 0, 0]]
    corpus[[1, 4, 6]] = [1, 1, 0, 0]
    _, indices = sk.topk(np.array([1, 1, 0, 0], dtype=np.float32), corpus, k=2, metric=metric)
    assert indices.tolist() == [1, 4]


def test_ties_go_to_the_lower_row_across_blocks(backend):
    # Far apart, in different blocks and thread slices.
    corpus = np.full((5000, 3), -1.0, dtype=np.float32)
    corpus[[4321, 17, 2500, 4999]] = [1, 1, 1]
    _, indices = sk.topk(np.ones((3, 3), dtype=np.float32), corpus, k=3, metric="dot", threads=2)
    assert indices.tolist() == [[17, 2500, 4321]] * 3


def test_integer_ties_go_to_the_lower_row(backend):
    codes = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.int8)
    scores, indices = sk.topk(np.array([[0, 1]], dtype=np.int8), codes, k=3, metric="dot")
    assert indices.tolist() == [[1, 3, 0]] and scores.tolist() == [[1, 1, 0]]


def test_k_above_corpus_size_returns_every_row_without_padding(backend, rng):
    corpus = rng.standard_normal((5, 3)).astype(np.float32)
    scores, indices = sk.topk(corpus, corpus, k=9)
    assert scores.shape == indices.shape == (5, 5)
    assert sorted(indices[0].tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_a_value_error(backend, rng, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        sk.topk(np.ones((1, 3)), np.ones((4, 3)), k=k)


def test_empty_corpus_gives_empty_results(backend):
    scores, indices = sk.topk(np.ones((3, 4)), np.empty((0, 4), dtype=np.float32), k=5)
    assert scores.shape == indices.shape == (3, 0)
    assert sk.cdist(np.ones((3, 4)), np.empty((0, 4))).shape == (3, 0)


def test_empty_queries_give_empty_results(backend):
    scores, indices = sk.topk(np.empty((0, 4)), np.ones((6, 4)), k=2)
    assert scores.shape == indices.shape == (0, 2)
    assert sk.cdist(np.empty((0, 4)), np.ones((6, 4))).shape == (0, 6)


def test_one_dimensional_query_gives_one_dimensional_results(backend, rng):
    corpus = rng.standard_normal((20, 6)).astype(np.float32)
    scores, indices = sk.topk(corpus[3], corpus, k=4)
    assert scores.shape == indices.shape == (4,)
    assert indices[0] == 3
    assert sk.cdist(corpus[3], corpus).shape == (20,)


def test_cosine_with_a_zero_vector_is_zero(backend):
    corpus = np.array([[0, 0, 0], [1, 2, 3], [-1, -2, -3]], dtype=np.float32)
    assert sk.cdist(np.zeros((1, 3)), corpus, metric="cosine").tolist() == [[0, 0, 0]]
    assert sk.cdist(np.ones((1, 3)), corpus, metric="cosine")[0, 0] == 0
    codes = corpus.astype(np.int8)
    assert sk.cdist(codes, codes, metric="cosine")[0].tolist() == [0, 0, 0]


def test_cosine_is_the_similarity_not_one_minus_it(backend):
    x = np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    np.testing.assert_allclose(sk.cdist(x[:1], x, metric="cosine"), [[1, 0, -1]], atol=1e-6)


def test_squared_distances_are_never_negative(backend, rng):
    x = (rng.standard_normal((40, 30)) * 1e3).astype(np.float32)
    assert (sk.cdist(x, x, metric="sqeuclidean") >= 0).all()
    assert (sk.cdist(x, x, metric="l2") >= 0).all()


def test_l2_is_the_root_of_sqeuclidean(backend, rng):
    x = rng.standard_normal((10, 9)).astype(np.float32)
    np.testing.assert_allclose(sk.cdist(x, x, metric="l2") ** 2,
                               sk.cdist(x, x, metric="sqeuclidean"), rtol=1e-5, atol=1e-5)


def test_int8_dot_and_sqeuclidean_are_exact_int32_including_minus_128(backend):
    codes = np.array([[-128] * 300, [127] * 300, [-128, 127] * 150], dtype=np.int8)
    wide = codes.astype(np.int64)
    dot = sk.cdist(codes, codes, metric="dot")
    sq = sk.cdist(codes, codes, metric="sqeuclidean")
    assert dot.dtype == sq.dtype == np.int32
    np.testing.assert_array_equal(dot, wide @ wide.T)
    np.testing.assert_array_equal(sq, ((wide[:, None] - wide[None]) ** 2).sum(-1))


def test_int8_cosine_and_l2_are_float32(backend):
    codes = np.array([[3, 4], [4, 3]], dtype=np.int8)
    assert sk.cdist(codes, codes, metric="cosine").dtype == np.float32
    np.testing.assert_allclose(sk.cdist(codes, codes, metric="l2"), [[0, 2**0.5], [2**0.5, 0]],
                               rtol=1e-6)


def test_hamming_counts_differing_bits_of_packed_rows(backend):
    a = np.packbits(np.array([[1, 0, 1, 1, 0, 0, 0, 0, 1]], dtype=bool), axis=1)
    b = np.packbits(np.array([[0, 0, 1, 0, 0, 0, 0, 0, 0]], dtype=bool), axis=1)
    result = sk.cdist(a, b, metric="hamming")
    assert result.dtype == np.int32 and result.tolist() == [[3]]


def test_float_queries_against_bits_treat_each_bit_as_plus_or_minus_one(backend, rng):
    q = rng.standard_normal((2, 11)).astype(np.float32)
    corpus = rng.standard_normal((30, 11))
    bits = sk.binary_quantize(corpus)
    signs = np.where(corpus > 0, 1.0, -1.0)
    np.testing.assert_allclose(sk.cdist(q, bits, metric="dot"), q @ signs.T, atol=1e-5)
    cosine = (q @ signs.T) / (np.linalg.norm(q, axis=1)[:, None] * np.sqrt(11))
    np.testing.assert_allclose(sk.cdist(q, bits, metric="cosine"), cosine, atol=1e-6)


def test_float_queries_against_int8_codes_rank_as_the_decoded_vectors(backend, rng):
    corpus = rng.standard_normal((400, 24)).astype(np.float32)
    codec = sk.Int8Quantizer.fit(corpus)
    codes = codec.encode(corpus)
    q = rng.standard_normal((4, 24)).astype(np.float32)
    for metric in ("dot", "cosine"):
        on_codes = sk.topk(q, codes, k=10, metric=metric)
        on_decoded = sk.topk(q, codec.decode(codes), k=10, metric=metric)
        np.testing.assert_array_equal(on_codes.indices, on_decoded.indices)
    on_codes = sk.topk(q / codec.scale, codes, k=10, metric="l2")
    on_decoded = sk.topk(q, codec.decode(codes), k=10, metric="l2")
    np.testing.assert_array_equal(on_codes.indices, on_decoded.indices)


@pytest.mark.parametrize("dtype", HALF_TYPES)
def test_16_bit_float_corpus_is_searched_as_its_float32_values(backend, rng, dtype):
    corpus = rng.standard_normal((200, 20)).astype(dtype)
    q = rng.standard_normal((3, 20)).astype(np.float32)
    for metric in FLOAT_METRICS:
        np.testing.assert_allclose(sk.cdist(q, corpus, metric=metric),
                                   sk.cdist(q, corpus.astype(np.float32), metric=metric),
                                   rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", HALF_TYPES)
def test_float64_and_16_bit_float_queries_are_accepted(backend, rng, dtype):
    corpus = rng.standard_normal((50, 5)).astype(np.float32)
    q = corpus[:2].astype(dtype)
    for queries in (q, q.astype(np.float64), q.astype(np.float32).tolist()):
        np.testing.assert_array_equal(sk.topk(queries, corpus, k=3).indices,
                                      sk.topk(q.astype(np.float32), corpus, k=3).indices)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
@pytest.mark.parametrize("queries", [1, 40])  # both sides of the batch threshold
def test_bfloat16_rows_far_outside_unit_size_have_exact_cosines(backend, rng, scale, queries):
    # bfloat16 has float32's range: squared norms of such rows leave it, and
    # the cosine must still be the cosine.
    base = rng.standard_normal((60, 24)).astype(ml_dtypes.bfloat16)
    corpus = (base.astype(np.float32) * np.float32(scale)).astype(ml_dtypes.bfloat16)
    q = rng.standard_normal((queries, 24)).astype(np.float32)
    got = sk.cdist(q, corpus, metric="cosine")
    q64, c64 = q.astype(np.float64), corpus.astype(np.float64)
    exact = (q64 @ c64.T) / np.outer(np.linalg.norm(q64, axis=1), np.linalg.norm(c64, axis=1))
    np.testing.assert_allclose(got, exact, atol=1e-5)
    assert np.abs(got).max() > 0.3


def test_views_and_memmaps_give_the_same_results_as_copies(backend, rng, tmp_path):
    wide = rng.standard_normal((400, 64)).astype(np.float32)
    q = rng.standard_normal((3, 32)).astype(np.float32)
    path = tmp_path / "corpus.npy"
    np.save(path, wide[:, :32])
    views = {
        "prefix": wide[:, :32],
        "every_other_row": wide[::2, :32],
        "negative_stride": wide[::-1, :32],
        "fortran": np.asfortranarray(wide[:, :32]),
        "memmap": np.load(path, mmap_mode="r"),
    }
    for name, view in views.items():
        expected = sk.topk(q, np.ascontiguousarray(view), k=5)
        got = sk.topk(q, view, k=5)
        np.testing.assert_array_equal(got.indices, expected.indices, err_msg=name)
        np.testing.assert_array_equal(got.scores, expected.scores, err_msg=name)


def test_objects_with_array_interface_are_accepted(backend):
    class Vectors:
        def __array__(self, dtype=None, copy=None):
            return np.eye(3, dtype=np.float32)

    assert sk.topk([1.0, 0.0, 0.0], Vectors(), k=1).indices.tolist() == [0]


def test_outputs_are_fresh_c_contiguous_arrays_the_caller_owns(backend, rng):
    corpus = rng.standard_normal((30, 4)).astype(np.float32)
    for result in (sk.topk(corpus[:2], corpus, k=3), sk.rescore(corpus[:2], [[0, 1], [2, 3]], corpus)):
        for array in result:
            assert array.flags.c_contiguous and array.flags.owndata and array.flags.writeable
    assert sk.cdist(corpus, corpus).flags.c_contiguous


def test_cdist_writes_into_out(backend, rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = np.empty((5, 5), dtype=np.float32)
    assert sk.cdist(x, x, metric="dot", out=out) is out
    np.testing.assert_allclose(out, x @ x.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("values", [[np.nan, 0.0], [np.inf, 1.0], [-np.inf, 1.0]])
@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_non_finite_queries_are_a_value_error_naming_queries(backend, values, metric):
    corpus = np.ones((10, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="queries contains NaN or infinity"):
        sk.topk(np.array([values], dtype=np.float32), corpus, k=1, metric=metric)


@pytest.mark.parametrize("dtype", [np.float32, *HALF_TYPES])
@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_non_finite_corpus_is_a_value_error_naming_corpus(backend, dtype, metric):
    corpus = np.ones((1000, 3), dtype=dtype)
    corpus[777, 1] = np.nan
    with pytest.raises(ValueError, match="corpus contains NaN or infinity"):
        sk.topk(np.ones((2, 3)), corpus, k=1, metric=metric)
    with pytest.raises(ValueError, match="b contains NaN or infinity"):
        sk.cdist(np.ones((2, 3)), corpus, metric=metric)


def test_non_finite_vectors_in_rescore_are_a_value_error(backend):
    vectors = np.ones((10, 3), dtype=np.float32)
    vectors[4] = np.inf
    with pytest.raises(ValueError, match="vectors contains NaN or infinity"):
        sk.rescore(np.ones((1, 3)), [[1, 4]], vectors, metric="dot")


def test_rescore_reranks_the_candidates(backend, rng):
    vectors = rng.standard_normal((100, 8)).astype(np.float32)
    q = rng.standard_normal((2, 8)).astype(np.float32)
    candidates = np.array([[5, 50, 7, 90], [1, 2, 3, 4]])
    scores, indices = sk.rescore(q, candidates, vectors, k=3, metric="dot")
    for i in range(2):
        exact = vectors[candidates[i]] @ q[i]
        order = np.argsort(-exact)[:3]
        assert indices[i].tolist() == candidates[i][order].tolist()
        np.testing.assert_allclose(scores[i], exact[order], rtol=1e-5)


def test_rescore_with_fewer_candidates_than_k_returns_them_all(backend, rng):
    vectors = rng.standard_normal((10, 3)).astype(np.float32)
    scores, indices = sk.rescore(vectors[:1], [[3, 1]], vectors, k=5)
    assert indices.shape == (1, 2) and sorted(indices[0].tolist()) == [1, 3]


@pytest.mark.parametrize("candidates", [[[0, 10]], [[-1, 2]], [[3, 3]]])
def test_rescore_rejects_bad_candidates(backend, candidates):
    with pytest.raises(ValueError, match="candidates"):
        sk.rescore(np.ones((1, 2)), candidates, np.ones((10, 2), dtype=np.float32))


def test_rescore_reads_int8_and_16_bit_float_vectors(backend, rng):
    x = rng.standard_normal((30, 6))
    q = x[:2].astype(np.float32)
    cand = np.array([[0, 5, 9], [1, 2, 3]])
    for vectors in (x.astype(np.float16), x.astype(ml_dtypes.bfloat16), (x * 40).astype(np.int8)):
        scores, indices = sk.rescore(q, cand, vectors, k=2, metric="dot")
        assert indices.shape == (2, 2) and set(indices[0]) <= {0, 5, 9}


@pytest.mark.parametrize("metric", ["sqeuclidean", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, *HALF_TYPES])
@pytest.mark.parametrize("queries", [5, 70])  # one side of the batch threshold, then the other
def test_native_puts_a_vector_at_distance_zero_from_itself(isa, rng, metric, dtype, queries):
    # The core sums |q|^2, |c|^2 and q.c in one order, so the expansion is
    # exactly 0 here (the numpy backend gets there by summing cancelled pairs again).
    corpus = rng.standard_normal((300, 37)).astype(dtype)
    scores, indices = sk.topk(corpus[:queries].astype(np.float32), corpus, k=1, metric=metric)
    assert (scores[:, 0] == 0).all() and indices[:, 0].tolist() == list(range(queries))


@pytest.mark.parametrize("queries", [1, 40])  # both sides of the batch threshold
def test_l2_topk_keeps_ties_of_the_rounded_roots(isa, rng, queries):
    # Rows (1, y) with tiny y have squared distances 1 + a few ulps from the
    # origin, and distinct squares round to one root: top-k (which takes
    # roots only of squares that can enter) must rank exactly as the rooted
    # scores do, ties to the lower row.
    corpus = np.zeros((500, 2), dtype=np.float32)
    corpus[:, 0] = 1
    corpus[:, 1] = rng.uniform(0, 1e-3, 500).astype(np.float32)
    q = np.zeros((queries, 2), dtype=np.float32)
    distances = sk.cdist(q, corpus, metric="l2")
    squares = sk.cdist(q, corpus, metric="sqeuclidean")
    assert (np.unique(distances[0]).size < np.unique(squares[0]).size)  # roots do collide
    got = sk.topk(q, corpus, k=60, metric="l2")
    for i in range(queries):
        order = np.lexsort((np.arange(500), distances[i]))[:60]
        np.testing.assert_array_equal(got.indices[i], order)
        np.testing.assert_array_equal(got.scores[i], distances[i, order])
