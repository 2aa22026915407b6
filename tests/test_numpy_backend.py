"""The numpy backend is as accurate as the core (docs/backends.md): sums in
float64 rounded once, so a vector is exactly 0 from itself and a query's
scores do not depend on the batch it came in or the blocks the work was
split into."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk
from conftest import numpy_answer
from reference import exact_scores
from strategies import PAIR_METRIC_CASES, search_cases

from simkernel import _numpy_backend

FLOAT_CASES = [case for case in PAIR_METRIC_CASES if case[0] == "float32"]


@pytest.mark.parametrize("metric", ["sqeuclidean", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_a_vector_is_at_distance_zero_from_itself(metric, dtype):
    corpus = (np.random.default_rng(0).standard_normal((300, 37)) * 100).astype(dtype)
    scores, indices = numpy_answer(sk.topk, corpus.astype(np.float32), corpus, 1, metric)
    assert (scores[:, 0] == 0).all() and indices[:, 0].tolist() == list(range(300))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), case_kind=st.sampled_from(FLOAT_CASES))
def test_a_query_alone_and_inside_a_batch_gets_identical_scores(data, case_kind):
    case = data.draw(search_cases(*case_kind))
    if len(case.queries) == 0 or len(case.corpus) == 0:
        return
    whole = numpy_answer(sk.cdist, case.queries, case.corpus, case.metric)
    i = data.draw(st.integers(0, len(case.queries) - 1))
    alone = numpy_answer(sk.cdist, case.queries[i], case.corpus, case.metric)
    np.testing.assert_array_equal(alone, whole[i])


def test_scores_do_not_depend_on_the_block_split(monkeypatch):
    rng = np.random.default_rng(1)
    queries, corpus = rng.standard_normal((50, 300)), rng.standard_normal((2000, 300))
    for metric in ("dot", "cosine", "sqeuclidean", "l2"):
        whole = numpy_answer(sk.topk, queries, corpus, 20, metric)
        with monkeypatch.context() as small_blocks:
            small_blocks.setattr(_numpy_backend, "_BLOCK_SCORES", 50 * 37)
            split = numpy_answer(sk.topk, queries, corpus, 20, metric)
        np.testing.assert_array_equal(split.scores, whole.scores)
        np.testing.assert_array_equal(split.indices, whole.indices)


@pytest.mark.parametrize("metric", ["dot", "cosine", "sqeuclidean"])
def test_scores_are_the_float64_values_rounded_once(metric):
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((20, 200)).astype(np.float32)
    corpus = np.vstack([rng.standard_normal((100, 200)),
                        queries + 1e-4 * rng.standard_normal((20, 200))]).astype(np.float32)
    got = numpy_answer(sk.cdist, queries, corpus, metric)
    want = exact_scores(queries, corpus, metric).astype(np.float32)
    # Within a unit in the last place of float32 even for the near pairs,
    # where |q|^2 + |c|^2 - 2 q.c cancels almost every bit.
    np.testing.assert_array_max_ulp(got, want, maxulp=1)
