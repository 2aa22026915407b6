"""Filters (docs/index.md, Filters): allow-lists, deny-lists, masks over ids
and id ranges, shared or per query and in any combination, on both
backends. As faiss's selector tests do, each filtered search over the whole
index is held to the unfiltered search of an index of just the selected
vectors. Small-integer vectors make every score exact and ties common."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk

DIM = 6


@st.composite
def filtered_indexes(draw):
    """An index with sparse ids and some removed, queries, and filters."""
    n = draw(st.integers(0, 120))
    nq = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-2, 3, (n, DIM)).astype(np.float32)
    ids = np.sort(rng.choice(4 * n + 1, n, replace=False))
    removed = ids[rng.random(n) < draw(st.floats(0, 0.5))]
    queries = rng.integers(-2, 3, (nq, DIM)).astype(np.float32)
    per_query = draw(st.booleans())
    lists = nq if per_query else 1
    top = 4 * n + 3

    def some_ids():
        return [rng.choice(top, rng.integers(0, top), replace=False) for _ in range(lists)]

    filters = {}
    if draw(st.booleans()):
        allow = some_ids()
        filters["allow"] = allow if per_query else allow[0]
    if draw(st.booleans()):
        exclude = some_ids()
        filters["exclude"] = exclude if per_query else exclude[0]
    if draw(st.booleans()):
        mask = rng.random((lists, rng.integers(0, top))) < 0.6  # may stop short of the ids
        filters["mask"] = mask if per_query else mask[0]
    if draw(st.booleans()):
        low = rng.integers(0, top, lists)
        ranges = np.stack([low, low + rng.integers(0, top, lists)], axis=1)
        filters["id_range"] = ranges if per_query else ranges[0]
    return x, ids, removed, queries, filters


def selected(ids: np.ndarray, removed: np.ndarray, filters: dict, i: int) -> np.ndarray:
    """Whether each id may be returned to query i, written out plainly."""
    def nth(value):
        return value[i] if isinstance(value, list) or np.ndim(value) == 2 else value

    keep = ~np.isin(ids, removed)
    if "allow" in filters:
        keep &= np.isin(ids, nth(filters["allow"]))
    if "exclude" in filters:
        keep &= ~np.isin(ids, nth(filters["exclude"]))
    if "mask" in filters:
        mask = nth(filters["mask"])
        keep &= np.array([bool(j < len(mask) and mask[j]) for j in ids], bool)
    if "id_range" in filters:
        low, high = nth(filters["id_range"])
        keep &= (ids >= low) & (ids < high)
    return keep


def index_of(x: np.ndarray, ids: np.ndarray, dtype: str = "float32") -> sk.Index:
    # int8 is fitted on a fixed range, so every index of these vectors shares it.
    quantizer = sk.Int8Quantizer.fit(np.array([[2.0] * DIM])) if dtype == "int8" else None
    index = sk.Index(DIM, "sqeuclidean", dtype, quantizer=quantizer)
    if len(x):
        index.add(x, ids=ids)
    return index


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_a_filtered_search_is_the_search_of_the_selected_vectors(backend, dtype):
    @settings(max_examples=60, deadline=None)
    @given(filtered_indexes(), st.integers(1, 12))
    def check(case, k):
        x, ids, removed, queries, filters = case
        index = index_of(x, ids, dtype)
        if len(removed):
            index.remove(removed)
        got = index.search(queries, k=k, **filters)
        threshold = 9.0
        ranged = index.range_search(queries, threshold, **filters)
        for i in range(len(queries)):
            keep = selected(ids, removed, filters, i)
            sub = index_of(x[keep], ids[keep], dtype)
            want = sub.search(queries[i], k=k)
            count = len(want.indices)
            np.testing.assert_array_equal(got.indices[i, :count], want.indices)
            np.testing.assert_array_equal(got.scores[i, :count], want.scores)
            assert (got.indices[i, count:] == -1).all()
            np.testing.assert_array_equal(ranged.query(i)[1],
                                          sub.range_search(queries[i], threshold).indices)

    check()


def test_a_row_mask_in_topk_and_range_search_is_the_search_of_those_rows(backend):
    @settings(max_examples=60, deadline=None)
    @given(filtered_indexes(), st.integers(1, 12), st.booleans())
    def check(case, k, per_query):
        x, _, _, queries, _ = case
        rng = np.random.default_rng(len(x))
        mask = rng.random((len(queries) if per_query else 1, len(x))) < 0.5
        got = sk.topk(queries, x, k=k, metric="sqeuclidean", mask=mask if per_query else mask[0])
        ranged = sk.range_search(queries, x, 9.0, "sqeuclidean", mask=mask if per_query else mask[0])
        for i in range(len(queries)):
            rows = np.flatnonzero(mask[i if per_query else 0])
            want = sk.topk(queries[i], x[rows], k=k, metric="sqeuclidean")
            count = len(want.indices)
            np.testing.assert_array_equal(got.indices[i, :count], rows[want.indices])
            np.testing.assert_array_equal(got.scores[i, :count], want.scores)
            assert (got.indices[i, count:] == -1).all() and np.isnan(got.scores[i, count:]).all()
            np.testing.assert_array_equal(
                ranged.query(i)[1], rows[sk.range_search(queries[i], x[rows], 9.0,
                                                         "sqeuclidean").indices])

    check()


def test_filters_name_what_is_wrong(backend):
    index = index_of(np.eye(DIM, dtype=np.float32), np.arange(DIM))
    q = np.ones((2, DIM), np.float32)
    cases = [({"exclude": [[1], [2], [3]]}, ValueError, "exclude must be one list"),
             ({"exclude": [0.5]}, TypeError, "exclude must be integers"),
             ({"mask": [1, 0]}, TypeError, "mask must be booleans"),
             ({"mask": np.ones((3, 4), bool)}, ValueError, "one row per query"),
             ({"id_range": (1, 2, 3)}, ValueError, "id_range must be"),
             ({"id_range": (0.5, 2)}, TypeError, "id_range must be integer")]
    for filters, error, message in cases:
        with pytest.raises(error, match=message):
            index.search(q, k=2, **filters)
        with pytest.raises(error, match=message):
            index.range_search(q, 1.0, **filters)
    for mask, error in ((np.ones(DIM - 1, bool), ValueError), (np.ones(DIM), TypeError),
                        (np.ones((3, DIM), bool), ValueError)):
        with pytest.raises(error, match="mask"):
            sk.topk(q, np.eye(DIM, dtype=np.float32), k=2, mask=mask)
