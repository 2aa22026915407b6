"""Peak memory per library, each measured in a process of its own.

A helper process, started once and never running any library itself, makes
each scenario's data and forks one child per library: the child inherits the
data, resets its peak resident size (``/proc/self/clear_refs``), prepares the
library's index and runs one search, and reports how far its peak rose above
where it started. That is what the library adds on top of the data a user
already holds: its own copies, packed forms and temporaries. A library that
is not installed, fails or crashes reports nothing. Linux only (fork and
``/proc``); elsewhere the column stays empty.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
from multiprocessing.connection import Connection
from typing import Optional

from .libraries import LIBRARIES
from .scenarios import Scenario, make_data

# A child still running after this long is stopped and reports nothing.
CHILD_SECONDS = 600.0


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _peak_growth(scenario: Scenario, data, library: str, threads: int) -> int:
    """Bytes the library's prepare and one search add to this process's peak."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # peak resident size := current resident size
    before = _status_kib("VmRSS")
    LIBRARIES[library](scenario, data, threads)()
    return 1024 * max(0, _status_kib("VmHWM") - before)


def _measure_scenario(scenario: Scenario, libraries: list[str],
                      threads: int) -> dict[str, Optional[int]]:
    data = make_data(scenario)
    peaks: dict[str, Optional[int]] = {}
    for library in libraries:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, report, leave without cleanup
            os.close(read)
            try:
                message = str(_peak_growth(scenario, data, library, threads))
            except BaseException:
                message = ""
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], CHILD_SECONDS)
        text = os.read(read, 64).decode() if ready else ""  # "" also when it crashed
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.close(read)
        os.waitpid(pid, 0)
        peaks[library] = int(text) if text else None
    return peaks


def _serve(connection: Connection) -> None:
    """The helper's loop: (scenario, libraries, threads) in, peaks out."""
    while True:
        request = connection.recv()
        if request is None:
            return
        connection.send(_measure_scenario(*request))


class PeakMemory:
    """The helper process; `measure` asks it for one scenario's peaks."""

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/self/clear_refs") and hasattr(os, "fork")
        self._connection: Optional[Connection] = None
        self._process = None
        if self.available:
            context = multiprocessing.get_context("spawn")
            self._connection, theirs = context.Pipe()
            self._process = context.Process(target=_serve, args=(theirs,), daemon=True)
            self._process.start()

    def measure(self, scenario: Scenario, libraries: list[str],
                threads: int) -> dict[str, Optional[int]]:
        if self._connection is None:
            return {}
        self._connection.send((scenario, libraries, threads))
        if not self._connection.poll(CHILD_SECONDS * max(1, len(libraries))):
            self.close()
            return {}
        return self._connection.recv()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.send(None)
            self._connection = None
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
            self._process = None
