"""Fixtures: the backends and ISA paths every test runs on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import simkernel as sk
from simkernel import _backend, _numpy_backend

NATIVE = _backend.native()
BACKENDS = [_numpy_backend] + ([NATIVE] if NATIVE is not None else [])
# The shared all-MiniLM-L6-v2 embeddings of Debian package descriptions.
DATA = Path(os.environ.get("SIMKERNEL_DATA",
                           Path(__file__).resolve().parents[2] / "shared/data/debian-minilm"))
SUPPORTED_ISAS = sk.capabilities()["supported"] if NATIVE is not None else []


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request):
    """Runs the test once per available backend, with that backend active."""
    previous = _backend.set_active(request.param)
    yield request.param
    _backend.set_active(previous)


@pytest.fixture(params=SUPPORTED_ISAS or [None])
def isa(request):
    """Runs the test once per ISA path this CPU supports, native backend active."""
    if request.param is None:
        pytest.skip("the native core is not loaded")
    previous = _backend.set_active(NATIVE)
    with sk.use_isa(request.param):
        yield request.param
    _backend.set_active(previous)


def numpy_answer(function, *args, **kwargs):
    """What the numpy backend answers to ``function(*args, **kwargs)``, whatever
    backend is active: the reference native results are held to."""
    previous = _backend.set_active(_numpy_backend)
    try:
        return function(*args, **kwargs)
    finally:
        _backend.set_active(previous)


@pytest.fixture(params=["few pieces", "many pieces"])
def index_pieces(request, monkeypatch):
    """Runs an Index test as is, and again with a tail piece of 4 rows, so
    storage is split in many pieces that the kernels search as one."""
    if request.param == "many pieces":
        from simkernel import _storage
        monkeypatch.setattr(_storage, "TAIL_BYTES", 1)
        monkeypatch.setattr(_storage, "TAIL_MIN_ROWS", 4)
    return request.param
