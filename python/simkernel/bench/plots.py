"""PNG plots of a benchmark run (matplotlib, drawn off-screen): time against
corpus size per library, and recall against speed for each storage."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

from .recall_speed import Row
from .run import Result
from .scenarios import Scenario


def _pyplot():
    """matplotlib's pyplot without a display, or None if it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def time_vs_size(runs: list[tuple[Scenario, list[Result]]], path: Path,
                 title: str) -> Optional[Path]:
    """One panel per kind of search run at several corpus sizes: median time
    per library against corpus rows, log-log, with the limit dashed."""
    plt = _pyplot()
    families: dict[str, list[tuple[Scenario, list[Result]]]] = defaultdict(list)
    for scenario, results in runs:
        families[scenario.family].append((scenario, results))
    swept = {name: sorted(runs, key=lambda run: run[0].corpus)
             for name, runs in families.items() if len(runs) > 1}
    if plt is None or not swept:
        return None
    figure, axes = plt.subplots(1, len(swept), figsize=(6 * len(swept), 4.5), squeeze=False)
    for axis, (family, family_runs) in zip(axes[0], swept.items()):
        lines: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for scenario, results in family_runs:
            for result in results:
                if result.seconds:
                    lines[result.library][0].append(scenario.corpus)
                    lines[result.library][1].append(1e3 * result.seconds)
        for library, (sizes, millis) in lines.items():
            limit = library.startswith("read bandwidth")
            axis.plot(sizes, millis, "--" if limit else "-o", label=library,
                      color="gray" if limit else None, markersize=4)
        axis.set(xscale="log", yscale="log", xlabel="corpus rows", ylabel="median ms",
                 title=family)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def recall_vs_speed(rows: list[Row], path: Path, title: str) -> Optional[Path]:
    """Each storage as a point: search time against recall@10 of the exact top-10."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        axis.scatter(1e3 * row.seconds, row.recall)
        axis.annotate(row.name, (1e3 * row.seconds, row.recall), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")
    axis.set(xscale="log", xlabel="median ms for the query set", ylabel="recall@10 vs exact")
    axis.set_title(title, fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
