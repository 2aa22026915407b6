"""binary_quantize and Int8Quantizer (docs/semantics.md, Quantizers)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import simkernel as sk

finite_floats = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=40), elements=finite_floats))
def test_binary_quantize_is_packbits_of_positive(x):
    np.testing.assert_array_equal(sk.binary_quantize(x), np.packbits(x > 0, axis=-1))


def test_binary_quantize_rejects_nan():
    with pytest.raises(ValueError, match="x contains NaN"):
        sk.binary_quantize(np.array([[1.0, np.nan]]))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 20)), elements=finite_floats))
def test_int8_codes_are_rounded_clipped_and_decode_within_half_a_step(x):
    codec = sk.Int8Quantizer.fit(x)
    codes = codec.encode(x)
    assert codes.dtype == np.int8 and codes.min() >= -127 and codes.max() <= 127
    decoded = codec.decode(codes)
    assert decoded.dtype == np.float32
    inside = np.abs(x) <= 127 * codec.scale
    error = np.abs(decoded.astype(np.float64) - x)
    assert (error[inside] <= 0.5 * codec.scale * (1 + 1e-5) + 1e-6 * np.abs(x[inside])).all()
    np.testing.assert_array_equal(codes[~inside], np.sign(x[~inside]) * 127)


def test_fit_maps_the_percentile_to_127():
    x = np.linspace(-1, 1, 10001, dtype=np.float32)[:, None]
    codec = sk.Int8Quantizer.fit(x, percentile=100)
    assert codec.scale == pytest.approx(1 / 127, rel=1e-6)
    assert codec.encode(np.array([[1.0, -1.0, 0.0]])).tolist() == [[127, -127, 0]]


def test_fit_copes_with_an_all_zero_sample():
    codec = sk.Int8Quantizer.fit(np.zeros((4, 3)))
    assert codec.scale > 0 and codec.encode(np.zeros((1, 3))).tolist() == [[0, 0, 0]]


def test_quantizer_pickles_and_compares_by_scale():
    codec = sk.Int8Quantizer(0.25)
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert repr(codec) == "Int8Quantizer(scale=0.25)"


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf")])
def test_scale_must_be_positive_and_finite(scale):
    with pytest.raises(ValueError, match="scale must be positive and finite"):
        sk.Int8Quantizer(scale)


def test_decode_needs_int8_codes():
    with pytest.raises(TypeError, match="codes must be int8"):
        sk.Int8Quantizer(1.0).decode(np.ones((2, 2)))


def test_fit_rejects_nan_and_empty_samples():
    with pytest.raises(ValueError, match="sample contains NaN"):
        sk.Int8Quantizer.fit(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="sample is empty"):
        sk.Int8Quantizer.fit(np.empty((0, 3)))


def test_fit_copes_with_values_below_float32_normal_range():
    x = np.array([[1e-45, -3e-45]], dtype=np.float32)
    codec = sk.Int8Quantizer.fit(x)
    assert codec.scale > 0 and codec.encode(x).tolist() == [[0, 0]]
