"""Bad input: a clear exception that names the argument (docs/semantics.md, Bad input)."""

from __future__ import annotations

import numpy as np
import pytest

import simkernel as sk


def test_unknown_metric_lists_the_valid_ones(backend):
    with pytest.raises(ValueError, match="metric must be one of cosine, dot, sqeuclidean, l2, hamming"):
        sk.topk(np.ones((1, 2)), np.ones((3, 2)), metric="euclid")


def test_dimension_mismatch_names_both_shapes(backend):
    with pytest.raises(ValueError, match=r"queries shape \(2, 5\), corpus shape \(10, 4\)"):
        sk.topk(np.ones((2, 5)), np.ones((10, 4)))
    with pytest.raises(ValueError, match=r"a shape \(2, 5\), b shape \(10, 4\)"):
        sk.cdist(np.ones((2, 5)), np.ones((10, 4)))


@pytest.mark.parametrize("shape", [(), (2, 3, 4)])
def test_queries_must_be_one_or_two_dimensional(backend, shape):
    with pytest.raises(ValueError, match="queries must be 2-D"):
        sk.topk(np.ones(shape), np.ones((3, 4)))


def test_corpus_must_be_two_dimensional(backend):
    with pytest.raises(ValueError, match=r"corpus must be 2-D .* shape \(4,\)"):
        sk.topk(np.ones((1, 4)), np.ones(4))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, object])
def test_unsupported_dtypes_are_a_type_error_naming_the_argument(backend, dtype):
    with pytest.raises(TypeError, match="corpus has dtype"):
        sk.topk(np.ones((1, 2)), np.ones((3, 2), dtype=dtype))
    with pytest.raises(TypeError, match="queries has dtype"):
        sk.topk(np.ones((1, 2), dtype=dtype), np.ones((3, 2)))


def test_int8_queries_against_a_float_corpus_say_what_to_do(backend):
    with pytest.raises(TypeError, match="int8 codes but corpus has dtype float32.*Pass the float queries"):
        sk.topk(np.ones((1, 4), dtype=np.int8), np.ones((3, 4), dtype=np.float32))


def test_bit_queries_need_a_bit_corpus(backend):
    with pytest.raises(TypeError, match="bit-packed uint8 but corpus has dtype int8"):
        sk.topk(np.ones((1, 4), dtype=np.uint8), np.ones((3, 4), dtype=np.int8), metric="hamming")


def test_hamming_needs_bits_on_both_sides(backend):
    with pytest.raises(ValueError, match="'hamming' needs bit-packed uint8"):
        sk.topk(np.ones((1, 4), dtype=np.float32), np.ones((3, 4), dtype=np.float32), metric="hamming")
    with pytest.raises(ValueError, match="'hamming' needs bit-packed uint8"):
        sk.topk(np.ones((1, 16), dtype=np.float32), np.ones((3, 2), dtype=np.uint8), metric="hamming")


@pytest.mark.parametrize("metric", ["sqeuclidean", "l2"])
def test_distances_are_not_defined_for_float_queries_against_bits(backend, metric):
    with pytest.raises(ValueError, match="valid here: cosine, dot"):
        sk.topk(np.ones((1, 16)), np.ones((3, 2), dtype=np.uint8), metric=metric)


def test_bit_rows_must_match_the_query_dimension(backend):
    with pytest.raises(ValueError,
                       match=r"rows of 3 bytes but queries have 16 dimensions \(needing 2 bytes\)"):
        sk.topk(np.ones((1, 16)), np.ones((3, 3), dtype=np.uint8), metric="dot")


def test_int8_rows_longer_than_32768_are_a_value_error(backend):
    codes = np.ones((2, 32769), dtype=np.int8)
    with pytest.raises(ValueError, match="int8 rows longer than 32768"):
        sk.topk(codes, codes, metric="dot")


@pytest.mark.parametrize("k", [1.5, "3", None, True])
def test_k_must_be_an_integer(backend, k):
    with pytest.raises(TypeError, match="k must be a positive integer"):
        sk.topk(np.ones((1, 2)), np.ones((3, 2)), k=k)


