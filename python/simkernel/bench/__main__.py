"""``python -m simkernel.bench``: simkernel against numpy on the scenarios of
DESIGN section 4, side by side in one run, as a Markdown table."""

from __future__ import annotations

import argparse
import statistics
import time

import simkernel as sk

from .runner import searches
from .scenarios import scenarios

QUICK_SCALE = 0.05


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simkernel.bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help=f"scenarios at {QUICK_SCALE:g} of full size (the default)")
    size.add_argument("--full", action="store_true", help="full-size scenarios")
    size.add_argument("--scale", type=float, help="scenario size as a fraction of full")
    parser.add_argument("--only", default="", help="run scenarios whose name contains this")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per library")
    parser.add_argument("--threads", type=int, default=None, help="threads for simkernel")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    scale = 1.0 if args.full else args.scale if args.scale else QUICK_SCALE
    caps = sk.capabilities()
    print(f"simkernel {caps['version']}, backend {caps['backend']}, isa {caps['isa']}, "
          f"threads {args.threads or caps['threads']}, scale {scale:g}\n")
    print("| scenario | simkernel (ms) | numpy (ms) | numpy / simkernel |")
    print("| --- | ---: | ---: | ---: |")
    for scenario in scenarios(scale):
        if args.only not in scenario.name:
            continue
        queries, corpus = scenario.make()
        runs = searches(scenario, queries, corpus, args.threads)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        ours, theirs = (statistics.median(times[n]) for n in ("simkernel", "numpy"))
        label = f"{scenario.name} (x{scale:g}: {scenario.queries} x {scenario.corpus})"
        print(f"| {label} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {theirs / ours:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
