"""Backend and ISA choice (docs/backends.md): at import, each in a fresh process, and by sk.use_isa."""

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
def test_the_widest_supported_isa_is_chosen_when_all_are_verified():
    caps, _ = run()
    # Every row of today's registry is verified, AVX-512 included, so the
    # automatic choice is the best this CPU supports.
    assert caps["verified"] == caps["supported"]
    assert caps["isa"] == caps["supported"][-1]


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


@needs_native
@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_use_isa_switches_and_a_with_block_switches_back(isa):
    import simkernel as sk
    before = sk.capabilities()["isa"]
    with sk.use_isa(isa) as choice:
        assert sk.capabilities()["isa"] == isa
        assert choice.previous == before
    assert sk.capabilities()["isa"] == before
    sk.use_isa(isa)
    assert sk.capabilities()["isa"] == isa
    sk.use_isa(before)


@needs_native
def test_use_isa_refuses_unknown_and_unsupported_names_and_changes_nothing():
    import simkernel as sk
    before = sk.capabilities()["isa"]
    with pytest.raises(ValueError, match="'sse9' is not one of scalar"):
        sk.use_isa("sse9")
    lacking = [row["name"] for row in NATIVE._core.isas() if not row["supported"]]
    for name in lacking:
        with pytest.raises(ValueError, match=f"'{name}' is not available here"):
            sk.use_isa(name)
    assert sk.capabilities()["isa"] == before


def test_use_isa_without_the_core_is_a_runtime_error():
    caps, _ = run("""
        try:
            sk.use_isa("scalar")
        except RuntimeError as error:
            caps["error"] = str(error)
    """, env={"SIMKERNEL_BACKEND": "numpy"})
    assert "native core" in caps["error"]


@needs_native
def test_the_registry_lists_every_compiled_isa_with_its_features_and_fallback():
    rows = NATIVE._core.isas()
    names = [row["name"] for row in rows]
    import simkernel as sk
    assert names == sk.capabilities()["compiled"] and names[0] == "scalar"
    assert rows[0]["fallback"] is None and rows[0]["supported"]
    for at, row in enumerate(rows[1:], start=1):
        assert row["fallback"] in names[:at]  # gaps are filled from an earlier row
        assert row["features"]
