"""No instruction wider than the CPU has (docs/backends.md): the package
imports and searches, every storage and an Index on every ISA the CPU
supports, under qemu-x86_64 emulating CPUs narrower than this one. A wider
instruction anywhere those calls reach (a kernel table built for another ISA,
an inline function the linker took from a wider file) dies of SIGILL there.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NATIVE

QEMU = shutil.which("qemu-x86_64")

pytestmark = [
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 CPU models"),
    pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 (Debian's qemu-user) is not installed"),
    pytest.mark.skipif(NATIVE is None, reason="the native core is not loaded"),
]

# CPU model, the ISAs it must report as supported: Nehalem has no AVX,
# Haswell has AVX2 but no AVX-512.
MODELS = {"Nehalem": ["scalar"], "Haswell": ["scalar", "avx2"]}


@pytest.mark.parametrize("model", MODELS)
def test_every_search_runs_under_a_narrower_cpu(model):
    probe = Path(__file__).with_name("cpu_probe.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMKERNEL_")}
    done = subprocess.run([QEMU, "-cpu", model, sys.executable, str(probe)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    lines = done.stdout.split("\n")
    assert [line.split()[1] for line in lines if line.startswith("checked ")] == MODELS[model]
    assert "probe ok" in lines
