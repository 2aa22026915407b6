"""simkernel.sklearn: scikit-learn's own estimator checks pass, and the
estimators give scikit-learn's brute-force answers (neighbours, distances,
graphs, radius sets) on random and real data, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sklearn_neighbors = pytest.importorskip("sklearn.neighbors", reason="scikit-learn is not installed")
from sklearn.manifold import Isomap  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import simkernel.sklearn as sks  # noqa: E402
from conftest import DATA  # noqa: E402

METRICS = ["euclidean", "sqeuclidean", "cosine"]


@parametrize_with_checks([sks.NearestNeighbors(), sks.NearestNeighbors(metric="cosine"),
                          sks.NearestNeighbors(metric="dot"), sks.KNeighborsTransformer(),
                          sks.KNeighborsTransformer(mode="connectivity", metric="sqeuclidean")])
def test_scikit_learn_estimator_checks(backend, estimator, check):
    check(estimator)


def points(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def theirs(metric: str, **kwargs) -> sklearn_neighbors.NearestNeighbors:
    return sklearn_neighbors.NearestNeighbors(algorithm="brute", metric=metric, **kwargs)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("train_queries", [False, True], ids=["new queries", "X omitted"])
def test_kneighbors_match_scikit_learn(backend, metric, train_queries):
    x, q = points(300, 24, 0), points(40, 24, 1)
    query = None if train_queries else q
    dist, ind = sks.NearestNeighbors(n_neighbors=7, metric=metric).fit(x).kneighbors(query)
    want_dist, want_ind = theirs(metric, n_neighbors=7).fit(x).kneighbors(query)
    assert dist.dtype == np.float64 and ind.dtype == np.int64
    np.testing.assert_array_equal(ind, want_ind)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-5, atol=1e-5)


def test_float32_input_gives_float32_distances(backend):
    x = points(50, 8, 2).astype(np.float32)
    dist, _ = sks.NearestNeighbors(n_neighbors=3).fit(x).kneighbors(x)
    assert dist.dtype == np.float32
    np.testing.assert_array_equal(dist[:, 0], 0)  # every point is at exactly 0 from itself


def test_a_point_is_left_out_of_its_own_neighbours(backend):
    # Five copies of one point tie at distance 0: each copy's neighbours are
    # two other copies, never itself (ties go to the lower index, where
    # scikit-learn leaves their order to its partition).
    x = np.vstack([np.zeros((5, 3)), points(10, 3, 3) + 5])
    dist, ind = sks.NearestNeighbors(n_neighbors=2).fit(x).kneighbors()
    np.testing.assert_array_equal(ind[:5], [[1, 2], [0, 2], [0, 1], [1, 2], [1, 2]])
    np.testing.assert_array_equal(dist[:5], 0)
    want = theirs("euclidean", n_neighbors=2).fit(x).kneighbors(return_distance=False)
    np.testing.assert_array_equal(ind[5:], want[5:])


@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_kneighbors_graph_matches_scikit_learn(backend, mode):
    x, q = points(200, 16, 4), points(30, 16, 5)
    for query in (q, None):
        ours = sks.NearestNeighbors(n_neighbors=6).fit(x).kneighbors_graph(query, mode=mode)
        want = theirs("euclidean", n_neighbors=6).fit(x).kneighbors_graph(query, mode=mode)
        assert ours.shape == want.shape and ours.format == "csr"
        np.testing.assert_allclose(ours.toarray(), want.toarray(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_radius_neighbors_match_scikit_learn(backend, metric):
    x, q = points(300, 6, 6), points(25, 6, 7)
    radius = {"euclidean": 2.0, "sqeuclidean": 4.0, "cosine": 0.3}[metric]
    for query in (q, None):
        dist, ind = sks.NearestNeighbors(radius=radius, metric=metric).fit(x).radius_neighbors(query)
        want_dist, want_ind = theirs(metric, radius=radius).fit(x).radius_neighbors(query)
        for d, i, wd, wi in zip(dist, ind, want_dist, want_ind):
            order = np.argsort(wi)
            assert sorted(i) == list(wi[order])
            np.testing.assert_allclose(d[np.argsort(i)], wd[order], rtol=1e-5, atol=1e-5)
            assert np.all(np.diff(d) >= 0)  # nearest first
        graph = sks.NearestNeighbors(radius=radius, metric=metric).fit(x).radius_neighbors_graph(query)
        want_graph = theirs(metric, radius=radius).fit(x).radius_neighbors_graph(query)
        assert (graph != want_graph).nnz == 0


def test_radius_is_inclusive(backend):
    x = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    ind = sks.NearestNeighbors(radius=5.0).fit(x).radius_neighbors([[0.0, 0.0]],
                                                                   return_distance=False)
    assert list(ind[0]) == [0, 1]


def test_transformer_feeds_isomap_as_scikit_learn_s_does(backend):
    x = points(150, 10, 8)
    graph = sks.KNeighborsTransformer(n_neighbors=8).fit_transform(x)
    want = sklearn_neighbors.KNeighborsTransformer(n_neighbors=8).fit_transform(x)
    np.testing.assert_allclose(graph.toarray(), want.toarray(), rtol=1e-5, atol=1e-6)
    embedding = Isomap(n_neighbors=8, metric="precomputed").fit_transform(graph)
    want_embedding = Isomap(n_neighbors=8, metric="precomputed").fit_transform(want)
    np.testing.assert_allclose(np.abs(embedding), np.abs(want_embedding), rtol=1e-3, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), d=st.integers(1, 40), k=st.integers(1, 5),
       metric=st.sampled_from(["euclidean", "cosine", "dot"]), seed=st.integers(0, 2**16),
       split=st.integers(1, 59))
def test_a_query_gets_the_same_answer_alone_and_inside_a_batch(n, d, k, metric, seed, split):
    x = points(n, d, seed).astype(np.float32)
    model = sks.NearestNeighbors(n_neighbors=min(k, n), metric=metric).fit(x)
    dist, ind = model.kneighbors(x)
    part = x[:min(split, n)]
    part_dist, part_ind = model.kneighbors(part)
    np.testing.assert_array_equal(part_dist, dist[:len(part)])
    np.testing.assert_array_equal(part_ind, ind[:len(part)])
    alone_dist, alone_ind = model.kneighbors(x[-1:])
    np.testing.assert_array_equal(alone_dist[0], dist[-1])
    np.testing.assert_array_equal(alone_ind[0], ind[-1])


@pytest.mark.parametrize("make, message", [
    (lambda: sks.NearestNeighbors(metric="manhattan"), "metric='manhattan' is not supported"),
    (lambda: sks.NearestNeighbors(p=1), "p=1 is not supported"),
    (lambda: sks.NearestNeighbors(algorithm="kd_tree"), "algorithm='kd_tree'"),
    (lambda: sks.NearestNeighbors(n_neighbors=0), "n_neighbors > 0"),
    (lambda: sks.NearestNeighbors(radius=-1.0), "radius must be"),
    (lambda: sks.NearestNeighbors(n_jobs=0), "n_jobs must be"),
    (lambda: sks.KNeighborsTransformer(mode="weights"), "mode must be one of"),
])
def test_bad_parameters_are_named_at_fit(make, message):
    with pytest.raises(ValueError, match=message):
        make().fit(points(10, 3, 9))


def test_bad_calls_are_named():
    model = sks.NearestNeighbors(n_neighbors=3).fit(points(10, 3, 10))
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        model.kneighbors(points(2, 3, 11), n_neighbors=11)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        model.kneighbors(n_neighbors=10)  # itself left out: only 9 others
    with pytest.raises(ValueError, match="features"):
        model.kneighbors(points(2, 4, 12))
    with pytest.raises(ValueError, match="mode must be one of"):
        model.kneighbors_graph(mode="weights")
    with pytest.raises(ValueError, match="NaN"):
        model.kneighbors(np.full((1, 3), np.nan))


@pytest.mark.skipif(not (DATA / "corpus.npy").exists(), reason=f"no shared embeddings at {DATA}")
@pytest.mark.parametrize("metric", METRICS)
def test_neighbour_graph_equals_scikit_learn_s_on_real_embeddings(metric):
    corpus = np.load(DATA / "corpus.npy")[:8000].astype(np.float32)
    queries = np.load(DATA / "queries.npy")[:200].astype(np.float32)
    ours = sks.NearestNeighbors(n_neighbors=10, metric=metric).fit(corpus)
    want = theirs(metric, n_neighbors=10).fit(corpus)
    for query in (queries, corpus[:200]):
        dist, ind = ours.kneighbors(query)
        want_dist, want_ind = want.kneighbors(query)
        # float32 against scikit-learn's float32: the same neighbours where
        # their distances differ by more than rounding.
        distinct = np.abs(np.diff(want_dist, axis=1)).min(axis=1) > 1e-5
        assert distinct.mean() > 0.9
        np.testing.assert_array_equal(ind[distinct], want_ind[distinct])
        np.testing.assert_allclose(dist, want_dist, rtol=2e-5, atol=2e-5)
