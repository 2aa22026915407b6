"""One line per scenario: the run's figures that the README shows (the CLI
prints it last and writes it to ``summary.md``)."""

from __future__ import annotations

from .libraries import LIBRARIES
from .run import Result
from .scenarios import Scenario


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{1e3 * seconds:.1f}"


def _mib(peak: int | None) -> str:
    return "" if peak is None else f"{peak / 2**20:.0f}"


def table(runs: list[tuple[Scenario, list[Result]]]) -> list[str]:
    lines = ["| scenario | simkernel ms | vs numpy | fastest peer ms (its time / ours) | "
             "% of limit | % of compute peak | Index ms | avx2 ms | peak MiB: simkernel / that peer |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for scenario, results in runs:
        by_name = {r.library: r for r in results if r.library in LIBRARIES}
        ours = by_name.get("simkernel")
        if ours is None or ours.seconds is None:
            continue
        peers = [r for name, r in by_name.items() if not name.startswith("simkernel") and r.seconds]
        best = min(peers, key=lambda r: r.seconds or 0.0, default=None)
        numpy = by_name.get("numpy")
        speedup = (f"{numpy.seconds / ours.seconds:.2f}x" if numpy is not None and numpy.seconds
                   else "")
        peer = ""
        if best is not None:
            peer = f"{best.library} {_ms(best.seconds)} ({(best.seconds or 0) / ours.seconds:.2f}x)"
            if best.recall is not None and best.recall < 0.999:
                peer += f", recall {best.recall:.2f}"
        share = "" if ours.limit_share is None else f"{100 * ours.limit_share:.0f}%"
        of_peak = "" if ours.peak_share is None else f"{100 * ours.peak_share:.0f}%"
        index, avx2 = by_name.get("simkernel-index"), by_name.get("simkernel-avx2")
        peaks = f"{_mib(ours.peak_bytes)} / {_mib(best.peak_bytes) if best else ''}"
        lines.append(f"| {scenario.name} | {_ms(ours.seconds)} | {speedup} | {peer} | {share} | "
                     f"{of_peak} | "
                     f"{_ms(index.seconds if index else None)} | "
                     f"{_ms(avx2.seconds if avx2 else None)} | {peaks} |")
    return lines
