"""The native backend: hands checked arguments to the C++ core."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from . import _core  # type: ignore[attr-defined]  # ImportError where it cannot load
from ._inputs import Corpus, Pieces, SearchArgs, non_finite_error, too_many_results_error

name = "native"


def _run(args: SearchArgs, function: Callable[..., Any], *arguments: object) -> Any:
    """Calls the core; it only knows a score was not finite, this names the
    argument. (A plain try, not a context manager: this is on every call.)"""
    try:
        return function(*arguments)
    except _core.NonFiniteError:
        raise non_finite_error(args) from None


def _pieces(corpus: Corpus) -> object:
    """The corpus as the core takes it: an array, or a list of pieces."""
    return corpus.arrays if isinstance(corpus, Pieces) else corpus


def topk(args: SearchArgs, k: int, threads: int,
         allowed: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    return _run(args, _core.topk, args.queries, _pieces(args.corpus), args.pair, args.metric,
                args.dim, k, threads, allowed, args.affine)


def cdist(args: SearchArgs, threads: int, out: np.ndarray) -> np.ndarray:
    _run(args, _core.cdist, args.queries, _pieces(args.corpus), args.pair, args.metric, args.dim,
         threads, out, args.affine)
    return out


def rescore(args: SearchArgs, candidates: np.ndarray, k: int,
            threads: int) -> tuple[np.ndarray, np.ndarray]:
    return _run(args, _core.rescore, args.queries, candidates, _pieces(args.corpus), args.pair,
                args.metric, args.dim, k, threads, args.affine)


def range_search(args: SearchArgs, threshold: float, max_results: int, threads: int,
                 allowed: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return _run(args, _core.range_search, args.queries, _pieces(args.corpus), args.pair,
                    args.metric, args.dim, threshold, max_results, threads, allowed, args.affine)
    except _core.TooManyResultsError:
        raise too_many_results_error(max_results) from None
