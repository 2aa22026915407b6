"""The native backend: hands checked arguments to the C++ core."""

from __future__ import annotations

import numpy as np

from . import _core  # type: ignore[attr-defined]  # ImportError where it cannot load
from ._inputs import SearchArgs, non_finite_error

name = "native"


def topk(args: SearchArgs, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _core.topk(args.queries, args.corpus, args.pair, args.metric,
                          args.dim, k, threads)
    except _core.NonFiniteError:
        raise non_finite_error(args) from None


def cdist(args: SearchArgs, threads: int, out: np.ndarray) -> np.ndarray:
    try:
        _core.cdist(args.queries, args.corpus, args.pair, args.metric,
                    args.dim, threads, out)
    except _core.NonFiniteError:
        raise non_finite_error(args) from None
    return out


def rescore(args: SearchArgs, candidates: np.ndarray, k: int,
            threads: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _core.rescore(args.queries, candidates, args.corpus, args.pair,
                             args.metric, args.dim, k, threads)
    except _core.NonFiniteError:
        raise non_finite_error(args) from None
