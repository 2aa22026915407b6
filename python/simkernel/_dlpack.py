"""Arrays from other libraries without a copy: pyarrow arrays of fixed-size
vectors (``FixedSizeListArray``, ``FixedShapeTensorArray``) are read from
their value buffer, and objects with ``__dlpack__`` (torch, jax, cupy on the
host, ...) through DLPack.

numpy reads every DLPack element type it has (``np.from_dlpack``); bfloat16
it has not, so a bfloat16 tensor is taken here: its DLPack capsule is opened
with ctypes and its memory shown to numpy as 16-bit words, then viewed as
``ml_dtypes.bfloat16``. The tensor stays alive until the last numpy view of
it is gone, and is then released through its own deleter, as the DLPack
protocol asks of a consumer.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ._checks import BFLOAT16

# DLPack's C structures (dlpack.h, the unversioned ABI that every producer
# still exports when asked without max_version).
_KDL_CPU = 1
_KDL_BFLOAT = 4


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32),
                ("dtype", _DataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _ManagedTensor(ctypes.Structure):
    pass


_Deleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ManagedTensor))
_ManagedTensor._fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p),
                           ("deleter", _Deleter)]

_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_name = ctypes.pythonapi.PyCapsule_SetName
_set_name.restype = ctypes.c_int
_set_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
# A capsule keeps a pointer to its name: these live as long as the module.
_FRESH, _USED = b"dltensor", b"used_dltensor"


class _Owner:
    """Holds a consumed DLManagedTensor and shows its memory to numpy (the
    array interface); numpy keeps it as the array's base, so the tensor is
    released when the last view of it goes."""

    def __init__(self, managed: Any, interface: dict[str, Any]) -> None:
        self._managed = managed
        self.__array_interface__ = interface

    def __del__(self) -> None:
        deleter = self._managed.contents.deleter
        if deleter:
            deleter(self._managed)


def _bfloat16_from_dlpack(x: Any, name: str) -> np.ndarray | None:
    """The bfloat16 tensor ``x`` as a numpy array over its memory, or None if
    it is not a bfloat16 tensor."""
    capsule = x.__dlpack__()
    if not _is_valid(capsule, _FRESH):
        raise TypeError(f"{name}.__dlpack__() did not return a DLPack capsule")
    managed = ctypes.cast(_get_pointer(capsule, _FRESH), ctypes.POINTER(_ManagedTensor))
    tensor = managed.contents.dl_tensor
    dtype = tensor.dtype
    if (dtype.code, dtype.bits, dtype.lanes) != (_KDL_BFLOAT, 16, 1):
        return None  # not consumed: the capsule's own destructor releases it
    if tensor.device.device_type != _KDL_CPU:
        raise TypeError(f"{name} is not in CPU memory (DLPack device type "
                        f"{tensor.device.device_type}): move it to the CPU first")
    shape = tuple(tensor.shape[i] for i in range(tensor.ndim))
    strides = (None if not tensor.strides
               else tuple(2 * tensor.strides[i] for i in range(tensor.ndim)))
    _set_name(capsule, _USED)  # consumed: from here on the deleter is ours to call
    interface = {"shape": shape, "typestr": "<u2", "strides": strides, "version": 3,
                 "data": ((tensor.data or 0) + tensor.byte_offset, True)}
    return np.asarray(_Owner(managed, interface)).view(BFLOAT16)


def _arrow_rows(x: Any, name: str) -> np.ndarray | None:
    """A pyarrow array of fixed-size vectors as a 2-D view of its values (a
    chunked one of several chunks is joined, the one copy), or None if ``x``
    is not one. pyarrow is imported only when ``x`` comes from it."""
    import pyarrow as pa  # type: ignore[import-untyped, import-not-found]

    if isinstance(x, pa.ChunkedArray):
        parts = [_arrow_rows(chunk, name) for chunk in x.chunks]
        rows = [part for part in parts if part is not None]
        if not rows or len(rows) < len(parts):
            return None
        return rows[0] if len(rows) == 1 else np.concatenate(rows)
    if isinstance(x, pa.ExtensionArray) and isinstance(x.type, pa.FixedShapeTensorType):
        if len(x.type.shape) != 1:
            raise ValueError(f"{name} holds tensors of shape {tuple(x.type.shape)}; expected "
                             f"one vector per row")
        x = x.storage
    if not isinstance(x, pa.FixedSizeListArray):
        return None
    if x.null_count or x.values.null_count:
        raise ValueError(f"{name} holds null vectors or null elements")
    try:
        flat = x.values.to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TypeError(f"{name} holds {x.type.value_type} values, which numpy cannot read "
                        f"in place: {error}") from None
    # .values is the whole child array: a slice of the list array starts at
    # its offset.
    return flat.reshape(-1, x.type.list_size)[x.offset:x.offset + len(x)]


def as_array(x: Any, name: str) -> np.ndarray:
    """``x`` as a numpy array: itself if it is one, a view of a pyarrow array
    of vectors, through DLPack (no copy) if it offers ``__dlpack__``, else
    ``np.asarray(x)``."""
    if isinstance(x, np.ndarray):
        return np.asarray(x)
    if type(x).__module__.startswith("pyarrow"):
        rows = _arrow_rows(x, name)
        if rows is not None:
            return rows
    if not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except (RuntimeError, TypeError, ValueError, BufferError) as error:
        try:
            array = _bfloat16_from_dlpack(x, name)
        except (RuntimeError, TypeError, ValueError, BufferError) as second:
            raise TypeError(f"{name} cannot be read through DLPack: {second}") from None
        if array is None:
            raise TypeError(f"{name} cannot be read through DLPack: {error}") from None
        return array
