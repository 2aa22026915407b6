"""Range search (docs/semantics.md, Range search): every row within the
threshold, exactly the rows whose score (as cdist gives it) passes, best
first with ties to the lower row; both backends, every ISA; the cap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk
from conftest import numpy_answer
from reference import HIGHER_IS_BETTER, exact_scores, tolerance
from strategies import PAIR_METRIC_CASES, search_cases

from simkernel import _numpy_backend
from simkernel._inputs import prepare

CASE_IDS = [f"{q}x{c}-{m}" for q, c, m in PAIR_METRIC_CASES]


def expected(scores: np.ndarray, threshold: float, metric: str,
             allowed: np.ndarray | None = None) -> sk.RangeResult:
    """The range result that a (queries x rows) score matrix implies."""
    higher = HIGHER_IS_BETTER[metric]
    wide = scores.astype(np.float64)
    hit = wide >= threshold if higher else wide <= threshold
    if allowed is not None:
        hit &= allowed
    lims, found, rows = [0], [], []
    for i in range(len(scores)):
        cols = np.flatnonzero(hit[i])
        key = -wide[i, cols] if higher else wide[i, cols]
        order = cols[np.lexsort((cols, key))]
        found.append(scores[i, order])
        rows.append(order)
        lims.append(lims[-1] + len(order))
    return sk.RangeResult(np.array(lims), np.concatenate(found) if found else np.empty(0),
                          np.concatenate(rows) if rows else np.empty(0, np.int64))


def assert_same(got: sk.RangeResult, want: sk.RangeResult, score_dtype: np.dtype) -> None:
    assert got.lims.dtype == np.int64 and got.indices.dtype == np.int64
    assert got.scores.dtype == score_dtype
    np.testing.assert_array_equal(got.lims, want.lims)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores.astype(score_dtype))


@st.composite
def thresholds(draw, scores: np.ndarray) -> float:
    """A threshold that is one of the scores (so ties with it are common), or
    between them, or past every one of them."""
    finite = np.unique(scores[np.isfinite(scores)])
    if finite.size and draw(st.booleans()):
        return float(finite[draw(st.integers(0, finite.size - 1))])
    if finite.size and draw(st.booleans()):
        low, high = float(finite.min()), float(finite.max())
        return draw(st.floats(low - 1, high + 1))
    return draw(st.sampled_from([-np.inf, np.inf, 0.0]))


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_range_search_returns_exactly_the_rows_past_the_threshold(isa, q_kind, c_kind, metric):
    """Each backend returns the rows its own cdist scores put past the
    threshold, with those scores; integer scores agree across backends, float
    ones wherever the exact score is not within tolerance of the threshold."""
    @settings(max_examples=25, deadline=None)
    @given(search_cases(q_kind, c_kind, metric), st.data())
    def check(case, data):
        scores = sk.cdist(case.queries, case.corpus, metric=metric, threads=2)
        threshold = data.draw(thresholds(scores))
        native = sk.range_search(case.queries, case.corpus, threshold, metric, threads=2)
        assert_same(native, expected(scores, threshold, metric), scores.dtype)
        ref_scores = numpy_answer(sk.cdist, case.queries, case.corpus, metric=metric)
        ref = numpy_answer(sk.range_search, case.queries, case.corpus, threshold, metric)
        assert_same(ref, expected(ref_scores, threshold, metric), scores.dtype)
        if scores.dtype == np.int32:
            assert_same(native, ref, scores.dtype)
        elif len(case.queries) and len(case.corpus):
            exact = exact_scores(case.queries, case.corpus, metric)
            near = np.abs(exact - threshold) <= tolerance(case.queries, case.corpus, metric)
            for found in (native, ref):
                hit = np.zeros(exact.shape, bool)
                for i in range(len(exact)):
                    hit[i, found.query(i)[1]] = True
                passes = exact >= threshold if HIGHER_IS_BETTER[metric] else exact <= threshold
                assert ((hit == passes) | near).all()

    check()


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES[::2], ids=CASE_IDS[::2])
def test_a_row_filter_keeps_the_allowed_rows_of_the_unfiltered_result(isa, q_kind, c_kind, metric):
    native_backend = sk._backend.active

    @settings(max_examples=15, deadline=None)
    @given(search_cases(q_kind, c_kind, metric), st.floats(0, 1), st.booleans(), st.data())
    def check(case, share, per_query, data):
        n, nq = len(case.corpus), len(case.queries)
        masks = np.random.default_rng(n + nq).random((nq if per_query else 1, n)) < share
        bitmap = np.packbits(masks, axis=1, bitorder="little")
        args = prepare(case.queries, case.corpus, metric)
        scores = sk.cdist(case.queries, case.corpus, metric=metric, threads=2)
        threshold = data.draw(thresholds(scores))
        want = expected(scores, threshold, metric, np.broadcast_to(masks, scores.shape))
        got = native_backend.range_search(args, threshold, 2**63 - 1, 2, bitmap)
        assert_same(sk.RangeResult(*got), want, scores.dtype)
        ref_scores = numpy_answer(sk.cdist, case.queries, case.corpus, metric=metric)
        ref = _numpy_backend.range_search(args, threshold, 2**63 - 1, 1, bitmap)
        assert_same(sk.RangeResult(*ref),
                    expected(ref_scores, threshold, metric, np.broadcast_to(masks, scores.shape)),
                    scores.dtype)

    check()


def test_many_queries_and_blocks_give_every_result_once(backend):
    """Past one tile of queries and one block of rows, on two threads: every
    passing pair once, in the order of the rows' scores."""
    rng = np.random.default_rng(7)
    corpus = rng.standard_normal((3000, 24), dtype=np.float32)
    queries = rng.standard_normal((150, 24), dtype=np.float32)
    scores = sk.cdist(queries, corpus, metric="l2", threads=2)
    threshold = float(np.quantile(scores, 0.01))
    got = sk.range_search(queries, corpus, threshold, "l2", threads=2)
    assert_same(got, expected(scores, threshold, "l2"), np.dtype(np.float32))
    assert got.counts.sum() > 1000


