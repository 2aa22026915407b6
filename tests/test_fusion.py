"""sk.fuse (docs/semantics.md, Fusion): reciprocal rank fusion and weighted
score fusion equal their definitions computed id by id, with deterministic
ties and padding."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk


@st.composite
def rankings(draw):
    """2-4 best-first lists per query over a few ids (so they overlap), of
    different lengths, some padded with -1."""
    nq, ids = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    lists = []
    for _ in range(draw(st.integers(2, 4))):
        width = draw(st.integers(1, ids))
        indices = np.stack([rng.permutation(ids)[:width] for _ in range(nq)])
        scores = -np.sort(-rng.choice([0.5, 1.0, 2.0, 3.5], (nq, width)), axis=1)
        indices[rng.random((nq, width)) < 0.15] = -1
        lists.append((scores, indices))
    return lists


def reference(lists, method, weights, normalization="minmax", k=10):
    """The definitions, one query and one id at a time."""
    out = []
    for qi in range(len(lists[0][1])):
        fused = defaultdict(float)
        for (scores, indices), weight in zip(lists, weights):
            held = [(s, i) for s, i in zip(scores[qi], indices[qi]) if i >= 0]
            values = np.array([s for s, _ in held])
            for rank, (score, i) in enumerate(held, start=1):
                if method == "rrf":
                    fused[i] += weight / (60 + rank)
                elif normalization == "minmax":
                    span = values.max() - values.min()
                    fused[i] += weight * ((score - values.min()) / span if span > 0 else 1.0)
                else:
                    std = values.std()
                    fused[i] += weight * ((score - values.mean()) / std if std > 0 else 0.0)
        out.append(sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k])
    return out


@settings(max_examples=80, deadline=None)
@given(lists=rankings(), method=st.sampled_from(["rrf", "weighted"]),
       normalization=st.sampled_from(["minmax", "zscore"]), weighted=st.booleans())
def test_fusion_is_its_definition(lists, method, normalization, weighted):
    weights = [1.0 + 0.5 * i for i in range(len(lists))] if weighted else [1.0] * len(lists)
    got = sk.fuse(lists, method, k=10, weights=weights, normalization=normalization)
    want = reference(lists, method, weights, normalization)
    for row_scores, row_ids, expected in zip(got.scores, got.indices, want):
        ids = [int(i) for i in row_ids if i >= 0]
        assert ids == [i for i, _ in expected]
        np.testing.assert_allclose(row_scores[:len(ids)], [v for _, v in expected], rtol=1e-12)
        assert np.isnan(row_scores[len(ids):]).all() and (row_ids[len(ids):] == -1).all()


def test_rrf_of_a_dense_and_a_sparse_ranking(backend):
    rng = np.random.default_rng(0)
    corpus, queries = rng.standard_normal((500, 16)), rng.standard_normal((3, 16))
    dense = sk.topk(queries, corpus, 20, "cosine")
    lexical = sk.topk(queries, corpus, 20, "l2")
    fused = sk.fuse([dense, lexical], k=5)
    assert fused.indices.shape == (3, 5)
    both = [set(a) & set(b) for a, b in zip(dense.indices, lexical.indices)]
    for row, common in zip(fused.indices, both):
        if common:  # an id both rank near the top outranks ids only one holds
            assert row[0] in common


def test_distances_count_nearer_as_better_in_score_fusion():
    near_first = (np.array([[0.1, 0.5, 2.0]]), np.array([[7, 8, 9]]))
    got = sk.fuse([near_first], "weighted", k=3, metrics=["l2"])
    assert got.indices.tolist() == [[7, 8, 9]]
    np.testing.assert_allclose(got.scores, [[1.0, 1.5 / 1.9, 0.0]])


def test_one_query_gives_one_dimensional_results_and_ties_go_to_the_lower_id():
    a = (np.array([1.0, 0.5]), np.array([4, 2]))
    b = (np.array([1.0, 0.5]), np.array([2, 4]))
    got = sk.fuse([a, b], k=2)
    assert got.indices.tolist() == [2, 4] and got.scores.shape == (2,)


@pytest.mark.parametrize("call, message", [
    (lambda: sk.fuse([]), "results is empty"),
    (lambda: sk.fuse([(np.ones((2, 3)), np.ones((2, 3), int))], "borda"), "method must be"),
    (lambda: sk.fuse([(np.ones((2, 3)), np.ones((2, 3), int)), (np.ones((1, 3)), np.ones((1, 3), int))]),
     "one row per query"),
    (lambda: sk.fuse([(np.ones((1, 3)), np.ones((1, 3), int))], weights=[-1.0]), "weights"),
    (lambda: sk.fuse([(np.ones((1, 3)), np.ones((1, 3), int))], "weighted", normalization="rank"),
     "normalization"),
    (lambda: sk.fuse([(np.ones((1, 3)), np.ones((1, 3), int))], metrics=["cos"]), "metric"),
    (lambda: sk.fuse([(np.ones((1, 3)), np.ones((1, 3), int))], rrf_k=-1), "rrf_k"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
