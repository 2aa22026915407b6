"""``python -m simkernel.bench``: simkernel against numpy and the peers that
are installed (faiss, usearch, numkong; torch and sentence-transformers when
already present), side by side in one run, with the machine's limits measured
in the same rounds; then the Index's costs and recall against speed for every
storage. Prints Markdown tables and writes ``results.json`` and PNG plots to
``--out``."""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

import simkernel as sk

from . import index_costs, matrix, memory, plots, recall_speed, summary
from .libraries import LIBRARIES, fix_faiss_openblas
from .progress import Progress
from .run import PEAK_NAMES, Result, run_scenario
from .scenarios import Scenario, scenarios

QUICK_SCALE = 0.05


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simkernel.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help=f"scenarios at {QUICK_SCALE:g} of full size (the default); with "
                             f"--matrix, a slice of the matrix")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="full-size scenarios")
    size.add_argument("--scale", type=float, help="scenario size as a fraction of full")
    parser.add_argument("--matrix", action="store_true",
                        help="sweep storage x rows x dim x queries x k against every peer and draw "
                             "a heat map (matrix.png) instead of the scenarios; with --quick, "
                             "a slice of it; --scale shrinks its corpora")
    parser.add_argument("--only", default="",
                        help=f"run the parts whose name contains this: a scenario name, "
                             f"'{index_costs.NAME}' or '{recall_speed.NAME}'")
    parser.add_argument("--data", type=Path, default=None,
                        help="real embeddings (corpus.npy, queries.npy, qrels.npy) for the "
                             "recall section; default: synthetic ones")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated libraries to run (default: all)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per library")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: all usable cores)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip measuring each library's peak memory in a child process")
    parser.add_argument("--out", default="simkernel-bench",
                        help="folder for results.json and the plots")
    args = parser.parse_args(argv)
    if args.quick and not args.matrix and (args.full or args.scale):
        parser.error("--quick is a size of its own: not with --full or --scale (but for --matrix)")
    return args


