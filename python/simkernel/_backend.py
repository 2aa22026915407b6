"""Which backend and ISA answer calls (docs/backends.md).

``SIMKERNEL_BACKEND=numpy|native`` and ``SIMKERNEL_ISA=<a row of the core's
ISA registry>`` force a choice at import; ``use_isa`` switches the ISA later.
Without them the native core is used with the best verified ISA this CPU
has; if the core cannot load, a warning and the numpy backend.
"""

from __future__ import annotations

import os
import threading
import warnings
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Optional, Protocol

import numpy as np

from . import _numpy_backend
from ._inputs import SearchArgs
from ._threads import resolve_threads

BACKENDS = ("native", "numpy")


class Backend(Protocol):
    """What a backend module provides; both satisfy it (mypy checks the
    assignments below). Arguments arrive checked (`_inputs.prepare`)."""

    name: str

    def topk(self, args: SearchArgs, k: int, threads: int,
             allowed: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]: ...

    def cdist(self, args: SearchArgs, threads: int, out: np.ndarray) -> np.ndarray: ...

    def rescore(self, args: SearchArgs, candidates: np.ndarray, k: int,
                threads: int) -> tuple[np.ndarray, np.ndarray]: ...

    def range_search(self, args: SearchArgs, threshold: float, max_results: int, threads: int,
                     allowed: Optional[np.ndarray] = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def _load_native() -> Optional[ModuleType]:
    requested = os.environ.get("SIMKERNEL_BACKEND", "").strip().lower()
    if requested and requested not in BACKENDS:
        warnings.warn(f"SIMKERNEL_BACKEND={requested!r} is not one of "
                      f"{', '.join(BACKENDS)}; ignoring it", RuntimeWarning, stacklevel=3)
        requested = ""
    if requested == "numpy":
        return None
    try:
        from . import _native_backend
    except ImportError as error:
        if requested == "native":
            raise ImportError(
                f"SIMKERNEL_BACKEND=native but simkernel's native core cannot "
                f"load: {error}") from error
        warnings.warn(f"simkernel's native core cannot load ({error}); using the "
                      f"numpy backend", RuntimeWarning, stacklevel=3)
        return None
    _apply_isa_request(_native_backend)
    return _native_backend


def _isa_problem(core: Any, name: str) -> Optional[str]:
    """Why ``name`` cannot be used here (None if it can), from the registry."""
    rows = {row["name"]: row for row in core.isas()}
    if name not in rows:
        return f"is not one of {', '.join(rows)}"
    if not rows[name]["supported"]:
        supported = [n for n, row in rows.items() if row["supported"]]
        return (f"is not available here (this build and CPU support: "
                f"{', '.join(supported)})")
    return None


def _apply_isa_request(native: ModuleType) -> None:
    requested = os.environ.get("SIMKERNEL_ISA", "").strip().lower()
    if not requested:
        return
    core = native._core
    problem = _isa_problem(core, requested)
    if problem is None:
        core.select_isa(requested)
        return
    warnings.warn(f"SIMKERNEL_ISA={requested!r} {problem}; using {core.capabilities()['isa']}",
                  RuntimeWarning, stacklevel=4)


if TYPE_CHECKING:  # mypy holds both backend modules to the protocol
    from . import _native_backend
    _checked: tuple[Backend, Backend] = (_numpy_backend, _native_backend)

_native: Optional[ModuleType] = _load_native()
_numpy: Backend = _numpy_backend
active: Backend = _native if _native is not None else _numpy


def native() -> Optional[ModuleType]:
    """The native backend module, or None where it is not loaded."""
    return _native


def set_active(backend: Backend) -> Backend:
    """Makes ``backend`` answer calls; returns the previous one (for tests)."""
    global active
    previous, active = active, backend
    return previous


def capabilities() -> dict[str, Any]:
    """What answers calls here: backend, ISA, what was compiled, CPU features.

    Returns
    -------
    dict
        ``backend`` ("native" or "numpy"), ``isa`` (the kernels in use, or
        None for numpy), ``compiled`` (ISAs built into the core),
        ``supported`` (those this CPU can run), ``verified`` (those chosen
        without being asked for), ``cpu`` (feature names), ``threads``
        (default thread count), ``version`` and, for the native backend,
        ``batch_queries`` (float32 calls of at least this many queries take
        the batch kernel, whose float sums differ in order from the row
        kernels'; 0 where the ISA has none) and ``packed_batch_queries``
        (calls of at least this many take the batch kernel that packs rows,
        with the same scores).
    """
    from . import __version__

    caps: dict[str, Any] = {"backend": active.name, "isa": None, "compiled": [],
                            "supported": [], "verified": [], "cpu": []}
    if active is _native and _native is not None:
        caps.update(_native._core.capabilities())
    caps["threads"] = resolve_threads(None)
    caps["version"] = __version__
    return caps


_isa_lock = threading.Lock()


class IsaChoice:
    """What ``use_isa`` returns: the switch is already made; leaving a
    ``with`` block switches back to the ISA that was in use before."""

    def __init__(self, name: str, previous: str) -> None:
        self.name = name
        self.previous = previous

    def __enter__(self) -> "IsaChoice":
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        use_isa(self.previous)

    def __repr__(self) -> str:
        return f"IsaChoice({self.name!r}, previous={self.previous!r})"


def use_isa(name: str) -> IsaChoice:
    """Switches the native core's kernels to the ISA ``name``.

    The choice is process-wide and takes effect for calls that start after
    it; a call already running keeps the kernels it started with. Usable as
    a context manager, which restores the previous ISA on exit.

    Parameters
    ----------
    name : str
        A row of the core's ISA registry that this CPU supports, as listed in
        ``capabilities()["supported"]`` (for example "scalar", "avx2").

    Returns
    -------
    IsaChoice
        The switch made, with the ISA it replaced.

    Raises
    ------
    ValueError
        If ``name`` is not in the registry or this CPU cannot run it.
    RuntimeError
        If the native core is not loaded (the numpy backend has no ISAs).
    """
    if _native is None:
        raise RuntimeError("use_isa needs simkernel's native core, which is not loaded here")
    core = _native._core
    name = str(name).strip().lower()
    with _isa_lock:
        problem = _isa_problem(core, name)
        if problem is not None:
            raise ValueError(f"use_isa: {name!r} {problem}")
        previous = core.capabilities()["isa"]
        core.select_isa(name)
    return IsaChoice(name, previous)
