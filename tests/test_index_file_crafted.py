"""Index files (and pickles) whose checksums are right but whose contents
are not what a save writes (docs/file-format.md, Loading): each load is an
IndexFileError, quickly, never a crash, a hang, an exhausted memory or an
index that pairs ids with the wrong rows."""

from __future__ import annotations

import json
import os
import pickle
import threading
import zlib

import numpy as np
import pytest

import simkernel as sk
from simkernel import _index_file

SHIFT = 1 << 20  # room for a rewritten header: every section moves this far


@pytest.fixture
def saved(tmp_path):
    index = sk.Index(8, "dot", "int8")
    index.add(np.random.default_rng(0).standard_normal((200, 8)), ids=np.arange(0, 400, 2))
    path = tmp_path / "index.sk"
    index.save(path)
    return path


def parts(path):
    data = path.read_bytes()
    _, _, length, _ = _index_file._PREAMBLE.unpack_from(data)
    return json.loads(data[64:64 + length]), data


def rewrite(path, change_header=None, change_payload=None, version=1, header_bytes=None):
    """Writes ``path`` again with the header changed (sections moved by SHIFT
    to make room) and the checksums made right again."""
    header, data = parts(path)
    payload = {s["name"]: bytearray(data[s["offset"]:s["offset"] + s["nbytes"]])
               for s in header["sections"]}
    if change_payload:
        change_payload(payload)
    for s in header["sections"]:
        s["offset"] += SHIFT
        s["crc32"] = zlib.crc32(payload[s["name"]])
    layout = [dict(s) for s in header["sections"]]
    if change_header:
        change_header(header)
    text = header_bytes if header_bytes is not None else json.dumps(header).encode()
    out = bytearray(_index_file._PREAMBLE.pack(_index_file.MAGIC, version, len(text),
                                               zlib.crc32(text)))
    out += bytes(64 - len(out)) + text
    for s, rows in zip(layout, payload.values()):  # the payload where the file had it
        out += bytes(max(0, s["offset"] - len(out))) + rows
    path.write_bytes(bytes(out))


def ids_of(payload):
    return np.frombuffer(bytes(payload["ids"]), np.int64).copy()


def set_ids(payload, ids):
    payload["ids"][:] = ids.astype(np.int64).tobytes()


def section(header, name):
    return next(s for s in header["sections"] if s["name"] == name)


def test_the_rewriting_helper_keeps_a_good_file_good(saved):
    rewrite(saved)
    for mmap in (True, False):
        assert len(sk.Index.load(saved, mmap=mmap, verify=True)) == 200


@pytest.mark.parametrize("case,message", [
    ("unsorted", "increasing order"), ("duplicate", "increasing order"),
    ("negative", "non-negative"), ("next_id", "not above the largest id"),
])
def test_ids_that_break_the_index_rules_are_refused(saved, case, message):
    def payload(p):
        ids = ids_of(p)
        if case == "unsorted":
            ids[[3, 4]] = ids[[4, 3]]
        elif case == "duplicate":
            ids[5] = ids[4]
        elif case == "negative":
            ids[0] = -2
        set_ids(p, ids)

    def header(h):
        if case == "next_id":
            h["settings"]["next_id"] = 10
    rewrite(saved, header, payload)
    for mmap in (True, False):
        with pytest.raises(sk.IndexFileError, match=message):
            sk.Index.load(saved, mmap=mmap)


def test_random_payload_flips_never_give_unsorted_ids(saved):
    _, data = parts(saved)
    rng = np.random.default_rng(5)
    for _ in range(100):
        def flip(p):
            at = int(rng.integers(len(p["ids"])))
            p["ids"][at] ^= 1 << int(rng.integers(8))
        saved.write_bytes(data)
        rewrite(saved, change_payload=flip)
        try:
            index = sk.Index.load(saved)
        except sk.IndexFileError:
            continue
        assert bool((np.diff(index.ids) > 0).all()) and index.ids[0] >= 0


