"""``python -m simkernel.bench --matrix``: every shape users have, against
every peer. A cell is one storage type, corpus size, dimension, query count
and k; its figure is simkernel's median time over the fastest peer's (below
1: simkernel ahead). Cells run in the order of the grid, each corpus made
once and searched by every query count and k; a cell whose corpus does not
fit in memory, or whose search is beyond the work cap, is listed as
skipped, with why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from itertools import product
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .libraries import LIBRARIES
from .plots import _pyplot
from .run import Result, run_scenario, too_big
from .scenarios import Data, Scenario, make_data

STORAGES = ("float32", "float16", "bfloat16", "int8", "binary")
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
# 10M rows only for the compact codes: 10M float rows of 384 dimensions are
# 15 GB, past this kind of machine's memory with the peers' copies.
TEN_MILLION_STORAGES = ("int8", "binary")
DIMS = (128, 384, 768, 1536, 3072)
QUERIES = (1, 16, 256, 4096)
KS = (1, 10, 100, 1000)
# --quick: the slice the README's heat map shows, about 15 minutes on two cores.
QUICK_SIZES = (10_000, 100_000)
QUICK_DIMS = (128, 768)
QUICK_QUERIES = (1, 16, 256)
QUICK_KS = (10, 1000)

# Cells past this many multiply-adds (queries x rows x dimensions) are not
# run: about a minute per call on two cores, before the slowest peer.
MAX_WORK = 5e12

# The libraries a cell compares: simkernel and its peers (not its own
# variants, which the scenario tables show).
PEERS = tuple(name for name in LIBRARIES if not name.startswith("simkernel"))
# How the heat map names the fastest peer in a cell.
PEER_LABELS = {"numpy": "np", "faiss": "fa", "usearch": "us", "numkong": "nk",
               "scikit-learn": "sl", "torch": "to", "sentence-transformers": "st"}


@dataclass(frozen=True)
class Grid:
    storages: tuple[str, ...]
    sizes: tuple[int, ...]
    dims: tuple[int, ...]
    queries: tuple[int, ...]
    ks: tuple[int, ...]


FULL = Grid(STORAGES, SIZES, DIMS, QUERIES, KS)
QUICK = Grid(STORAGES, QUICK_SIZES, QUICK_DIMS, QUICK_QUERIES, QUICK_KS)


def _rows(n: int) -> str:
    if n >= 1_000_000:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 else str(n)


@dataclass
class Cell:
    """One cell's outcome: simkernel's and the fastest peer's median seconds."""

    storage: str
    rows: int
    dim: int
    queries: int
    k: int
    simkernel: Optional[float] = None
    peer: str = ""
    peer_seconds: Optional[float] = None
    note: str = ""

    @property
    def row_label(self) -> str:
        return f"{self.storage} {_rows(self.rows)} x {self.dim}"

    @property
    def column_label(self) -> str:
        return f"q={self.queries} k={self.k}"

    @property
    def ratio(self) -> Optional[float]:
        """simkernel's time over the fastest peer's (below 1: ahead)."""
        if self.simkernel is None or self.peer_seconds is None:
            return None
        return self.simkernel / self.peer_seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def scenario_of(storage: str, rows: int, dim: int, queries: int, k: int) -> Scenario:
    metric = "hamming" if storage == "binary" else "dot"
    name = f"{queries} x {_rows(rows)} x {dim} {storage}, k={k}"
    return Scenario(name, storage, queries, rows, dim=dim, k=k, metric=metric)


def _corpora(grid: Grid, scale: float) -> Iterator[tuple[str, int, int, int]]:
    """(storage, full rows, rows at this scale, dim) of each corpus in the grid."""
    for storage, rows, dim in product(grid.storages, grid.sizes, grid.dims):
        if rows >= 10_000_000 and storage not in TEN_MILLION_STORAGES:
            continue
        yield storage, rows, max(1, round(rows * scale)), dim


def cell_count(grid: Grid) -> int:
    return len(list(_corpora(grid, 1.0))) * len(grid.queries) * len(grid.ks)


def _with_queries(data: Data, count: int) -> Data:
    """The first ``count`` queries of ``data``, over the same corpus."""
    return replace(data, queries=data.queries[:count], search_queries=data.search_queries[:count])