def test_max_results_raises_only_past_the_cap(backend):
    rng = np.random.default_rng(3)
    corpus = rng.integers(-3, 4, (500, 8)).astype(np.int8)
    queries = rng.integers(-3, 4, (40, 8)).astype(np.int8)
    total = len(sk.range_search(queries, corpus, 2, "dot").indices)
    assert 0 < total < 40 * 500
    assert len(sk.range_search(queries, corpus, 2, "dot", max_results=total).indices) == total
    with pytest.raises(ValueError, match=f"more than max_results={total - 1} results"):
        sk.range_search(queries, corpus, 2, "dot", max_results=total - 1)
    with pytest.raises(ValueError, match="max_results=0"):
        sk.range_search(queries, corpus, -np.inf, "dot", max_results=0)


def test_shapes_of_empty_and_one_query_calls(backend):
    corpus = np.eye(4, dtype=np.float32)
    one = sk.range_search(corpus[1], corpus, 0.5, "dot")
    np.testing.assert_array_equal(one.lims, [0, 1])
    np.testing.assert_array_equal(one.indices, [1])
    none = sk.range_search(np.empty((0, 4), np.float32), corpus, 0.5, "dot")
    np.testing.assert_array_equal(none.lims, [0])
    empty = sk.range_search(corpus, np.empty((0, 4), np.float32), 0.5, "dot")
    np.testing.assert_array_equal(empty.lims, [0, 0, 0, 0, 0])
    assert empty.scores.dtype == np.float32 and len(empty.indices) == 0
    everything = sk.range_search(corpus, corpus, np.inf, "l2")
    np.testing.assert_array_equal(everything.counts, [4, 4, 4, 4])
    assert everything.query(-1)[1][0] == 3  # itself first, at distance 0


@pytest.mark.parametrize("threshold,error", [("0.5", TypeError), (None, TypeError),
                                             (True, TypeError), (np.nan, ValueError)])
def test_threshold_must_be_a_number(backend, threshold, error):
    corpus = np.eye(4, dtype=np.float32)
    with pytest.raises(error, match="threshold"):
        sk.range_search(corpus, corpus, threshold, "dot")


@pytest.mark.parametrize("cap,error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_max_results_must_be_a_count(backend, cap, error):
    corpus = np.eye(4, dtype=np.float32)
    with pytest.raises(error, match="max_results"):
        sk.range_search(corpus, corpus, 0.5, "dot", max_results=cap)


@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_the_threshold_is_compared_in_float64(backend, metric):
    """A threshold between two float32 values is not rounded to either: the
    best score, a float32, is out for a threshold a float64 step past it."""
    corpus = np.array([[1.0, 0.0], [0.5, 0.0]], np.float32)
    query = np.array([0.7, 0.0], np.float32)
    best = sk.topk(query, corpus, k=1, metric=metric).scores[0]
    outward = np.inf if metric == "dot" else -np.inf
    assert len(sk.range_search(query, corpus, float(best), metric).indices) == 1
    assert len(sk.range_search(query, corpus, np.nextafter(float(best), outward),
                               metric).indices) == 0