@pytest.mark.parametrize("change,message", [
    (lambda h: h["sections"].append(dict(h["sections"][0])), "two sections are named"),
    (lambda h: h["settings"].update(int8_scale=None), "no int8_scale"),
    (lambda h: h["settings"].update(next_id=1.5), "next_id must be an integer"),
    (lambda h: h["settings"].update(dim=8.0), "cannot use"),
    (lambda h: h["settings"].update(asymmetric="yes"), "asymmetric must be"),
    (lambda h: section(h, "ids").update(shape=[200.0]), "described wrongly"),
    (lambda h: section(h, "ids").update(shape=[True]), "described wrongly"),
    (lambda h: section(h, "ids").update(shape=[-200]), "described wrongly"),
    (lambda h: section(h, "ids").update(shape=[2**70, 2**70]), "misplaced"),
    (lambda h: section(h, "ids").update(name=["ids"]), "described wrongly"),
    (lambda h: section(h, "ids").update(dtype="|O"), "described wrongly"),
    (lambda h: section(h, "ids").update(nbytes=-8), "described wrongly"),
    (lambda h: h.update(sections={"ids": 1}), "lacks its sections"),
    (lambda h: h.update(settings=[1]), "lacks settings"),
])
def test_malformed_headers_are_an_index_file_error(saved, change, message):
    rewrite(saved, change)
    with pytest.raises(sk.IndexFileError, match=message):
        sk.Index.load(saved)


def test_deeply_nested_json_and_non_finite_numbers_are_refused(saved):
    header, data = parts(saved)
    nested = json.dumps(header)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    rewrite(saved, header_bytes=nested.encode())
    with pytest.raises(sk.IndexFileError, match="unreadable header"):
        sk.Index.load(saved)
    saved.write_bytes(data)
    rewrite(saved, lambda h: h["settings"].update(next_id=float("inf")))  # JSON's Infinity
    with pytest.raises(sk.IndexFileError, match="unreadable header"):
        sk.Index.load(saved)


def test_format_version_zero_is_refused(saved):
    rewrite(saved, version=0)
    with pytest.raises(sk.IndexFileError, match="version 0"):
        sk.Index.load(saved)


def test_a_tiny_file_claiming_a_huge_header_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "tiny.sk"
    path.write_bytes(_index_file._PREAMBLE.pack(_index_file.MAGIC, 1, 2**32 - 1, 0) + bytes(44))
    with pytest.raises(sk.IndexFileError, match="truncated"):
        sk.Index.load(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    path = tmp_path / "fifo.sk"
    os.mkfifo(path)
    outcome = []

    def load():
        try:
            sk.Index.load(path)
        except sk.IndexFileError as error:
            outcome.append(str(error))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(10)
    if loader.is_alive():  # unblock it before failing
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("Index.load blocked on a FIFO")
    assert outcome and "not a regular file" in outcome[0]


def test_a_pickle_with_unsorted_ids_is_refused():
    index = sk.Index(4, "dot")
    index.add(np.eye(4), ids=[1, 2, 3, 4])
    restore, (settings, arrays) = index.__reduce__()
    arrays["ids"] = arrays["ids"][::-1].copy()
    assert pickle.loads(pickle.dumps(index)).ids.tolist() == [1, 2, 3, 4]
    with pytest.raises(sk.IndexFileError, match="increasing order"):
        restore(settings, arrays)


def test_save_keeps_the_permissions_of_the_file_it_replaces_and_follows_symlinks(tmp_path):
    index = sk.Index(4, "dot")
    index.add(np.eye(4))
    path = tmp_path / "kept.sk"
    index.save(path)
    os.chmod(path, 0o640)
    index.save(path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640)
    fresh = tmp_path / "fresh.sk"
    mask = os.umask(0o027)
    try:
        index.save(fresh)
    finally:
        os.umask(mask)
    assert oct(os.stat(fresh).st_mode & 0o777) == oct(0o640)
    link = tmp_path / "link.sk"
    link.symlink_to(path)
    index.add(np.ones((1, 4)))
    index.save(link)
    assert link.is_symlink() and len(sk.Index.load(path)) == 5
