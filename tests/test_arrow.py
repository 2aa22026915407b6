"""pyarrow inputs (docs/semantics.md, Inputs): arrays of fixed-size vectors
are read in place from their value buffer, in any slice, and searched as
the same numpy arrays; chunked arrays join once; nulls and nested tensors
are named errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simkernel as sk
from simkernel._dlpack import as_array

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")

DTYPES = [np.float32, np.float16, np.int8]


def vectors(x: np.ndarray):
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])


def test_fixed_size_lists_are_read_in_place_and_searched_as_numpy(backend):
    @settings(max_examples=40, deadline=None)
    @given(n=st.integers(1, 60), d=st.integers(1, 40), dtype=st.sampled_from(DTYPES),
           start=st.integers(0, 59), length=st.integers(0, 60), seed=st.integers(0, 2**16))
    def check(n, d, dtype, start, length, seed):
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal((n, d)) * (30 if dtype == np.int8 else 1)).astype(dtype)
        arrow = vectors(x).slice(min(start, n), length)
        rows = x[min(start, n):min(start, n) + length]
        view = as_array(arrow, "corpus")
        np.testing.assert_array_equal(view, rows)
        assert view.dtype == x.dtype and (view.size == 0 or np.shares_memory(
            view, arrow.values.to_numpy(zero_copy_only=True)))
        queries = rng.standard_normal((3, d)).astype(np.float32)
        if len(rows):
            for metric in ("dot", "l2"):
                got, want = sk.topk(queries, arrow, 5, metric), sk.topk(queries, rows, 5, metric)
                np.testing.assert_array_equal(got.indices, want.indices)
                np.testing.assert_array_equal(got.scores, want.scores)

    check()


def test_fixed_shape_tensors_and_arrow_queries(backend):
    x = np.random.default_rng(1).standard_normal((50, 16)).astype(np.float32)
    tensors = pa.FixedShapeTensorArray.from_numpy_ndarray(x)
    got = sk.topk(vectors(x[:4]), tensors, 3, "cosine")
    want = sk.topk(x[:4], x, 3, "cosine")
    np.testing.assert_array_equal(got.indices, want.indices)
    assert isinstance(got.scores, np.ndarray)  # results stay numpy


def test_chunked_arrays_join_once():
    x = np.random.default_rng(2).standard_normal((30, 8)).astype(np.float32)
    chunked = pa.chunked_array([vectors(x[:10]), vectors(x[10:])])
    np.testing.assert_array_equal(as_array(chunked, "corpus"), x)
    one = pa.chunked_array([vectors(x)])
    assert np.shares_memory(as_array(one, "corpus"), one.chunk(0).values.to_numpy())


def test_int8_codes_and_quantizers_take_arrow(backend):
    x = np.random.default_rng(3).standard_normal((40, 8)).astype(np.float32)
    quantizer = sk.Int8Quantizer.fit(x, per_dimension=True)
    codes = quantizer.encode(vectors(x))
    np.testing.assert_array_equal(codes, quantizer.encode(x))
    got = sk.topk(x[:2], sk.Int8Codes(vectors(codes), quantizer), 4)
    np.testing.assert_array_equal(got.indices, sk.topk(x[:2], sk.Int8Codes(codes, quantizer), 4).indices)


@pytest.mark.parametrize("make, error, message", [
    (lambda: pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32(), 2)), ValueError, "null"),
    (lambda: pa.array([[1.0, None]], type=pa.list_(pa.float32(), 2)), ValueError, "null"),
    (lambda: pa.FixedShapeTensorArray.from_numpy_ndarray(np.zeros((3, 2, 2), np.float32)),
     ValueError, "tensors of shape"),
    (lambda: pa.array([[True, False]], type=pa.list_(pa.bool_(), 2)), TypeError, "bool"),
])
def test_arrow_input_that_cannot_be_vectors_is_named(make, error, message):
    with pytest.raises(error, match=message):
        sk.topk(np.zeros((1, 2), np.float32), make(), 1)