def _cpu() -> str:
    """The CPU's model as Linux names it (with family and model numbers,
    which a VM's short name may be all there is to tell), else the machine."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    numbers = (f" (family {fields['cpu family']}, model {fields['model']})"
               if "cpu family" in fields and "model" in fields else "")
    return fields["model name"] + numbers


def _cell(value: float | None, form: str) -> str:
    return "" if value is None else form.format(value)


def _table(results: list[Result], unit: str) -> list[str]:
    """Each library's time, its speed-up over numpy and over the fastest
    peer (a library other than simkernel), answers, rate, limit and memory."""
    timed = {r.library: r.seconds for r in results if r.seconds and r.library in LIBRARIES}
    numpy_seconds = timed.get("numpy")
    peers = [seconds for library, seconds in timed.items() if not library.startswith("simkernel")]
    best_peer = min(peers, default=None)
    lines = [f"| library | median ms | numpy / library | best peer / library | recall@k | {unit} "
             f"| % of limit | % of compute peak | peak MiB | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        # The peak probe's time is its own, not a search's: no speed-ups.
        search = r.seconds if not r.library.startswith(PEAK_NAMES) else None
        speedup = numpy_seconds / search if numpy_seconds and search else None
        over_peer = best_peer / search if best_peer and search else None
        share = None if r.limit_share is None else 100 * r.limit_share
        of_peak = None if r.peak_share is None else 100 * r.peak_share
        peak = None if r.peak_bytes is None else r.peak_bytes / 2**20
        lines.append(f"| {r.library} | {_cell(r.seconds and 1e3 * r.seconds, '{:.2f}')} | "
                     f"{_cell(speedup, '{:.2f}x')} | {_cell(over_peer, '{:.2f}x')} | "
                     f"{_cell(r.recall, '{:.3f}')} | {_cell(r.rate, '{:.1f}')} | "
                     f"{_cell(share, '{:.0f}%')} | {_cell(of_peak, '{:.0f}%')} | "
                     f"{_cell(peak, '{:.1f}')} | {r.note} |")
    return lines


def _matrix(args: argparse.Namespace, scale: float, threads: int, header: str,
            chosen: list[str]) -> None:
    grid = matrix.QUICK if args.quick else matrix.FULL
    progress = Progress(matrix.cell_count(grid))
    cells = matrix.run(grid, scale, threads, args.rounds, chosen, on_cell=progress.step)
    progress.close()
    lines = matrix.table(cells)
    behind = matrix.behind(cells)
    listed = [f"- {c.row_label}, {c.column_label}: {c.ratio:.2f}x {c.peer}'s time" for c in behind]
    text = (header + "\n\n" + "\n".join(lines) + "\n\n### cells where simkernel is not ahead\n\n"
            + ("\n".join(listed) if listed else "none") + "\n")
    print(text, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.md").write_text(text)
    (out / "matrix.json").write_text(json.dumps(
        {"header": header, "scale": scale, "cells": [c.as_dict() for c in cells]}, indent=1))
    written = [out / "matrix.md", out / "matrix.json"]
    plot = matrix.heat_map(cells, out / "matrix.png",
                           f"simkernel time / fastest peer's (below 1: ahead); np numpy, fa faiss, "
                           f"us usearch, nk numkong, sl scikit-learn\n{header}")
    if plot is not None:
        written.append(plot)
    print("written: " + ", ".join(str(path) for path in written))


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    # The matrix is defined at full size (--quick picks a slice of it instead).
    default_scale = 1.0 if args.matrix else QUICK_SCALE
    scale = 1.0 if args.full else args.scale if args.scale else default_scale
    threads = args.threads or sk.capabilities()["threads"]
    caps = sk.capabilities()
    chosen = [name.strip() for name in args.libraries.split(",") if name.strip()]
    header = (f"simkernel {caps['version']}, backend {caps['backend']}, isa {caps['isa']}; "
              f"{_cpu()}, {threads} threads; scale {scale:g}; "
              f"{date.today()}")
    core = fix_faiss_openblas() if "faiss" in chosen else ""
    if core:
        header += f"; OPENBLAS_CORETYPE={core} (faiss's bundled OpenBLAS)"
    print(header + "\n", flush=True)
    if args.matrix:
        _matrix(args, scale, threads, header, chosen)
        return
    selected = [s for s in scenarios(scale) if args.only in s.name]
    parts = [name for name in (index_costs.NAME, recall_speed.NAME) if args.only in name]
    progress = Progress(len(selected) + len(parts))
    runs: list[tuple[Scenario, list[Result]]] = []
    peak_memory = None if args.no_memory else memory.PeakMemory()
    for scenario in selected:
        progress.step(scenario.name)
        results = run_scenario(scenario, threads, args.rounds, chosen)
        runs.append((scenario, results))
        if peak_memory is not None:
            ran = [r.library for r in results if r.seconds and r.library in LIBRARIES]
            for r, peak in zip(results, map(peak_memory.measure(scenario, ran, threads).get,
                                            (r.library for r in results))):
                r.peak_bytes = peak
        unit = ("GB/s" if scenario.one_query else "G MAC/s" if scenario.int8_queries
                else "GFLOP/s")
        print(f"### {scenario.name} (x{scale:g}: {scenario.queries} x {scenario.corpus}, "
              f"k={scenario.k}, {scenario.metric})\n")
        print("\n".join(_table(results, unit)) + "\n", flush=True)
    costs: list[index_costs.Cost] = []
    if index_costs.NAME in parts:
        progress.step(index_costs.NAME)
        costs = index_costs.measure(scale, args.rounds)
        print(f"### {index_costs.NAME} (x{scale:g})\n")
        print("\n".join(index_costs.table(costs)) + "\n", flush=True)
    recall_rows: list[recall_speed.Row] = []
    described = ""
    if recall_speed.NAME in parts:
        progress.step(recall_speed.NAME)
        corpus, queries, qrels, described = (recall_speed.load(args.data) if args.data
                                             else recall_speed.synthetic(scale))
        recall_rows = recall_speed.measure(corpus, queries, qrels, threads, args.rounds)
        print(f"### {recall_speed.NAME}: {described}, {len(queries)} queries\n")
        print("\n".join(recall_speed.table(recall_rows)) + "\n", flush=True)
    progress.close()
    if peak_memory is not None:
        peak_memory.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = summary.table(runs)
    print("### summary\n\n" + "\n".join(lines) + "\n", flush=True)
    (out / "summary.md").write_text(header + "\n\n" + "\n".join(lines) + "\n")
    written = [out / "results.json", out / "summary.md"]
    (out / "results.json").write_text(json.dumps(
        {"header": header, "capabilities": caps, "scale": scale,
         "results": [r.as_dict() for _, results in runs for r in results],
         "index_costs": [c.as_dict() for c in costs],
         "quality": {"data": described, "rows": [r.as_dict() for r in recall_rows]}},
        indent=1))
    for plot in (plots.time_vs_size(runs, out / "time_vs_size.png", header),
                 plots.recall_vs_speed(recall_rows, out / "recall_vs_speed.png",
                                       f"recall against speed, {described}\n{header}")):
        if plot is not None:
            written.append(plot)
    print("written: " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
