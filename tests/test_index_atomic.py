"""Every Index change is all or nothing (docs/index.md): interrupted at any
line of simkernel's code (a KeyboardInterrupt or a MemoryError), an add,
remove or compact leaves the index as it was before or as it would be after,
every id naming its own vector, and unlocked reads never see a state in
between."""

from __future__ import annotations

import linecache
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import simkernel as sk

PACKAGE = str(Path(sk.__file__).parent)


def fails_at(line: int, error: BaseException):
    """A trace function that fails at the ``line``-th line run inside the
    simkernel package as a signal or a failed allocation would there: Ctrl-C
    goes to the SIGINT handler in force (which raises KeyboardInterrupt, unless
    the code holds it back), a MemoryError is raised where code runs (not as a
    ``with`` block exits, where nothing is allocated)."""
    seen = 0

    def local(frame, event, arg):
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == line:
                source = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
                if isinstance(error, KeyboardInterrupt):
                    signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
                elif not source.strip().startswith("with "):
                    raise error
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    return calls


def run_interrupted(change, line: int, error: BaseException) -> bool:
    """Runs ``change`` with a failure at ``line``; whether it failed."""
    sys.settrace(fails_at(line, error))
    try:
        change()
    except type(error):
        return True
    finally:
        sys.settrace(None)
    return False


def holds(index: sk.Index, model: dict[int, np.ndarray]) -> bool:
    ids = sorted(model)
    if list(index.ids) != ids or len(index) != len(ids):
        return False
    if ids and not np.array_equal(index.get(ids), np.stack([model[i] for i in ids])):
        return False
    if ids:  # a search finds each vector itself
        found = index.search(np.stack([model[i] for i in ids[:5]]), k=1)
        return list(found.indices[:, 0]) == ids[:5]
    return True


def changes(rng):
    """(name, change(index, model) -> new model) pairs covering every path."""
    def vectors(n):
        return rng.standard_normal((n, 8)).astype(np.float32)

    def add_auto(index, model):
        x = vectors(5)
        new = dict(model)
        next_id = max(model, default=-1) + 1
        new.update({next_id + i: x[i] for i in range(5)})
        return lambda: index.add(x), new

    def add_below(index, model):  # ids below the largest: rows are put back in order
        x = vectors(3)
        ids = [i for i in range(max(model)) if i not in model][:3]
        new = dict(model)
        new.update({i: x[j] for j, i in enumerate(ids)})
        return lambda: index.add(x[:len(ids)], ids=ids), new

    def replace(index, model):
        victims = sorted(model)[:2]
        x = vectors(len(victims))
        new = dict(model)
        new.update({i: x[j] for j, i in enumerate(victims)})
        return lambda: index.add(x, ids=victims, replace=True), new

    def remove(index, model):
        victims = sorted(model)[1:3]
        new = {i: v for i, v in model.items() if i not in victims}
        return lambda: index.remove(victims), new

    def compact(index, model):
        return index.compact, dict(model)

    return [("add", add_auto), ("add below", add_below), ("replace", replace),
            ("remove", remove), ("compact", compact)]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), MemoryError()], ids=["sigint", "nomem"])
def test_an_interrupted_change_leaves_the_index_before_or_after(error, index_pieces):
    rng = np.random.default_rng(3)
    index = sk.Index(8, "l2")
    start = rng.standard_normal((40, 8)).astype(np.float32)
    index.add(start)
    model = {i: start[i] for i in range(40)}
    index.remove([4, 5, 6])
    for i in (4, 5, 6):
        del model[i]
    interrupted = 0
    for name, make in changes(rng) * 2:
        line = 1
        while True:
            change, after = make(index, model)
            failed = run_interrupted(change, line, error)
            if not failed:
                assert holds(index, after), (name, "completed")
                model = after
                break
            interrupted += 1
            before_ok, after_ok = holds(index, model), holds(index, after)
            assert before_ok or after_ok, (name, line)
            if after_ok:
                model = after
                break
            line += 1
    assert interrupted > 50  # every change was cut at many points
    # What is left saves, loads and pickles as itself.
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"atomic-{os.getpid()}.sk"
    try:
        index.save(path)
        assert holds(sk.Index.load(path), model)
    finally:
        path.unlink(missing_ok=True)


def test_unlocked_reads_see_one_state_while_another_thread_changes():
    rng = np.random.default_rng(4)
    index = sk.Index(4, "dot")
    block = rng.standard_normal((1000, 4)).astype(np.float32)
    index.add(block)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            index.remove(np.arange(500, 1000))
            index.add(block[500:], ids=np.arange(500, 1000))

    worker = threading.Thread(target=churn)
    worker.start()
    bad = []
    try:
        for _ in range(3000):
            n, ids = len(index), index.ids
            if n not in (500, 1000) or len(ids) not in (500, 1000) or 3 not in index:
                bad.append((n, len(ids)))
    finally:
        stop.set()
        worker.join()
    assert bad == []