def _outcome(cell: Cell, results: list[Result]) -> Cell:
    by_name = {r.library: r for r in results}
    ours = by_name.get("simkernel")
    peers = [r for r in results if r.library != "simkernel" and r.seconds]
    if ours is None or not ours.seconds:
        cell.note = ours.note if ours is not None and ours.note else "simkernel did not run"
        return cell
    cell.simkernel = ours.seconds
    if peers:
        best = min(peers, key=lambda r: r.seconds or math.inf)
        cell.peer, cell.peer_seconds = best.library, best.seconds
    else:
        cell.note = "no peer ran"
    return cell


def run(grid: Grid, scale: float, threads: int, rounds: int, libraries: Iterable[str],
        on_cell: Optional[Callable[[str], None]] = None) -> list[Cell]:
    """Every cell of ``grid`` (corpora scaled by ``scale``), in grid order."""
    chosen = ["simkernel"] + [name for name in libraries if name in PEERS]
    cells = []
    for storage, full_rows, rows, dim in _corpora(grid, scale):
        shapes = list(product(grid.queries, grid.ks))
        data: Optional[Data] = None
        for queries, k in shapes:
            scenario = scenario_of(storage, max(rows, k), dim, queries, k)
            cell = Cell(storage, full_rows, dim, queries, k)
            if on_cell is not None:
                on_cell(scenario.name)
            work = float(queries) * rows * dim
            if work > MAX_WORK:
                cell.note = f"skipped: {work:.1e} multiply-adds per call, over the cap of {MAX_WORK:.0e}"
                cells.append(cell)
                continue
            if data is None or len(data.corpus) != scenario.corpus:
                # One corpus for every query count: made with the most queries.
                most = replace(scenario, queries=max(grid.queries))
                data = None if too_big(most) else make_data(most)
            results = run_scenario(scenario, threads, rounds, chosen, probes=False,
                                   data=None if data is None else _with_queries(data, queries))
            cells.append(_outcome(cell, results))
    return cells


def table(cells: list[Cell]) -> list[str]:
    lines = ["| cell | simkernel ms | fastest peer | its ms | ours / theirs | note |",
             "| --- | ---: | --- | ---: | ---: | --- |"]
    for c in cells:
        ms = "" if c.simkernel is None else f"{1e3 * c.simkernel:.2f}"
        peer_ms = "" if c.peer_seconds is None else f"{1e3 * c.peer_seconds:.2f}"
        ratio = "" if c.ratio is None else f"{c.ratio:.2f}"
        lines.append(f"| {c.row_label}, {c.column_label} | {ms} | {c.peer} | {peer_ms} | "
                     f"{ratio} | {c.note} |")
    return lines


def behind(cells: list[Cell]) -> list[Cell]:
    """The cells where simkernel is not ahead of the fastest peer."""
    return [c for c in cells if c.ratio is not None and c.ratio >= 1.0]


def heat_map(cells: list[Cell], path: Path, title: str) -> Optional[Path]:
    """Rows storage x corpus x dimension, columns queries x k; each cell
    coloured by log2(ours / fastest peer's), green where simkernel is ahead,
    and labelled with the ratio and the peer (PEER_LABELS); grey where not
    run."""
    plt = _pyplot()
    if plt is None or not cells:
        return None
    rows = list(dict.fromkeys(c.row_label for c in cells))
    columns = list(dict.fromkeys(c.column_label for c in cells))
    values = np.full((len(rows), len(columns)), np.nan)
    for c in cells:
        if c.ratio is not None:
            values[rows.index(c.row_label), columns.index(c.column_label)] = math.log2(c.ratio)
    figure, axis = plt.subplots(figsize=(2.0 + 0.9 * len(columns), 1.2 + 0.28 * len(rows)))
    colours = plt.get_cmap("RdYlGn_r").with_extremes(bad="lightgray")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=-3, vmax=3, aspect="auto")
    for c in cells:
        y, x = rows.index(c.row_label), columns.index(c.column_label)
        label = "-" if c.ratio is None else f"{c.ratio:.2f} {PEER_LABELS.get(c.peer, c.peer[:2])}"
        axis.text(x, y, label, ha="center", va="center", fontsize=6)
    axis.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=7)
    axis.set_yticks(range(len(rows)), rows, fontsize=7)
    bar = figure.colorbar(image, ax=axis, shrink=0.6)
    bar.set_label("log2(simkernel time / fastest peer's)", fontsize=7)
    axis.set_title(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
