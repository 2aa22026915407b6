"""``python -m simkernel.bench``: simkernel against numpy and the peers that
are installed (faiss, usearch, numkong), side by side in one run, with the
machine's limits measured in the same rounds. Prints a Markdown table and
writes ``results.json`` to ``--out``."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import simkernel as sk

from . import index_costs
from .libraries import LIBRARIES
from .run import Result, run_scenario
from .scenarios import scenarios

QUICK_SCALE = 0.05


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simkernel.bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help=f"scenarios at {QUICK_SCALE:g} of full size (the default)")
    size.add_argument("--full", action="store_true", help="full-size scenarios")
    size.add_argument("--scale", type=float, help="scenario size as a fraction of full")
    parser.add_argument("--only", default="",
                        help=f"run scenarios whose name contains this ('{index_costs.NAME}' "
                             f"for the Index's add and load costs)")
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated libraries to run (default: all)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per library")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: all usable cores)")
    parser.add_argument("--out", default="simkernel-bench", help="folder for results.json")
    return parser.parse_args(argv)


def _cell(value: float | None, form: str) -> str:
    return "" if value is None else form.format(value)


def _table(results: list[Result], unit: str) -> list[str]:
    numpy_seconds = next((r.seconds for r in results if r.library == "numpy" and r.seconds), None)
    lines = [f"| library | median ms | numpy / library | recall@k | {unit} | % of limit | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        speedup = (numpy_seconds / r.seconds
                   if numpy_seconds and r.seconds and r.library != "numpy" else None)
        share = None if r.limit_share is None else 100 * r.limit_share
        lines.append(f"| {r.library} | {_cell(r.seconds and 1e3 * r.seconds, '{:.2f}')} | "
                     f"{_cell(speedup, '{:.2f}x')} | {_cell(r.recall, '{:.3f}')} | "
                     f"{_cell(r.rate, '{:.1f}')} | {_cell(share, '{:.0f}%')} | {r.note} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    scale = 1.0 if args.full else args.scale if args.scale else QUICK_SCALE
    threads = args.threads or sk.capabilities()["threads"]
    caps = sk.capabilities()
    header = (f"simkernel {caps['version']}, backend {caps['backend']}, isa {caps['isa']}; "
              f"{platform.processor() or platform.machine()}, {threads} threads; scale {scale:g}")
    print(header + "\n", flush=True)
    chosen = [name.strip() for name in args.libraries.split(",") if name.strip()]
    everything = []
    for scenario in scenarios(scale):
        if args.only not in scenario.name:
            continue
        results = run_scenario(scenario, threads, args.rounds, chosen)
        everything.extend(results)
        unit = "GB/s" if scenario.one_query else "GFLOP/s"
        print(f"### {scenario.name} (x{scale:g}: {scenario.queries} x {scenario.corpus}, "
              f"k={scenario.k}, {scenario.metric})\n")
        print("\n".join(_table(results, unit)) + "\n", flush=True)
    costs = []
    if args.only in index_costs.NAME:
        print(f"### {index_costs.NAME} (x{scale:g})\n")
        costs = index_costs.measure(scale, args.rounds)
        print("\n".join(index_costs.table(costs)) + "\n", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(
        {"header": header, "capabilities": caps, "scale": scale,
         "results": [r.as_dict() for r in everything],
         "index_costs": [c.as_dict() for c in costs]}, indent=1))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
