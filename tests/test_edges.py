"""Argument and numeric edges (docs/semantics.md): counts past any corpus or
machine size, byte-swapped arrays, rows past the integer bounds, an ``out``
that overlaps an input. Each gives the right answer or a clear exception."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import simkernel as sk


@pytest.fixture
def rng():
    return np.random.default_rng(11)


@pytest.fixture
def small(rng):
    return rng.standard_normal((3, 16)).astype(np.float32), rng.standard_normal((50, 16)).astype(np.float32)


@pytest.mark.parametrize("k", [2**62, 2**64, 10**30])
def test_a_k_beyond_any_corpus_gives_every_row(backend, small, k):
    q, c = small
    scores, indices = sk.topk(q, c, k=k)
    assert indices.shape == (3, 50)
    np.testing.assert_array_equal(indices, sk.topk(q, c, k=50).indices)
    assert sk.rescore(q, np.tile(np.arange(9), (3, 1)), c, k=k).indices.shape == (3, 9)


@pytest.mark.parametrize("threads", [10**5, 2**31, 2**64])
def test_a_thread_count_beyond_the_machine_gives_the_same_answer(backend, small, threads):
    q, c = small
    want = sk.topk(q, c, k=5, threads=1)
    got = sk.topk(q, c, k=5, threads=threads)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_a_huge_thread_count_in_the_environment_is_accepted(backend, small, monkeypatch):
    monkeypatch.setenv("SIMKERNEL_NUM_THREADS", "3000000000")
    q, c = small
    np.testing.assert_array_equal(sk.topk(q, c, k=4).indices, sk.topk(q, c, k=4, threads=1).indices)


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">f8"])
def test_big_endian_floats_are_converted_once(backend, small, dtype):
    q, c = small
    want = sk.topk(q, c.astype(dtype[1:]).astype(np.float32) if dtype == ">f2" else c, k=5)
    got = sk.topk(q.astype(dtype), c.astype(dtype), k=5)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-3 if dtype == ">f2" else 1e-6)


def test_bit_rows_longer_than_int32_counts_are_a_value_error(backend, tmp_path):
    # A sparse file: 2**28 bytes per row (2**31 bits) cost no memory or disk.
    path = tmp_path / "bits"
    with open(path, "wb") as f:
        f.truncate(2**28)
    rows = np.memmap(path, dtype=np.uint8, mode="r", shape=(1, 2**28))
    with pytest.raises(ValueError, match="bit rows longer than 2147483647 bits"):
        sk.topk(rows, rows, k=1, metric="hamming")


@pytest.mark.parametrize("n", [40, 3000])  # one block of the numpy backend, and several
def test_cdist_into_an_out_that_overlaps_an_input_is_still_right(backend, rng, n):
    a = rng.standard_normal((n, n)).astype(np.float32)
    want = sk.cdist(a, a, metric="dot")
    np.testing.assert_array_equal(sk.cdist(a, a, metric="dot", out=a), want)
    b = rng.standard_normal((n, n)).astype(np.float32)
    keep = b.copy()
    want = sk.cdist(keep[:5], keep, metric="l2")
    out = b[:5]  # the first rows of the corpus itself
    sk.cdist(keep[:5], b, metric="l2", out=out)
    np.testing.assert_allclose(out, want, rtol=1e-6)



@pytest.mark.parametrize("scale", [1e-21, 1e-30, 1e-38, 1e-42, 1e20])
def test_cosine_of_tiny_and_huge_vectors_is_their_direction(backend, rng, scale):
    # |x|^2 underflows float32 below ~1e-23 per entry (and 1/|q| * 1/|c|
    # overflows when |q||c| < 3e-39); a finite non-zero vector still has a
    # direction, and its cosine is that of the unscaled vector.
    base = rng.standard_normal((30, 16))
    tiny = (base * scale).astype(np.float32)
    want = sk.cdist(base.astype(np.float32), base.astype(np.float32))
    got = sk.cdist(tiny, tiny)
    assert np.isfinite(got).all()
    tolerance = 1e-2 if scale < 1e-37 else 1e-5  # subnormal inputs keep fewer bits
    np.testing.assert_allclose(got, want, atol=tolerance)
    scores, indices = sk.topk(tiny[:4], tiny, k=4)
    assert (indices >= 0).all() and np.isfinite(scores).all()
    np.testing.assert_array_equal(indices[:, 0], np.arange(4))
    # Tiny rows against normal queries, and the other way round.
    np.testing.assert_allclose(sk.cdist(base[:3].astype(np.float32), tiny), want[:3], atol=tolerance)
    np.testing.assert_allclose(sk.cdist(tiny[:3], base.astype(np.float32)), want[:3], atol=tolerance)


def test_cosine_with_a_zero_vector_is_still_zero(backend):
    x = np.array([[0, 0, 0, 0], [1e-30, 0, 0, 0], [1, 2, 3, 4]], dtype=np.float32)
    got = sk.cdist(x, x)
    assert got[0].tolist() == [0, 0, 0] and got[:, 0].tolist() == [0, 0, 0]
    assert got[1, 1] == pytest.approx(1) and got[1, 2] == pytest.approx(1 / np.sqrt(30), rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("metric", ["dot", "cosine", "l2"])
def test_non_finite_input_is_a_value_error_without_warnings_first(backend, rng, bad, metric):
    corpus = rng.standard_normal((100, 8)).astype(np.float32)
    corpus[37, :2] = bad, -bad  # inf - inf inside a dot product: numpy would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="corpus contains NaN or infinity"):
            sk.topk(corpus[:3] * 0 + 1, corpus, k=4, metric=metric)
