"""sk.Index (docs/index.md): storage, ids, filters, Matryoshka,
on every backend. Persistence has its own file (test_index_file.py)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk
from reference import assert_valid_topk, exact_scores, tolerance
from strategies import index_operations

STORAGE_CASES = [("float32", None), ("float16", None), ("bfloat16", None), ("int8", None),
                 ("binary", None), ("binary", "float32"), ("binary", "int8"), ("int8", "float16"),
                 ("binary", "bfloat16")]
FLOAT_METRICS = ["cosine", "dot", "sqeuclidean", "l2"]


pytestmark = pytest.mark.usefixtures("index_pieces")


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def metrics_for(dtype):
    return ["cosine", "dot", "hamming"] if dtype == "binary" else FLOAT_METRICS


def test_add_returns_ids_and_search_returns_them(backend, rng):
    index = sk.Index(16, "cosine")
    x = rng.standard_normal((40, 16)).astype(np.float32)
    first = index.add(x[:30])
    second = index.add(x[30:], ids=np.arange(1000, 1010))
    assert first.tolist() == list(range(30)) and second.tolist() == list(range(1000, 1010))
    assert index.add(x[:2]).tolist() == [1010, 1011]  # after the largest id so far
    scores, ids = index.search(x[[3, 35]], k=1)
    assert ids.tolist() == [[3], [1005]]
    assert scores.dtype == np.float32
    assert len(index) == 42 and index.dim == 16 and index.nbytes >= 42 * 16 * 4


def test_search_matches_topk_on_the_same_rows(backend, rng):
    x = rng.standard_normal((500, 24)).astype(np.float32)
    q = rng.standard_normal((7, 24)).astype(np.float32)
    ids = rng.permutation(10_000)[:500]
    for metric in FLOAT_METRICS:
        index = sk.Index(24, metric)
        index.add(x, ids=ids)
        got = index.search(q, k=9)
        order = np.argsort(ids)
        want = sk.topk(q, x[order], k=9, metric=metric)
        np.testing.assert_array_equal(got.indices, ids[order][want.indices])
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


@pytest.mark.parametrize("dtype,rescore", STORAGE_CASES)
def test_every_vector_finds_itself_first(backend, rng, dtype, rescore):
    x = rng.standard_normal((300, 32)).astype(np.float32)
    for metric in metrics_for(dtype):
        if metric == "hamming" and rescore:
            continue
        index = sk.Index(32, metric, dtype, rescore)
        ids = index.add(x)
        found = index.search(x, k=1).indices[:, 0]
        if metric == "dot" or (dtype in ("int8", "binary") and rescore is None):
            # dot is not maximised by the vector itself; codes may collide.
            continue
        np.testing.assert_array_equal(found, ids)


def test_int8_and_binary_search_the_codes_topk_would(backend, rng):
    x = rng.standard_normal((400, 48)).astype(np.float32)
    q = rng.standard_normal((5, 48)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for metric in FLOAT_METRICS:
        index = sk.Index(48, metric, "int8")
        index.add(x)
        codes = index.quantizer.encode(unit if metric == "cosine" else x)
        want = sk.topk(q if metric in ("cosine", "dot") else q / index.quantizer.scale,
                       codes, k=6, metric=metric)
        got = index.search(q, k=6)
        np.testing.assert_array_equal(got.indices, want.indices)
        factor = {"cosine": 1, "dot": index.quantizer.scale,
                  "sqeuclidean": index.quantizer.scale ** 2, "l2": index.quantizer.scale}[metric]
        np.testing.assert_allclose(got.scores, want.scores * factor, rtol=1e-5, atol=1e-6)
    binary = sk.Index(48, "hamming", "binary")
    binary.add(x)
    want = sk.topk(sk.binary_quantize(q), sk.binary_quantize(x), k=6, metric="hamming")
    got = binary.search(q, k=6)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores.astype(np.float32))


def test_symmetric_int8_scores_decoded_vectors(backend, rng):
    x = rng.standard_normal((200, 20)).astype(np.float32)
    for metric in FLOAT_METRICS:
        index = sk.Index(20, metric, "int8", asymmetric=False)
        index.add(x)
        codec = index.quantizer
        stored = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
        q_codes = codec.encode(stored[:4])
        decoded = codec.decode(codec.encode(stored))
        got = index.search(x[:4], k=5)
        exact = exact_scores(codec.decode(q_codes), decoded, metric)
        rows = np.argsort(index.ids)[got.indices]
        np.testing.assert_allclose(got.scores, np.take_along_axis(exact, rows, 1),
                                   rtol=1e-5, atol=1e-5)


def test_rescoring_returns_the_rescore_storage_scores(backend, rng):
    x = rng.standard_normal((600, 64)).astype(np.float32)
    q = rng.standard_normal((6, 64)).astype(np.float32)
    index = sk.Index(64, "cosine", "binary", rescore="float32", rescore_factor=5)
    index.add(x)
    got = index.search(q, k=4)
    first = sk.topk(q, sk.binary_quantize(x), k=20, metric="cosine")
    want = sk.rescore(q, first.indices, x, k=4, metric="cosine")
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)


def test_cosine_index_stores_normalized_rows_and_says_so(backend, rng):
    x = rng.standard_normal((10, 8)).astype(np.float32) * 7
    x[3] = 0
    index = sk.Index(8, "cosine")
    index.add(x)
    assert index.normalized and "normalized" in repr(index)
    stored = index.get(np.arange(10))
    np.testing.assert_allclose(np.linalg.norm(stored[np.arange(10) != 3], axis=1), 1, rtol=1e-6)
    assert (stored[3] == 0).all()
    assert index.search(x[3], k=2).scores.tolist() == [0.0, 0.0]  # zero vector: cosine 0
    l2 = sk.Index(8, "l2")
    l2.add(x)
    assert not l2.normalized
    np.testing.assert_array_equal(l2.get([4, 5]), x[[4, 5]])
    assert l2.get(4).shape == (8,)


def test_k_above_size_gives_fewer_columns_never_padding(backend, rng):
    index = sk.Index(4, "l2")
    assert index.search(np.ones(4), k=3).indices.shape == (0,)
    index.add(rng.standard_normal((2, 4)))
    result = index.search(np.ones((3, 4)), k=5)
    assert result.indices.shape == (3, 2) and (result.indices >= 0).all()
    assert result.counts.tolist() == [2, 2, 2]


def test_ids_in_any_order_break_ties_by_the_lower_id(backend):
    index = sk.Index(2, "dot")
    same = np.array([[1.0, 0.0]] * 3, dtype=np.float32)
    index.add(same, ids=[50, 7, 30])
    index.add(same[:1], ids=[3])
    index.add(np.array([[0.5, 0.0]], dtype=np.float32), ids=[1])
    assert index.search([1.0, 0.0], k=5).indices.tolist() == [3, 7, 30, 50, 1]
    assert index.ids.tolist() == [1, 3, 7, 30, 50]


def test_remove_never_renumbers_and_compact_reclaims(backend, rng):
    x = rng.standard_normal((100, 6)).astype(np.float32)
    index = sk.Index(6, "l2")
    index.add(x)
    before = index.nbytes
    index.remove([5, 17])
    assert len(index) == 98 and 5 not in index and 6 in index
    ids = index.search(x, k=1).indices[:, 0]
    assert ids[6] == 6 and ids[99] == 99 and 5 not in ids and 17 not in ids
    assert index.nbytes == before  # dead rows stay until compaction
    index.compact()
    assert index.nbytes < before
    np.testing.assert_array_equal(index.search(x, k=1).indices[:, 0], ids)
    with pytest.raises(KeyError, match="5"):
        index.remove([5])
    with pytest.raises(KeyError, match="17"):
        index.get([17])


def test_many_removals_compact_automatically(backend, rng):
    index = sk.Index(3, "dot")
    index.add(rng.standard_normal((100, 3)))
    index.remove(np.arange(0, 40))
    assert index.nbytes == 60 * (3 * 4 + 8)
    assert index.ids.tolist() == list(range(40, 100))


def test_existing_ids_need_replace(backend, rng):
    index = sk.Index(3, "l2")
    index.add(np.eye(3), ids=[1, 2, 3])
    with pytest.raises(ValueError, match="replace=True"):
        index.add(np.ones((1, 3)), ids=[2])
    assert len(index) == 3
    index.add(np.full((1, 3), 9.0), ids=[2], replace=True)
    np.testing.assert_array_equal(index.get(2), [9, 9, 9])
    index.remove([3])
    index.add(np.full((1, 3), 4.0), ids=[3])  # a removed id may come back
    assert index.ids.tolist() == [1, 2, 3] and len(index) == 3


def test_allow_list_shared_or_per_query(backend, rng):
    x = rng.standard_normal((2000, 16)).astype(np.float32)
    q = rng.standard_normal((3, 16)).astype(np.float32)
    index = sk.Index(16, "cosine")
    index.add(x, ids=np.arange(2000) * 10)
    index.remove([40])
    for allowed in (np.arange(0, 20000, 30), np.arange(0, 20000, 1000), np.arange(0, 20000, 10)):
        got = index.search(q, k=5, allow=allowed)
        ok = np.isin(np.arange(2000) * 10, allowed) & (np.arange(2000) != 4)
        want = sk.topk(q, x[ok], k=5, metric="cosine")
        np.testing.assert_array_equal(got.indices, (np.flatnonzero(ok) * 10)[want.indices])
    lists = [np.array([10, 20, 30, 99999]), np.array([], dtype=np.int64), np.arange(0, 20000, 20)]
    got = index.search(q, k=3, allow=lists)
    assert got.counts.tolist() == [3, 0, 3]
    assert set(got.indices[0].tolist()) == {10, 20, 30}
    assert got.indices[1].tolist() == [-1, -1, -1] and np.isnan(got.scores[1]).all()
    dense = index.search(q, k=3, allow=[np.arange(0, 20000, 10)] * 3)
    np.testing.assert_array_equal(dense.indices, index.search(q, k=3).indices)


def test_short_allow_lists_pad_rows_with_minus_one_and_nan(backend, rng):
    index = sk.Index(4, "dot", "int8", rescore="float32")
    index.add(rng.standard_normal((50, 4)))
    result = index.search(rng.standard_normal((2, 4)), k=4, allow=[[3, 8], [9]])
    assert result.indices[:, 2:].tolist() == [[-1, -1], [-1, -1]]
    assert result.indices[1, 1] == -1 and np.isnan(result.scores[1, 1:]).all()
    assert result.counts.tolist() == [2, 1]
    scores, ids = result  # still unpacks to two arrays
    assert ids is result.indices


def test_matryoshka_prefix_search_and_refine(backend, rng):
    x = rng.standard_normal((800, 64)).astype(np.float32)
    q = rng.standard_normal((4, 64)).astype(np.float32)
    index = sk.Index(64, "cosine", rescore_factor=3)
    index.add(x)
    prefix = index.search(q, k=5, dims=16, refine=False)
    want = sk.topk(q[:, :16], x[:, :16], k=5, metric="cosine")
    np.testing.assert_array_equal(prefix.indices, want.indices)
    refined = index.search(q, k=5, dims=16)
    first = sk.topk(q[:, :16], x[:, :16], k=15, metric="cosine")
    np.testing.assert_array_equal(refined.indices,
                                  sk.rescore(q, first.indices, x, k=5, metric="cosine").indices)
    binary = sk.Index(64, "hamming", "binary")
    binary.add(x)
    got = binary.search(q, k=5, dims=32, refine=False)
    want = sk.topk(sk.binary_quantize(q[:, :32]), sk.binary_quantize(x[:, :32]), k=5,
                   metric="hamming")
    np.testing.assert_array_equal(got.indices, want.indices)


def test_index_and_quantizer_pickle(backend, rng):
    index = sk.Index(8, "cosine", "int8", rescore="float16")
    index.add(rng.standard_normal((30, 8)), ids=np.arange(30) * 3)
    index.remove([3])
    again = pickle.loads(pickle.dumps(index))
    q = rng.standard_normal((2, 8))
    np.testing.assert_array_equal(again.search(q, k=4).indices, index.search(q, k=4).indices)
    assert again.quantizer == index.quantizer and len(again) == 29
    assert again.add(np.ones((1, 8))).tolist() == [88]  # one past the largest id, 87
    assert pickle.loads(pickle.dumps(index.quantizer)) == index.quantizer


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_property_each_vector_is_its_own_best_match(backend, metric):
    @settings(max_examples=25, deadline=None)
    @given(st.integers(1, 60), st.integers(1, 20), st.integers(0, 2**32 - 1), st.booleans())
    def check(n, dim, seed, duplicates):
        rng = np.random.default_rng(seed)
        x = rng.integers(-3, 4, size=(n, dim)).astype(np.float32)
        if duplicates:
            x[1::2] = x[0::2][:len(x[1::2])]
        index = sk.Index(dim, metric)
        ids = index.add(x, ids=rng.permutation(10 * n)[:n])
        result = index.search(x, k=min(n, 8))
        own = index.search(x, k=n)
        for i in range(n):
            own_score = own.scores[i][own.indices[i] == ids[i]][0]
            # The vector itself or an equally good one (a duplicate, a
            # parallel vector for cosine) comes first.
            tol = 1e-5 * np.sqrt(dim) * (1 if metric == "cosine" else 1 + (x[i] ** 2).sum())
            assert abs(result.scores[i, 0] - own_score) <= tol
            if metric == "l2":
                assert own_score == 0 or backend.name == "numpy"
                assert own_score <= tol

    check()


def test_property_ids_survive_any_sequence_of_changes(backend, tmp_path):
    @settings(max_examples=25, deadline=None)
    @given(index_operations())
    def check(operations):
        index = sk.Index(5, "l2", "float32")
        model: dict[int, np.ndarray] = {}
        for op, payload in operations:
            if op == "add":
                vectors, ids = payload
                fresh = [i for i in ids if i not in model]
                vectors = vectors[:len(fresh)]
                index.add(vectors, ids=fresh)
                model.update(zip(fresh, vectors))
            elif op == "remove":
                gone = [i for i in payload if i in model]
                index.remove(gone)
                for i in gone:
                    del model[i]
            elif op == "compact":
                index.compact()
            elif op == "save":
                index.save(tmp_path / "ops.sk")
                index = sk.Index.load(tmp_path / "ops.sk", mmap=payload)
            assert sorted(model) == index.ids.tolist() and len(index) == len(model)
        if model:
            ids = np.array(sorted(model))
            vectors = np.stack([model[i] for i in ids])
            np.testing.assert_array_equal(index.get(ids), vectors)
            result = index.search(vectors, k=3)
            assert_valid_topk(result.scores, np.searchsorted(ids, result.indices), vectors,
                              vectors, "l2", 3)

    check()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_scores_stay_within_the_float_tolerance(backend, rng, dtype):
    x = rng.standard_normal((300, 40)).astype(dtype).astype(np.float32)
    q = rng.standard_normal((5, 40)).astype(np.float32)
    for metric in FLOAT_METRICS:
        index = sk.Index(40, metric, dtype)
        index.add(x)
        stored = index.get(index.ids)
        got = index.search(q, k=10)
        exact = exact_scores(q, stored, metric)
        tol = tolerance(q, stored, metric)
        rows = got.indices
        assert (np.abs(got.scores - np.take_along_axis(exact, rows, 1))
                <= np.take_along_axis(tol, rows, 1) + 1e-7).all()


def test_a_binary_index_takes_bit_packed_rows(backend, rng):
    x = rng.standard_normal((50, 20)).astype(np.float32)
    from_floats, from_bits = sk.Index(20, "hamming", "binary"), sk.Index(20, "hamming", "binary")
    from_floats.add(x)
    from_bits.add(sk.binary_quantize(x))
    q = rng.standard_normal((3, 20))
    np.testing.assert_array_equal(from_bits.search(q, k=5).indices,
                                  from_floats.search(q, k=5).indices)
    np.testing.assert_array_equal(from_bits.get([4]), from_floats.get([4]))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_the_index_keeps_its_own_copy_of_what_it_is_given(backend, rng, metric):
    x = rng.standard_normal((300, 4)).astype(np.float32)
    index = sk.Index(4, metric)
    index.add(x)
    stored = index.get(index.ids)
    x[:] = 7  # the caller reuses their buffer
    np.testing.assert_array_equal(index.get(index.ids), stored)


def test_an_int8_scale_needs_a_first_batch_it_can_be_fitted_on(backend):
    index = sk.Index(4, "dot", "int8")
    with pytest.raises(ValueError, match=r"quantizer=sk\.Int8Quantizer\.fit\(sample\)"):
        index.add(np.zeros((200, 4)))
    assert len(index) == 0 and index.quantizer is None
    with pytest.warns(RuntimeWarning, match="fitted on the first 10 vectors"):
        index.add(np.ones((10, 4)))
    given = sk.Index(4, "dot", "int8", quantizer=sk.Int8Quantizer(0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        given.add(np.zeros((3, 4)))


def test_membership_is_for_integer_ids_only(backend):
    index = sk.Index(2, "dot")
    index.add(np.ones((3, 2)))
    assert 1 in index and np.int32(2) in index
    assert 1.5 not in index and "1" not in index and True not in index and 2**70 not in index


def test_automatic_ids_stop_before_int64_overflows(backend):
    index = sk.Index(2, "dot")
    index.add(np.ones((1, 2)), ids=[2**63 - 2])
    assert index.add(np.ones((1, 2))).tolist() == [2**63 - 1]
    with pytest.raises(ValueError, match="no automatic ids left"):
        index.add(np.ones((1, 2)))
    assert len(index) == 2
    assert index.add(np.ones((1, 2)), ids=[5]).tolist() == [5]


@pytest.mark.parametrize("dtype,rescore", STORAGE_CASES)
def test_range_search_returns_what_a_search_of_every_vector_returns_to_the_threshold(
        backend, rng, dtype, rescore):
    x = rng.standard_normal((300, 32)).astype(np.float32)
    q = rng.standard_normal((4, 32)).astype(np.float32)
    for metric in metrics_for(dtype):
        if metric == "hamming" and rescore:
            continue
        index = sk.Index(32, metric, dtype, rescore)
        index.add(x, ids=rng.permutation(5000)[:300])
        index.remove(index.ids[::7])
        every = index.search(q, k=len(index))
        threshold = float(every.scores[0, len(index) // 3])
        higher = metric in ("cosine", "dot") and not np.issubdtype(every.scores.dtype, np.integer)
        found = index.range_search(q, threshold)
        assert found.scores.dtype == np.float32
        for i in range(len(q)):
            # A search re-ranks its candidates in another summation shape than
            # the scan's: scores agree within float rounding (docs/semantics.md).
            scores, ids = found.query(i)
            passes = every.scores[i] >= threshold if higher else every.scores[i] <= threshold
            near = np.abs(every.scores[i] - threshold) <= 1e-5
            assert set(every.indices[i][passes & ~near]) <= set(ids.tolist())
            assert set(ids.tolist()) <= set(every.indices[i][passes | near])
            by_id = dict(zip(every.indices[i].tolist(), every.scores[i].tolist()))
            np.testing.assert_allclose(scores, [by_id[j] for j in ids.tolist()], atol=1e-5)
            key = -scores.astype(np.float64) if higher else scores.astype(np.float64)
            assert (np.lexsort((ids, key)) == np.arange(len(ids))).all()
        allowed = index.ids[::2]
        some = index.range_search(q, threshold, allow=allowed)
        assert some.counts.tolist() == [np.isin(found.query(i)[1], allowed).sum()
                                        for i in range(len(q))]


def test_calibrate_measures_the_recall_a_search_then_gets(backend, rng):
    centers = rng.standard_normal((20, 32))
    x = (centers[rng.integers(0, 20, 2000)] + 0.6 * rng.standard_normal((2000, 32)))
    q = (centers[rng.integers(0, 20, 50)] + 0.6 * rng.standard_normal((50, 32))).astype(np.float32)
    index = sk.Index(32, "cosine", "binary", rescore="float32")
    index.add(x.astype(np.float32))
    found = index.calibrate(0.95, k=10, queries=q, max_factor=20)
    recall = found.recall_by_depth
    assert len(recall) == 200 and (np.diff(recall) >= 0).all()
    assert found.met and found.recall == recall[found.depth - 1] >= 0.95
    assert found.depth == 10 or recall[found.depth - 2] < 0.95  # the least depth
    assert index.rescore_factor == found.depth / 10 and found.queries == 50
    # What it measured is what a search now gets, against an exhaustive
    # search of the rescore storage.
    exact = sk.topk(q, index.get(index.ids), k=10, metric="cosine").indices
    got = index.search(q, k=10).indices
    overlap = np.mean([len(set(a) & set(index.ids[b])) / 10 for a, b in zip(got, exact)])
    assert overlap == pytest.approx(found.recall)
    # Held out: the index's own vectors, each without itself, aim at half the misses.
    own = index.calibrate(0.95, k=10, max_factor=20, sample=100)
    assert own.queries == 100 and own.recall >= 0.975 and own.depth >= 10


def test_calibrate_needs_rescore_storage_and_a_target(backend, rng):
    with pytest.raises(ValueError, match="rescore storage"):
        sk.Index(8, "cosine", "int8").calibrate()
    index = sk.Index(8, "cosine", "binary", rescore="float32")
    with pytest.raises(ValueError, match="at least 2 vectors"):
        index.calibrate()
    index.add(rng.standard_normal((30, 8)).astype(np.float32))
    for target in (0, 1.5):
        with pytest.raises(ValueError, match="target_recall"):
            index.calibrate(target)
    assert sk.Index(8, rescore_factor=2.5).rescore_factor == 2.5
