"""Per-dimension int8 codes (docs/semantics.md, Int8Codes): the quantizer's
layouts, and searches over `Int8Codes` that score the vectors the codes
decode to, on both backends and every ISA, within the float tolerance."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings

import simkernel as sk
from conftest import numpy_answer
from reference import assert_valid_topk, exact_scores, tolerance
from strategies import int8_code_cases

FLOAT_METRICS = ["dot", "cosine", "sqeuclidean", "l2"]
EXAMPLES = settings(max_examples=25, deadline=None)


def decoded(case) -> np.ndarray:
    return case.quantizer.decode_exact(case.codes)


def codes_tolerance(case, metric: str) -> np.ndarray:
    """docs/semantics.md's bound for Int8Codes: the float bound against the
    decoded vectors, plus that of the kernel's own float32 dot of the
    scaled queries with the codes, 1e-5 sqrt(d) |q * scale| |code|, which
    the offsets can make large next to |q| |x| (a row whose offset cancels
    most of scale * code)."""
    vectors = decoded(case)
    base = tolerance(case.queries, vectors, metric)
    q = case.queries.astype(np.float64)
    scaled = np.linalg.norm(q * case.quantizer.scale.astype(np.float64), axis=1)[:, None]
    kernel = 1e-5 * np.sqrt(q.shape[1]) * scaled * np.linalg.norm(
        case.codes.astype(np.float64), axis=1)[None, :]
    if metric == "dot":
        return base + kernel
    if metric == "cosine":
        sizes = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(vectors, axis=1)[None, :]
        return base + np.divide(kernel, sizes, out=np.zeros_like(kernel), where=sizes > 0)
    if metric == "sqeuclidean":
        return base + 2 * kernel
    return base + np.sqrt(2 * kernel)


@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_searches_score_the_decoded_vectors(isa, metric):
    @EXAMPLES
    @given(int8_code_cases(metric))
    def check(case):
        codes = sk.Int8Codes(case.codes, case.quantizer)
        vectors = decoded(case)
        tol = codes_tolerance(case, metric)
        for answer in (sk.topk, lambda *a, **kw: numpy_answer(sk.topk, *a, **kw)):
            result = answer(case.queries, codes, k=case.k, metric=metric)
            assert_valid_topk(*result, case.queries, vectors, metric, case.k, tol=tol)
        exact = exact_scores(case.queries, vectors, metric)
        for matrix in (sk.cdist(case.queries, codes, metric),
                       numpy_answer(sk.cdist, case.queries, codes, metric)):
            np.testing.assert_array_less(np.abs(matrix - exact), tol + 1e-12)

    check()


@pytest.mark.parametrize("metric", FLOAT_METRICS)
def test_rescore_and_range_search_score_the_decoded_vectors(isa, metric):
    @settings(max_examples=15, deadline=None)
    @given(int8_code_cases(metric))
    def check(case):
        codes = sk.Int8Codes(case.codes, case.quantizer)
        n = len(case.codes)
        rng = np.random.default_rng(n)
        m = min(n, 1 + case.k // 2)
        candidates = np.stack([rng.permutation(n)[:m] for _ in range(len(case.queries))]) \
            if len(case.queries) else np.empty((0, m), dtype=np.int64)
        got = sk.rescore(case.queries, candidates, codes, k=case.k, metric=metric)
        exact = exact_scores(case.queries, decoded(case), metric)
        tol = codes_tolerance(case, metric)
        for i in range(len(case.queries)):
            np.testing.assert_array_less(np.abs(got.scores[i] - exact[i, got.indices[i]]),
                                         tol[i, got.indices[i]] + 1e-12)
        if len(case.queries) and n:
            threshold = float(np.median(exact))
            found = sk.range_search(case.queries, codes, threshold, metric)
            # Compared exactly, the float32 scores widened (not the threshold rounded).
            scores = sk.cdist(case.queries, codes, metric).astype(np.float64)
            for i in range(len(case.queries)):
                passing = scores[i] >= threshold if metric in ("dot", "cosine") \
                    else scores[i] <= threshold
                assert set(found.query(i)[1].tolist()) == set(np.flatnonzero(passing).tolist())

    check()


def test_sentence_transformers_ranges_decode_their_levels(backend):
    # Their int8 layout: level = (x - min) / step with step = (max - min) / 255,
    # stored as level - 128; a code c stands for min + (c + 128) * step.
    rng = np.random.default_rng(0)
    ranges = np.stack([rng.uniform(-2, -1, 16), rng.uniform(1, 3, 16)])
    quantizer = sk.Int8Quantizer.from_ranges(ranges)
    codes = rng.integers(-128, 128, (50, 16)).astype(np.int8)
    step = (ranges[1] - ranges[0]) / 255
    want = ranges[0] + (codes.astype(np.float64) + 128) * step
    np.testing.assert_allclose(quantizer.decode_exact(codes), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(quantizer.encode(want), codes)  # whole levels come back


def test_per_dimension_fit_spans_each_dimension():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 8)) * np.arange(1, 9) + np.arange(8) * 10
    quantizer = sk.Int8Quantizer.fit(x, percentile=100, per_dimension=True)
    codes = quantizer.encode(x)
    assert codes.min() == -128 and codes.max() == 127
    np.testing.assert_array_equal(codes.min(axis=0), -128)
    np.testing.assert_array_equal(codes.max(axis=0), 127)
    error = np.abs(quantizer.decode(codes) - x)
    assert (error <= quantizer.scale / 2 + 1e-5 * np.abs(x)).all()


def test_a_zero_step_dimension_decodes_to_its_offset():
    quantizer = sk.Int8Quantizer([0.0, 0.5], [3.0, 0.0])
    codes = quantizer.encode([[3.0, 1.0], [7.0, -1.0]])
    np.testing.assert_array_equal(codes, [[0, 2], [0, -2]])
    np.testing.assert_array_equal(quantizer.decode(codes), [[3.0, 1.0], [3.0, -1.0]])


def test_per_dimension_quantizers_compare_hash_and_pickle():
    a = sk.Int8Quantizer([0.1, 0.2], [1.0, 2.0])
    b = pickle.loads(pickle.dumps(a))
    assert a == b and hash(a) == hash(b) and a.per_dimension
    assert a != sk.Int8Quantizer([0.1, 0.2], [1.0, 2.5])
    assert a != sk.Int8Quantizer(0.1) and not sk.Int8Quantizer(0.1).per_dimension


def test_symmetric_codes_in_int8codes_score_every_metric_as_decoded(backend):
    rng = np.random.default_rng(2)
    x, q = rng.standard_normal((300, 24)), rng.standard_normal((5, 24)).astype(np.float32)
    quantizer = sk.Int8Quantizer.fit(x)
    codes = quantizer.encode(x)
    for metric in FLOAT_METRICS:
        got = sk.topk(q, sk.Int8Codes(codes, quantizer), 10, metric)
        assert_valid_topk(*got, q, quantizer.decode(codes).astype(np.float64), metric, 10)


@pytest.mark.parametrize("make, error, message", [
    (lambda: sk.Int8Quantizer([0.1, -0.1], [0, 0]), ValueError, "non-negative"),
    (lambda: sk.Int8Quantizer([0.1, 0.1], [0, np.nan]), ValueError, "offset must be finite"),
    (lambda: sk.Int8Quantizer([0.1, 0.1], [0, 0, 0]), ValueError, "one number per dimension"),
    (lambda: sk.Int8Quantizer.from_ranges(np.ones((3, 4))), ValueError, r"shape \(2, dim\)"),
    (lambda: sk.Int8Quantizer.from_ranges([[1.0], [0.0]]), ValueError, "maximum at least"),
    (lambda: sk.Int8Quantizer([0.1] * 3, [0.0] * 3).encode(np.ones((2, 4))), ValueError,
     "x has 4 dimensions but the quantizer has 3"),
    (lambda: sk.Int8Codes(np.zeros((2, 3), np.float32), sk.Int8Quantizer(1.0)), TypeError,
     "2-D int8"),
    (lambda: sk.Int8Codes(np.zeros((2, 3), np.int8), 1.0), TypeError, "Int8Quantizer"),
    (lambda: sk.Int8Codes(np.zeros((2, 3), np.int8), sk.Int8Quantizer([1.0] * 4, [0.0] * 4)),
     ValueError, "the codes has 3 dimensions"),
    (lambda: sk.Index(3, "cosine", dtype="int8", quantizer=sk.Int8Quantizer([1.0] * 3, [0.0] * 3)),
     ValueError, "symmetric int8 codes"),
    (lambda: sk.topk(np.zeros((1, 3), np.int8),
                     sk.Int8Codes(np.zeros((2, 3), np.int8), sk.Int8Quantizer(1.0))),
     TypeError, "searched with float queries"),
])
def test_bad_quantizers_and_codes_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
