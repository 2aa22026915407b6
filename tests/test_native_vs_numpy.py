"""Every native ISA path against the numpy reference (and both against a
float64 oracle): integer paths bit for bit, float paths within docs/semantics.md's
tolerance with tie-aware index checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk
from conftest import numpy_answer
from reference import assert_valid_topk, exact_scores, tolerance
from strategies import PAIR_METRIC_CASES, search_cases

from simkernel import _numpy_backend
from simkernel._inputs import Pieces, prepare

CASE_IDS = [f"{q}x{c}-{m}" for q, c, m in PAIR_METRIC_CASES]
EXAMPLES = settings(max_examples=30, deadline=None)


def integer_result(queries: np.ndarray, corpus: np.ndarray, metric: str) -> bool:
    return metric == "hamming" or (queries.dtype == np.int8 and metric in ("dot", "sqeuclidean"))


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_topk_matches_reference(isa, q_kind, c_kind, metric):
    @EXAMPLES
    @given(search_cases(q_kind, c_kind, metric))
    def check(case):
        native = sk.topk(case.queries, case.corpus, k=case.k, metric=case.metric, threads=2)
        ref = numpy_answer(sk.topk, case.queries, case.corpus, k=case.k, metric=case.metric)
        if integer_result(case.queries, case.corpus, metric):
            np.testing.assert_array_equal(native.scores, ref.scores)
            np.testing.assert_array_equal(native.indices, ref.indices)
        assert native.scores.dtype == ref.scores.dtype
        assert_valid_topk(*native, case.queries, case.corpus, metric, case.k)
        assert_valid_topk(*ref, case.queries, case.corpus, metric, case.k)

    check()


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_cdist_matches_reference(isa, q_kind, c_kind, metric):
    @EXAMPLES
    @given(search_cases(q_kind, c_kind, metric))
    def check(case):
        native = sk.cdist(case.queries, case.corpus, metric=case.metric, threads=2)
        ref = numpy_answer(sk.cdist, case.queries, case.corpus, metric=case.metric)
        assert native.dtype == ref.dtype and native.shape == ref.shape
        if integer_result(case.queries, case.corpus, metric):
            np.testing.assert_array_equal(native, ref)
        exact = exact_scores(case.queries, case.corpus, metric)
        tol = tolerance(case.queries, case.corpus, metric)
        for got in (native, ref):
            np.testing.assert_array_less(np.abs(got - exact), tol + 1e-12)

    check()


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_rescore_matches_reference(isa, q_kind, c_kind, metric):
    @settings(max_examples=15, deadline=None)
    @given(search_cases(q_kind, c_kind, metric))
    def check(case):
        n = len(case.corpus)
        rng = np.random.default_rng(n)
        m = min(n, 1 + case.k // 2)
        candidates = np.stack([rng.permutation(n)[:m] for _ in range(len(case.queries))]) \
            if len(case.queries) else np.empty((0, m), dtype=np.int64)
        native = sk.rescore(case.queries, candidates, case.corpus, k=case.k, metric=metric)
        ref = numpy_answer(sk.rescore, case.queries, candidates, case.corpus, k=case.k,
                              metric=metric)
        if integer_result(case.queries, case.corpus, metric):
            np.testing.assert_array_equal(native.scores, ref.scores)
            np.testing.assert_array_equal(native.indices, ref.indices)
        for result in (native, ref):
            assert result.scores.shape == (len(case.queries), min(case.k, m))
            # The rows come from the candidates, and are the best of them.
            for i, row in enumerate(result.indices):
                assert set(row.tolist()) <= set(candidates[i].tolist())
                sub = case.corpus[np.sort(candidates[i])]
                assert_valid_topk(result.scores[i:i + 1], np.searchsorted(
                    np.sort(candidates[i]), row)[None, :], case.queries[i:i + 1], sub,
                    metric, case.k)

    check()


@pytest.mark.parametrize("metric", ["dot", "cosine", "sqeuclidean", "l2"])
def test_results_do_not_depend_on_threads_or_batching(isa, metric):
    """Scores are bit-identical whatever the thread count, and whatever the
    batch size on one side of the batch threshold; across it float sums
    change order, so a lone query agrees within the tolerance."""
    # The ISA's batch threshold (docs/semantics.md); without a batch kernel
    # every size is on one side.
    threshold = sk.capabilities()["batch_queries"] or 8
    rng = np.random.default_rng(7)
    corpus = rng.standard_normal((3000, 45)).astype(np.float32)
    queries = rng.standard_normal((100, 45)).astype(np.float32)
    one = sk.topk(queries, corpus, k=7, metric=metric, threads=1)
    for threads in (2, 3, 8):
        many = sk.topk(queries, corpus, k=7, metric=metric, threads=threads)
        np.testing.assert_array_equal(one.indices, many.indices)
        np.testing.assert_array_equal(one.scores, many.scores)
    for start, size in ((0, threshold), (13, 64), (35, 65)):
        part = sk.topk(queries[start:start + size], corpus, k=7, metric=metric, threads=2)
        np.testing.assert_array_equal(part.indices, one.indices[start:start + size])
        np.testing.assert_array_equal(part.scores, one.scores[start:start + size])
    small = [sk.topk(queries[start:start + size], corpus, k=7, metric=metric, threads=2)
             for start, size in ((0, threshold - 1), (40, threshold - 1))]
    for start in (0, 13, 39):
        single = sk.topk(queries[start], corpus, k=7, metric=metric, threads=2)
        assert_valid_topk(single.scores[None], single.indices[None], queries[start:start + 1],
                          corpus, metric, 7)
        if start < threshold - 1:  # below the threshold: one summation order
            np.testing.assert_array_equal(single.scores, small[0].scores[start])
    np.testing.assert_array_equal(small[1].scores[0], sk.topk(queries[40], corpus, k=7,
                                                              metric=metric).scores)


PACKED_CASES = [("float32", "cosine"), ("float32", "l2"), ("strided float32", "dot"),
                ("float16", "cosine"), ("bfloat16", "l2"), ("int8 codes", "dot"),
                ("bits", "cosine"), ("int8 x int8", "dot"), ("int8 x int8", "cosine")]


@pytest.mark.parametrize("storage,metric", PACKED_CASES, ids=[f"{s}-{m}" for s, m in PACKED_CASES])
def test_packed_batches_score_what_smaller_batches_score(isa, storage, metric):
    """From packed_batch_queries on, the core packs each block of rows (widened,
    padded to whole int8 quads, transposed into panels) for the batch kernel;
    the scores are those of the same queries in a smaller call, bit for bit."""
    packed = sk.capabilities()["packed_batch_queries"]
    if packed == 0:
        pytest.skip(f"{isa} has no batch kernel")
    rng = np.random.default_rng(17)
    # 45 dimensions: a tail in every ISA's steps and not a whole number of
    # int8 quads; 3000 rows: several blocks, the next one prefetched.
    wide = rng.standard_normal((3000, 50)).astype(np.float32)
    corpus = np.ascontiguousarray(wide[:, :45])
    queries = rng.standard_normal((packed + 44, 45)).astype(np.float32)
    if storage == "strided float32":
        corpus = wide[:, :45]
    elif storage in ("float16", "bfloat16"):
        corpus = corpus.astype(storage)
    elif storage in ("int8 codes", "int8 x int8"):
        quantizer = sk.Int8Quantizer.fit(corpus)
        corpus = quantizer.encode(corpus)
        if storage == "int8 x int8":
            queries = quantizer.encode(queries)
    elif storage == "bits":
        corpus = sk.binary_quantize(corpus)
    everything = sk.topk(queries, corpus, k=9, metric=metric, threads=2)
    part = sk.topk(queries[30:130], corpus, k=9, metric=metric, threads=2)
    np.testing.assert_array_equal(part.indices, everything.indices[30:130])
    np.testing.assert_array_equal(part.scores, everything.scores[30:130])


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_int8_cosine_and_l2_match_numpy_bit_for_bit(isa, metric):
    """Both finish exact integer sums in float64 in the same order (finishing
    in float32 instead changes about 40% of these scores)."""
    rng = np.random.default_rng(11)
    codes = rng.integers(-128, 128, size=(700, 97)).astype(np.int8)
    codes[5] = 0  # a zero vector: cosine 0
    native = sk.cdist(codes[:30], codes, metric=metric)
    np.testing.assert_array_equal(native, numpy_answer(sk.cdist, codes[:30], codes, metric=metric))


def test_every_isa_agrees_on_integer_paths(isa):
    rng = np.random.default_rng(3)
    codes = rng.integers(-128, 128, size=(500, 77)).astype(np.int8)
    bits = rng.integers(0, 256, size=(500, 17)).astype(np.uint8)
    for metric in ("dot", "sqeuclidean"):
        got = sk.cdist(codes[:20], codes, metric=metric)
        want = exact_scores(codes[:20], codes, metric)
        np.testing.assert_array_equal(got, want.astype(np.int32))
    np.testing.assert_array_equal(sk.cdist(bits[:20], bits, metric="hamming"),
                                  exact_scores(bits[:20], bits, "hamming").astype(np.int32))
    assert prepare(codes, codes, "dot").pair == "i8_i8"


def _check_filtered(result, case, allowed_rows, k, integer):
    """Each query's results are the best of its allowed rows, then padding."""
    scores, indices = result
    for i, rows in enumerate(allowed_rows):
        valid = min(k, len(rows), len(case.corpus))
        assert (indices[i, valid:] == -1).all()
        if not integer:
            assert np.isnan(scores[i, valid:]).all()
        sub = case.corpus[rows]
        assert set(indices[i, :valid].tolist()) <= set(rows.tolist())
        assert_valid_topk(scores[i:i + 1, :valid], np.searchsorted(rows, indices[i:i + 1, :valid]),
                          case.queries[i:i + 1], sub, case.metric, valid or 1)


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_filtered_topk_matches_reference(isa, q_kind, c_kind, metric):
    """The core's row filter (used by Index) and its -1 padding, per query or shared."""
    native_backend = sk._backend.active

    @settings(max_examples=15, deadline=None)
    @given(search_cases(q_kind, c_kind, metric), st.floats(0, 1), st.booleans())
    def check(case, share, per_query):
        n, nq = len(case.corpus), len(case.queries)
        rng = np.random.default_rng(n + nq)
        masks = rng.random((nq if per_query else 1, n)) < share
        allowed = np.packbits(masks, axis=1, bitorder="little")
        args = prepare(case.queries, case.corpus, metric)
        native = native_backend.topk(args, case.k, 2, allowed)
        ref = _numpy_backend.topk(args, case.k, 1, allowed)
        integer = integer_result(case.queries, case.corpus, metric)
        if integer:
            np.testing.assert_array_equal(native[0], ref[0])
            np.testing.assert_array_equal(native[1], ref[1])
        rows = [np.flatnonzero(masks[i if per_query else 0]) for i in range(nq)]
        for result in (native, ref):
            _check_filtered(result, case, rows, case.k, integer)

    check()


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES[::3], ids=CASE_IDS[::3])
def test_rescore_skips_padding_candidates(isa, q_kind, c_kind, metric):
    native_backend = sk._backend.active

    @settings(max_examples=10, deadline=None)
    @given(search_cases(q_kind, c_kind, metric))
    def check(case):
        n, nq = len(case.corpus), len(case.queries)
        rng = np.random.default_rng(n)
        rows = [np.sort(rng.permutation(n)[:rng.integers(0, n + 1)]) for _ in range(nq)]
        width = max([len(r) for r in rows], default=0) + 1
        candidates = np.full((nq, width), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            candidates[i, 1:len(r) + 1] = r[::-1]   # padding first and last
        args = prepare(case.queries, case.corpus, metric)
        native = native_backend.rescore(args, candidates, case.k, 2)
        ref = _numpy_backend.rescore(args, candidates, case.k, 1)
        integer = integer_result(case.queries, case.corpus, metric)
        if integer:
            np.testing.assert_array_equal(native[0], ref[0])
            np.testing.assert_array_equal(native[1], ref[1])
        for result in (native, ref):
            assert result[1].shape == (nq, min(case.k, width))
            _check_filtered(result, case, rows, case.k, integer)

    check()


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_a_corpus_in_pieces_searches_as_one(isa, q_kind, c_kind, metric):
    """An Index's storage: pieces searched as their concatenation. Native
    scores do not depend on blocking, so they match bit for bit; numpy's BLAS
    may round differently on other block shapes, so it is held to the oracle."""
    native_backend = sk._backend.active

    @settings(max_examples=10, deadline=None)
    @given(search_cases(q_kind, c_kind, metric), st.lists(st.integers(0, 80), max_size=4))
    def check(case, cuts):
        edges = sorted({min(c, len(case.corpus)) for c in cuts})
        whole = prepare(case.queries, case.corpus, metric)
        split = prepare(case.queries, Pieces(np.split(case.corpus, edges)), metric)
        rows = np.arange(len(case.corpus))[::-1].reshape(1, -1).repeat(len(case.queries), 0)
        out = np.empty((len(case.queries), len(case.corpus)), whole.score_dtype)
        for name, call in (("topk", lambda a: native_backend.topk(a, case.k, 2)),
                           ("rescore", lambda a: native_backend.rescore(a, rows, case.k, 2)),
                           ("cdist", lambda a: (native_backend.cdist(a, 2, out.copy()),))):
            for got, want in zip(call(split), call(whole)):
                np.testing.assert_array_equal(got, want, err_msg=name)
        assert_valid_topk(*_numpy_backend.topk(split, case.k, 1), case.queries, case.corpus,
                          metric, case.k)
        np.testing.assert_array_less(
            np.abs(_numpy_backend.cdist(split, 1, out) - exact_scores(case.queries, case.corpus,
                                                                      metric)),
            tolerance(case.queries, case.corpus, metric) + 1e-12)

    check()