@pytest.mark.parametrize("threads,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError)])
def test_threads_must_be_a_positive_integer(backend, threads, error):
    with pytest.raises(error, match="threads must be a positive integer"):
        sk.topk(np.ones((1, 2)), np.ones((3, 2)), threads=threads)


def test_bad_thread_count_in_the_environment_is_a_value_error(backend, monkeypatch):
    monkeypatch.setenv("SIMKERNEL_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="SIMKERNEL_NUM_THREADS must be a positive integer"):
        sk.topk(np.ones((1, 2)), np.ones((3, 2)))


def test_cdist_out_must_fit(backend):
    x = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 3\) and dtype float32"):
        sk.cdist(x, x, out=np.empty((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 3\) and dtype int32"):
        sk.cdist(x.astype(np.int8), x.astype(np.int8), metric="dot", out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous"):
        sk.cdist(x, x, out=np.empty((3, 3), dtype=np.float32, order="F"))


def test_rescore_candidates_must_be_integers_with_a_row_per_query(backend):
    vectors = np.ones((5, 2), dtype=np.float32)
    with pytest.raises(TypeError, match="candidates must be integer row numbers"):
        sk.rescore(np.ones((1, 2)), [[0.5, 1.0]], vectors)
    with pytest.raises(ValueError, match=r"one row per query: candidates shape \(2, 2\)"):
        sk.rescore(np.ones((1, 2)), [[0, 1], [1, 2]], vectors)


def test_inputs_are_never_modified(backend):
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((100, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    before = corpus.copy(), queries.copy()
    for metric in ("dot", "cosine", "l2"):
        sk.topk(queries, corpus, k=5, metric=metric)
        sk.cdist(queries, corpus, metric=metric)
    np.testing.assert_array_equal(corpus, before[0])
    np.testing.assert_array_equal(queries, before[1])


# -- Index -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,error,message", [
    ({"dim": 0}, ValueError, "dim"),
    ({"dim": 4, "metric": "cos"}, ValueError, "metric must be one of"),
    ({"dim": 4, "dtype": "float64"}, ValueError, "dtype must be one of"),
    ({"dim": 4, "rescore": "binary"}, ValueError, "rescore must be"),
    ({"dim": 4, "dtype": "binary", "metric": "l2"}, ValueError, "binary storage"),
    ({"dim": 4, "metric": "hamming"}, ValueError, "hamming"),
    ({"dim": 4, "rescore_factor": 0}, ValueError, "rescore_factor"),
    ({"dim": 4, "quantizer": 0.5}, TypeError, "quantizer"),
])
def test_index_settings_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        sk.Index(**kwargs)


def test_index_add_rejects_bad_vectors_and_ids_and_keeps_what_it_had():
    index = sk.Index(3, "l2")
    index.add(np.eye(3), ids=[0, 1, 2])
    cases = [
        ((np.ones((2, 4)),), {}, ValueError, r"vectors must have shape \(n, 3\)"),
        ((np.ones((2, 3), dtype=np.int8),), {}, TypeError, "vectors must be float"),
        ((np.array([[np.nan, 0, 0]]),), {}, ValueError, "vectors contains NaN"),
        ((np.ones((2, 3)),), {"ids": [5]}, ValueError, "one id per vector"),
        ((np.ones((2, 3)),), {"ids": [5, 5]}, ValueError, "more than once"),
        ((np.ones((1, 3)),), {"ids": [-3]}, ValueError, "non-negative"),
        ((np.ones((1, 3)),), {"ids": [1.5]}, TypeError, "ids must be integers"),
        ((np.ones((2, 3)),), {"ids": [7, 2]}, ValueError, r"already in the index: \[2\]"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            index.add(*args, **kwargs)
    assert index.ids.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(index.get([0, 1, 2]), np.eye(3))
    with pytest.raises(ValueError, match="too large for float16"):
        sk.Index(1, "dot", "float16").add([[1e6]])
    bfloat16 = sk.Index(1, "dot", "bfloat16")
    bfloat16.add([[3.38e38]])  # bfloat16's largest, rounded to it
    with pytest.raises(ValueError, match="too large for bfloat16"):
        bfloat16.add([[3.4e38]])  # rounds to infinity
    assert len(bfloat16) == 1


def test_index_search_rejects_bad_queries_dims_and_allow():
    index = sk.Index(16, "cosine", "binary")
    index.add(np.ones((4, 16)))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 16\)"):
        index.search(np.ones((2, 8)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.ones(16), k=0)
    with pytest.raises(ValueError, match="multiple of 8"):
        index.search(np.ones(16), dims=12)
    with pytest.raises(ValueError, match=r"dims must be in \[1, 16\]"):
        index.search(np.ones(16), dims=17)
    with pytest.raises(ValueError, match="2 lists for 3 queries"):
        index.search(np.ones((3, 16)), allow=[[1], [2]])
    with pytest.raises(TypeError, match="allow must be integers"):
        index.search(np.ones(16), allow=[0.5])
    with pytest.raises(KeyError, match="ids not in the index"):
        index.remove([0, 99])
    assert len(index) == 4  # nothing was removed


def test_index_takes_bit_packed_rows_only_where_they_are_enough():
    with pytest.raises(TypeError, match="only a binary index without rescore"):
        sk.Index(16, "cosine", "binary", rescore="float32").add(np.zeros((1, 2), np.uint8))
    with pytest.raises(ValueError, match=r"bit-packed vectors must have shape \(n, 2\)"):
        sk.Index(16, "hamming", "binary").add(np.zeros((1, 3), np.uint8))


def test_a_cosine_index_checks_finiteness_through_the_norms():
    index = sk.Index(2, "cosine")
    with pytest.raises(ValueError, match="vectors contains NaN"):
        index.add([[np.inf, 1.0]])
    index.add([[3e20, 4e20]])  # finite, though its square overflows float32
    np.testing.assert_allclose(index.get(0), [0.6, 0.8], rtol=1e-6)
