"""Index persistence (issue 5): round trips, memory mapping, crash safety,
and clear errors for files that are not what they claim."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import simkernel as sk
from simkernel import _index_file

CASES = [("cosine", "float32", None), ("l2", "float16", None), ("dot", "int8", "float32"),
         ("cosine", "binary", "int8"), ("hamming", "binary", None), ("cosine", "bfloat16", None),
         ("dot", "int8", "bfloat16")]


pytestmark = pytest.mark.usefixtures("index_pieces")


@pytest.fixture
def rng():
    return np.random.default_rng(99)


def filled(rng, metric="cosine", dtype="float32", rescore=None, n=500, dim=32):
    index = sk.Index(dim, metric, dtype, rescore)
    index.add(rng.standard_normal((n, dim)), ids=rng.permutation(5 * n)[:n])
    return index


@pytest.mark.parametrize("metric,dtype,rescore", CASES)
def test_round_trip_gives_identical_results(backend, rng, tmp_path, metric, dtype, rescore):
    index = filled(rng, metric, dtype, rescore)
    index.remove(index.ids[:7])
    path = tmp_path / "index.sk"
    index.save(path)
    q = rng.standard_normal((6, 32))
    want = index.search(q, k=8, allow=index.ids[::3])
    next_ids = []
    for mmap in (True, False):
        loaded = sk.Index.load(path, mmap=mmap)
        got = loaded.search(q, k=8, allow=index.ids[::3])
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_array_equal(loaded.ids, index.ids)
        assert (loaded.dim, loaded.metric, loaded.dtype, loaded.rescore) == (32, metric, dtype, rescore)
        assert loaded.quantizer == index.quantizer and len(loaded) == len(index)
        next_ids += loaded.add(np.ones(32)).tolist()
    # The next automatic id was saved too (removed ids are not handed out again).
    assert next_ids == [index.add(np.ones(32))[0]] * 2


def test_a_mapped_index_can_change_and_be_saved_over_its_own_file(backend, rng, tmp_path):
    path = tmp_path / "index.sk"
    filled(rng, "l2").save(path)
    loaded = sk.Index.load(path, mmap=True)
    vectors = loaded.get(loaded.ids[:3])
    loaded.remove(loaded.ids[:2])
    added = loaded.add(vectors[:1])
    loaded.save(path)
    again = sk.Index.load(path, mmap=False)
    assert again.ids.tolist() == loaded.ids.tolist() and len(again) == 499
    np.testing.assert_array_equal(again.get(added), vectors[:1])


def test_mmap_load_reads_no_payload_until_asked_to_verify(rng, tmp_path):
    path = tmp_path / "index.sk"
    filled(rng).save(path)
    with open(path, "r+b") as f:  # flip a byte in the last section's payload
        f.seek(-5, os.SEEK_END)
        byte = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    sk.Index.load(path, mmap=True)
    with pytest.raises(sk.IndexFileError, match="checksum"):
        sk.Index.load(path, mmap=True, verify=True)
    with pytest.raises(sk.IndexFileError, match="checksum"):
        sk.Index.load(path, mmap=False)


def test_truncated_foreign_corrupt_and_newer_files_are_refused(rng, tmp_path):
    path = tmp_path / "index.sk"
    filled(rng).save(path)
    data = path.read_bytes()

    def refused(content: bytes, message: str) -> None:
        bad = tmp_path / "bad.sk"
        bad.write_bytes(content)
        for mmap in (True, False):
            with pytest.raises(sk.IndexFileError, match=message):
                sk.Index.load(bad, mmap=mmap)

    refused(data[:-100], "truncated")
    refused(data[:40], "truncated")
    refused(b"", "not a simkernel index")
    refused(b"PK\x03\x04" + data[4:], "not a simkernel index")
    refused(data + b"\0" * 64, "follow its last section")
    header_byte = 64 + 10
    refused(data[:header_byte] + bytes([data[header_byte] ^ 1]) + data[header_byte + 1:],
            "header checksum")
    newer = data[:8] + struct.pack("<I", _index_file.VERSION + 1) + data[12:]
    refused(newer, f"version {_index_file.VERSION + 1}")
    assert isinstance(sk.IndexFileError("x"), ValueError)


@pytest.mark.parametrize("dtype,rescore,version", [("float32", None, 1), ("int8", "float16", 1),
                                                   ("bfloat16", None, 2), ("int8", "bfloat16", 2)])
def test_a_file_has_the_oldest_version_that_holds_it(rng, tmp_path, dtype, rescore, version):
    # Releases before bfloat16 read version 1; only files with bfloat16 rows
    # need version 2, so an old release refuses them as too new, not corrupt.
    path = tmp_path / "index.sk"
    filled(rng, "dot", dtype, rescore, n=20).save(path)
    assert struct.unpack_from("<I", path.read_bytes(), 8)[0] == version


def test_a_failed_save_leaves_the_previous_file(rng, tmp_path, monkeypatch):
    path = tmp_path / "index.sk"
    old = filled(rng, n=100)
    old.save(path)
    before = path.read_bytes()

    def failing_pieces(arrays):
        yield np.ascontiguousarray(arrays[0]).reshape(-1).data[:10]
        raise OSError("disk full")

    monkeypatch.setattr(_index_file, "_pieces", failing_pieces)
    with pytest.raises(OSError, match="disk full"):
        filled(rng, n=300).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["index.sk"]  # the temporary file is gone


KILLED_SAVE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import simkernel as sk
    from simkernel import _index_file

    # A slow disk: the save is still writing when the parent kills this process.
    original = _index_file._pieces
    def slow_pieces(arrays):
        for piece in original(arrays):
            time.sleep(0.01)
            yield piece
    _index_file._PIECE_BYTES = 1 << 16
    _index_file._pieces = slow_pieces
    index = sk.Index(64, "l2")
    index.add(np.random.default_rng(1).standard_normal((20000, 64)))
    print("saving", flush=True)
    index.save(sys.argv[1])
    print("finished", flush=True)
""")


def test_a_save_killed_midway_leaves_the_previous_file_loadable(rng, tmp_path):
    path = tmp_path / "index.sk"
    old = filled(rng, "l2", n=300, dim=64)
    old.save(path)
    q = rng.standard_normal((4, 64))
    want = old.search(q, k=5)
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "saving"
    deadline = time.monotonic() + 60
    while not any(name.endswith(".tmp") and os.path.getsize(tmp_path / name) > 1 << 20
                  for name in os.listdir(tmp_path)):
        assert time.monotonic() < deadline and child.poll() is None, "the save never started"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.stdout.read() == ""  # it did not finish
    loaded = sk.Index.load(path, mmap=False)
    np.testing.assert_array_equal(loaded.search(q, k=5).indices, want.indices)
    np.testing.assert_array_equal(loaded.ids, old.ids)
