"""The process around a search (docs/backends.md, Threads): interpreter exit
while a daemon thread is inside the core, fork() while another thread is in
the pool, and threads the OS refuses to start. Each runs in a subprocess
with a timeout: a crash is a signal exit code, a hang a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import NATIVE

needs_native = pytest.mark.skipif(NATIVE is None, reason="the native core is not loaded")


def python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMKERNEL_")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


EXIT_WHILE_SEARCHING = """
    import threading, time
    import numpy as np
    import simkernel as sk
    corpus = np.random.default_rng(0).standard_normal((200_000, 64), dtype=np.float32)
    queries = corpus[:64]
    def search():
        while True:
            sk.topk(queries, corpus, k=10, threads={threads})
    threading.Thread(target=search, daemon=True).start()
    time.sleep(0.3)
    print("exiting")
"""


@needs_native
@pytest.mark.parametrize("threads", [1, 2])
def test_the_interpreter_exits_cleanly_while_a_daemon_thread_searches(threads):
    # Before the fix: SIGABRT (std::terminate) in 10 of 10 runs.
    for _ in range(4):
        done = python(EXIT_WHILE_SEARCHING.format(threads=threads))
        assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
        assert done.stdout.strip() == "exiting"


FORK_WHILE_SEARCHING = """
    import os, threading
    import numpy as np
    import simkernel as sk
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((20_000, 32), dtype=np.float32)
    queries = rng.standard_normal((8, 32), dtype=np.float32)
    want = sk.topk(queries, corpus, k=5, threads=2).indices
    stop = False
    def search():
        while not stop:
            sk.topk(queries, corpus, k=5, threads=2)
    busy = threading.Thread(target=search)
    busy.start()
    hung = failed = 0
    for _ in range({forks}):
        pid = os.fork()
        if pid == 0:
            ok = (sk.topk(queries, corpus, k=5, threads=2).indices == want).all()
            os._exit(0 if ok else 1)
        for _ in range(1000):  # 10 s at most
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed += os.waitstatus_to_exitcode(status) != 0
                break
            threading.Event().wait(0.01)
        else:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    stop = True
    busy.join()
    print(hung, failed)
"""


@needs_native
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_while_another_thread_searches_never_hangs():
    done = python(FORK_WHILE_SEARCHING.format(forks=150), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "0"]  # hung, failed


THREADS_REFUSED = """
    import resource
    import numpy as np
    import simkernel as sk
    rng = np.random.default_rng(2)
    corpus = rng.standard_normal((50_000, 32), dtype=np.float32)
    queries = rng.standard_normal((40, 32), dtype=np.float32)
    want = sk.topk(queries, corpus, k=5, threads=1)
    # Room for a few more thread stacks (8 MiB each) and nothing like 64.
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + (48 << 20), resource.RLIM_INFINITY))
    got = sk.topk(queries, corpus, k=5, threads=64)
    print((got.indices == want.indices).all() and (got.scores == want.scores).all())
"""


@needs_native
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_threads_the_os_refuses_to_start_mean_fewer_threads_not_an_abort():
    done = python(THREADS_REFUSED)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "True"
