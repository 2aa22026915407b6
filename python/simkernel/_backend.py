"""Which backend and ISA answer calls: chosen once at import (DESIGN section 3).

``SIMKERNEL_BACKEND=numpy|native`` and ``SIMKERNEL_ISA=scalar|avx2|avx512|neon``
force a choice. Without them the native core is used with the best verified
ISA this CPU has; if the core cannot load, a warning and the numpy backend.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any, Optional

from . import _numpy_backend
from ._threads import resolve_threads

BACKENDS = ("native", "numpy")
ISAS = ("scalar", "avx2", "avx512", "neon")


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


def _apply_isa_request(native: ModuleType) -> None:
    requested = os.environ.get("SIMKERNEL_ISA", "").strip().lower()
    if not requested:
        return
    core = native._core
    if requested in ISAS and core.select_isa(requested):
        return
    caps = core.capabilities()
    reason = ("is not one of " + ", ".join(ISAS) if requested not in ISAS
              else f"is not available here (this build and CPU support: "
                   f"{', '.join(caps['supported'])})")
    warnings.warn(f"SIMKERNEL_ISA={requested!r} {reason}; using {caps['isa']}",
                  RuntimeWarning, stacklevel=4)


_native: Optional[ModuleType] = _load_native()
active: ModuleType = _native if _native is not None else _numpy_backend


def native() -> Optional[ModuleType]:
    """The native backend module, or None where it is not loaded."""
    return _native


def set_active(backend: ModuleType) -> ModuleType:
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
        (default thread count) and ``version``.
    """
    from . import __version__

    caps: dict[str, Any] = {"backend": active.name, "isa": None, "compiled": [],
                            "supported": [], "verified": [], "cpu": []}
    if active is _native and _native is not None:
        caps.update(_native._core.capabilities())
    caps["threads"] = resolve_threads(None)
    caps["version"] = __version__
    return caps
