"""A progress line on stderr for long runs: redrawn in place on a terminal,
one line per step otherwise (CI logs)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.terminal = sys.stderr.isatty()

    def step(self, label: str) -> None:
        """Announces the step that starts now."""
        self.done += 1
        elapsed = int(time.monotonic() - self.started)
        filled = round(20 * (self.done - 1) / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
                f"{elapsed // 60}:{elapsed % 60:02d} {label}")
        if self.terminal:
            sys.stderr.write("\r\033[K" + line[:120])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.terminal:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
