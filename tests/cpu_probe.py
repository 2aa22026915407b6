"""Every kind of search on every ISA this CPU supports, held to the numpy
backend: run by test_narrow_cpus.py under emulated CPUs (qemu-x86_64 -cpu
Nehalem / Haswell), where any instruction wider than the CPU has, in any path
the ISA choice reaches, dies of SIGILL. Prints one line per ISA checked and
"probe ok" last; any mismatch raises.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

import simkernel as sk
from simkernel import _backend, _numpy_backend


def with_numpy(function, *args, **kwargs):
    previous = _backend.set_active(_numpy_backend)
    try:
        return function(*args, **kwargs)
    finally:
        _backend.set_active(previous)


def same(got, want, integer: bool) -> None:
    for g, w in zip(got, want):
        if integer:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def probe() -> list[str]:
    rng = np.random.default_rng(7)
    # 300 rows: more than one corpus block of the core; 37 dims: a tail step.
    corpus = rng.standard_normal((300, 37)).astype(np.float32)
    queries = rng.standard_normal((5, 37)).astype(np.float32)
    codec = sk.Int8Quantizer.fit(corpus)
    codes, query_codes = codec.encode(corpus), codec.encode(queries)
    bits, query_bits = sk.binary_quantize(corpus), sk.binary_quantize(queries)
    cases = [
        (queries, corpus, "cosine", False), (queries, corpus, "l2", False),
        (queries, corpus.astype(np.float16), "dot", False),
        (queries, corpus.astype(ml_dtypes.bfloat16), "l2", False), (queries, codes, "cosine", False),
        (queries, bits, "dot", False), (query_codes, codes, "dot", True),
        (query_codes, codes, "sqeuclidean", True), (query_bits, bits, "hamming", True),
    ]
    checked = []
    for isa in sk.capabilities()["supported"]:
        with sk.use_isa(isa):
            for q, c, metric, integer in cases:
                same(sk.topk(q, c, k=7, metric=metric), with_numpy(sk.topk, q, c, k=7, metric=metric),
                     integer)
                same([sk.cdist(q, c, metric=metric)], [with_numpy(sk.cdist, q, c, metric=metric)],
                     integer)
            candidates = np.tile(np.arange(0, 300, 3), (5, 1))
            same(sk.rescore(queries, candidates, corpus, k=4),
                 with_numpy(sk.rescore, queries, candidates, corpus, k=4), False)
            for dtype, rescore in [("float32", None), ("float16", None), ("bfloat16", None),
                                   ("int8", None), ("binary", "float32")]:
                index = sk.Index(37, "cosine", dtype, rescore=rescore)
                index.add(corpus)
                found = index.search(queries, k=5)
                assert (found.indices[:, 0] >= 0).all(), (isa, dtype)
                self_hits = index.search(corpus[:20], k=1).indices[:, 0]
                assert (self_hits == np.arange(20)).mean() >= 0.9, (isa, dtype, self_hits)
        checked.append(isa)
    return checked


if __name__ == "__main__":
    for name in probe():
        print("checked", name)
    print("probe ok")
