"""Backend and ISA choice at import (DESIGN section 3), each in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import NATIVE, SUPPORTED_ISAS

needs_native = pytest.mark.skipif(NATIVE is None, reason="the native core is not loaded")

# Makes `import simkernel._core` fail, as on a machine where it cannot load.
BLOCK_CORE = textwrap.dedent("""
    import sys
    class BlockCore:
        def find_spec(self, name, path=None, target=None):
            if name == "simkernel._core":
                raise ImportError("blocked for the test")
    sys.meta_path.insert(0, BlockCore())
""")


def run(code: str = "", env: dict | None = None, block_core: bool = False) -> tuple[dict, str]:
    """Imports simkernel in a new interpreter; its capabilities and warnings."""
    script = (BLOCK_CORE if block_core else "") + textwrap.dedent("""
        import json, warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            import simkernel as sk
            caps = sk.capabilities()
    """) + textwrap.dedent(code) + "\nprint(json.dumps([caps, [str(w.message) for w in caught]]))\n"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMKERNEL_")}
    clean.update(env or {})
    done = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    caps, warned = json.loads(done.stdout.splitlines()[-1])
    return caps, "\n".join(warned)


@needs_native
def test_default_is_native_with_the_best_verified_isa():
    caps, warned = run()
    assert caps["backend"] == "native" and warned == ""
    assert caps["isa"] == caps["verified"][-1]
    assert caps["threads"] >= 1 and caps["version"]


@needs_native
def test_avx512_is_never_chosen_without_being_asked_for():
    caps, _ = run()
    assert "avx512" not in caps["verified"] and caps["isa"] != "avx512"


@needs_native
@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_each_supported_isa_can_be_forced(isa):
    caps, warned = run("import numpy as np; sk.topk(np.ones((2, 9)), np.ones((40, 9)), k=3)",
                       env={"SIMKERNEL_ISA": isa})
    assert caps["isa"] == isa and warned == ""


@needs_native
@pytest.mark.parametrize("isa", ["neon" if "avx2" in SUPPORTED_ISAS else "avx2", "sse9"])
def test_an_isa_the_cpu_lacks_warns_and_uses_the_best_verified(isa):
    caps, warned = run(env={"SIMKERNEL_ISA": isa})
    assert f"SIMKERNEL_ISA='{isa}'" in warned
    assert caps["isa"] == caps["verified"][-1]


def test_numpy_backend_can_be_forced():
    caps, warned = run(env={"SIMKERNEL_BACKEND": "numpy"})
    assert caps["backend"] == "numpy" and caps["isa"] is None and warned == ""


def test_without_the_core_simkernel_warns_once_and_uses_numpy():
    caps, warned = run("import numpy as np; print(sk.topk(np.eye(3), np.eye(3), k=1))",
                       block_core=True)
    assert caps["backend"] == "numpy"
    assert warned.count("native core cannot load") == 1


def test_without_the_core_a_forced_native_backend_is_an_import_error():
    with pytest.raises(RuntimeError, match="ImportError: SIMKERNEL_BACKEND=native"):
        run(env={"SIMKERNEL_BACKEND": "native"}, block_core=True)


def test_thread_count_follows_the_environment():
    caps, _ = run(env={"SIMKERNEL_NUM_THREADS": "3"})
    assert caps["threads"] == 3
