"""A corpus in parts (docs/semantics.md, Corpus in parts): a list of arrays
is searched as their concatenation would be, rows numbered across the
parts, and merge_topk joins separate searches' top-k lists by the same
rules, on both backends and every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import simkernel as sk
from conftest import numpy_answer
from strategies import PAIR_METRIC_CASES, parted_cases

CASE_IDS = [f"{q}x{c}-{m}" for q, c, m in PAIR_METRIC_CASES]
EXAMPLES = settings(max_examples=20, deadline=None)


def same(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("q_kind,c_kind,metric", PAIR_METRIC_CASES, ids=CASE_IDS)
def test_parts_and_merged_part_searches_answer_as_their_concatenation(isa, q_kind, c_kind, metric):
    @EXAMPLES
    @given(parted_cases(q_kind, c_kind, metric))
    def check(parted):
        case, parts = parted
        whole = np.ascontiguousarray(case.corpus)
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        for answer in (sk.topk, lambda *a, **kw: numpy_answer(sk.topk, *a, **kw)):
            want = answer(case.queries, whole, case.k, metric)
            same(answer(case.queries, parts, case.k, metric), want)
            # Each part searched on its own, then merged: the same answer.
            results = [answer(case.queries, part, case.k, metric) for part in parts]
            same(sk.merge_topk(results, offsets, case.k, metric), want)
        np.testing.assert_array_equal(sk.cdist(case.queries, parts, metric),
                                      sk.cdist(case.queries, whole, metric))
        if len(case.queries) and len(whole):
            threshold = float(np.median(sk.cdist(case.queries, whole, metric)))
            got, want = sk.range_search(case.queries, parts, threshold, metric), \
                sk.range_search(case.queries, whole, threshold, metric)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
            rng = np.random.default_rng(len(whole))
            candidates = np.stack([rng.permutation(len(whole))[:3] for _ in case.queries]) \
                if len(whole) >= 3 else None
            if candidates is not None:
                same(sk.rescore(case.queries, candidates, parts, 2, metric),
                     sk.rescore(case.queries, candidates, whole, 2, metric))

    check()


def test_filtered_results_merge_without_their_padding(backend):
    rng = np.random.default_rng(0)
    corpus, queries = rng.standard_normal((60, 8)), rng.standard_normal((4, 8))
    keep = np.zeros(60, bool)
    keep[[3, 17, 31, 44, 58]] = True  # five rows for ten results: padding follows
    parts, masks = [corpus[:30], corpus[30:]], [keep[:30], keep[30:]]
    results = [sk.topk(queries, p, 10, "dot", mask=m) for p, m in zip(parts, masks)]
    merged = sk.merge_topk(results, [0, 30], 10, "dot")
    same(merged, sk.topk(queries, corpus, 10, "dot", mask=keep))
    assert (merged.indices == -1).any() and np.isnan(merged.scores[merged.indices == -1]).all()


def test_merge_keeps_ties_to_the_lower_global_row_and_one_query_shapes(backend):
    ones = np.ones((5, 4), np.float32)
    results = [sk.topk(ones[0], ones, 3, "dot"), sk.topk(ones[0], ones, 3, "dot")]
    merged = sk.merge_topk(results, [100, 0], 4, "dot")
    assert merged.indices.tolist() == [0, 1, 2, 100] and merged.scores.shape == (4,)


def test_memory_mapped_parts_are_read_in_place(backend, tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 12)).astype(np.float16) for n in (40, 7, 90)]
    paths = []
    for i, array in enumerate(arrays):
        paths.append(tmp_path / f"part{i}.npy")
        np.save(paths[-1], array)
    parts = [np.load(path, mmap_mode="r") for path in paths]
    queries = rng.standard_normal((3, 12)).astype(np.float32)
    same(sk.topk(queries, parts, 9, "cosine"), sk.topk(queries, np.concatenate(arrays), 9, "cosine"))


@pytest.mark.parametrize("call, error, message", [
    (lambda: sk.topk(np.zeros((1, 4)), [np.zeros((2, 4), np.float32), np.zeros((2, 4), np.int8)]),
     TypeError, r"corpus\[1\] has dtype int8 but corpus\[0\] has float32"),
    (lambda: sk.topk(np.zeros((1, 4)), [np.zeros((2, 4), np.float32), np.zeros((2, 5), np.float32)]),
     ValueError, r"corpus\[1\] has rows of 5 elements"),
    (lambda: sk.merge_topk([], [], 3), ValueError, "one per part"),
    (lambda: sk.merge_topk([(np.zeros((2, 3)), np.zeros((2, 3), np.int64))], [-1], 3),
     ValueError, "non-negative"),
    (lambda: sk.merge_topk([(np.zeros((2, 3)), np.zeros((2, 3), np.int64)),
                            (np.zeros((1, 3)), np.zeros((1, 3), np.int64))], [0, 5], 3),
     ValueError, "one row per query"),
])
def test_bad_parts_and_merges_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
