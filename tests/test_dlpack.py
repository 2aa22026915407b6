"""Inputs from other libraries (docs/semantics.md, Inputs): objects with
``__dlpack__`` are read in place, bfloat16 ones included, on every backend;
the tensor lives as long as simkernel's view of it and is released after."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import simkernel as sk
from simkernel._dlpack import as_array

torch = pytest.importorskip("torch")


class Exporter:
    """Only ``__dlpack__`` (and its device): no ``__array__`` to fall back on."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __dlpack__(self, stream=None, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


@pytest.fixture
def corpus():
    torch.manual_seed(3)
    return torch.randn(700, 48)


def address(x) -> int:
    return x.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_tensors_are_searched_as_their_values(backend, corpus, dtype):
    rows = corpus.to(getattr(torch, dtype))
    queries = corpus[:9] + 0.1
    for q in (queries, queries.to(getattr(torch, dtype))):
        got = sk.topk(q, rows, k=5, metric="cosine")
        expected = sk.topk(q.float().numpy(), rows.float().numpy(), k=5, metric="cosine")
        np.testing.assert_array_equal(got.indices, expected.indices)
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_cpu_tensors_are_read_in_place(corpus, dtype):
    rows = (corpus * 20).to(getattr(torch, dtype))
    for view in (rows, rows[::3], rows[:, :16], rows[100:200]):
        array = as_array(view, "corpus")
        assert address(array) == view.data_ptr()
        assert array.shape == tuple(view.shape)
        np.testing.assert_array_equal(array.astype(np.float32), view.float().numpy())


def test_a_dlpack_only_object_is_read_in_place(backend, corpus):
    rows = corpus.numpy()
    exporter = Exporter(rows)
    assert address(as_array(exporter, "corpus")) == address(rows)
    np.testing.assert_array_equal(sk.topk(rows[:3], exporter, k=4).indices,
                                  sk.topk(rows[:3], rows, k=4).indices)


def test_a_bfloat16_view_outlives_its_tensor_and_then_releases_it():
    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    gc.collect()
    before = resident()
    tensor = torch.full((25_000_000,), 1.5, dtype=torch.bfloat16)  # 50 MB
    view = as_array(tensor, "x")
    del tensor
    gc.collect()
    torch.full((25_000_000,), 7.0, dtype=torch.bfloat16)  # would reuse freed memory
    assert float(view[::1_000_000].astype(np.float32).max()) == 1.5
    assert resident() - before > 40e6
    del view
    gc.collect()
    assert resident() - before < 20e6  # the tensor's own deleter ran


def test_index_and_quantizer_take_bfloat16_tensors(backend, corpus):
    rows = corpus.to(torch.bfloat16)
    index = sk.Index(48, "cosine", "bfloat16")
    index.add(rows)
    np.testing.assert_array_equal(index.search(rows[:5], k=1).indices[:, 0], np.arange(5))
    quantizer = sk.Int8Quantizer.fit(rows)
    assert quantizer == sk.Int8Quantizer.fit(rows.float().numpy())


def test_unreadable_tensors_are_a_type_error_naming_the_argument(corpus):
    with pytest.raises(TypeError, match="queries cannot be read through DLPack.*gradient"):
        sk.topk(torch.randn(2, 48, requires_grad=True), corpus, k=1)
    with pytest.raises(TypeError, match="corpus has dtype complex64"):
        sk.topk(corpus[:2], corpus.to(torch.complex64), k=1)
