"""The index file format: a self-describing header and 64-byte-aligned
sections that can be memory-mapped.

Layout (all integers little-endian)::

    0   8 bytes  magic b"SKINDEX\\0"
    8   uint32   format version
    12  uint32   header length H
    16  uint32   CRC-32 of the header
    20  zeros up to 64
    64  H bytes  header: UTF-8 JSON (settings, counts, and for every section
                 its name, dtype, shape, offset, size and CRC-32)
    then the sections, each starting at a multiple of 64, the last one ending
    the file.

A file is written whole to a temporary file in the target's folder, synced,
then renamed over the target: an interrupted save leaves the old file as it
was (and at worst a stray temporary file).
"""

from __future__ import annotations

import json
import os
import stat
import struct
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ._checks import BFLOAT16

MAGIC = b"SKINDEX\0"
# The newest format this reads. Version 2 added bfloat16 sections; a file
# without them is still written as version 1, which older releases read.
VERSION = 2
_PREAMBLE = struct.Struct("<8sIII")
_ALIGN = 64
# Sections are written and checksummed in pieces of this size, so saving
# never needs a second copy of a large array.
_PIECE_BYTES = 1 << 26


class IndexFileError(ValueError):
    """An index file that cannot be loaded: foreign, truncated, corrupt or too new."""


@dataclass(frozen=True)
class Section:
    """One array of an index file, given as pieces written one after another
    (rows of one dtype and width)."""

    name: str
    arrays: Sequence[np.ndarray]

    @property
    def dtype(self) -> np.dtype:
        return self.arrays[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(map(len, self.arrays)),) + self.arrays[0].shape[1:]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _pieces(arrays: Sequence[np.ndarray]) -> Iterator[memoryview]:
    """The arrays' bytes in order, a bounded piece at a time."""
    for array in arrays:
        row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:])))
        step = max(1, _PIECE_BYTES // row_bytes)
        for start in range(0, len(array), step):
            # As bytes: a buffer of bfloat16 (ml_dtypes) cannot be exported.
            yield np.ascontiguousarray(array[start:start + step]).reshape(-1).view(np.uint8).data


def _crc(arrays: Sequence[np.ndarray]) -> int:
    crc = 0
    for piece in _pieces(arrays):
        crc = zlib.crc32(piece, crc)
    return crc


def _describe(sections: list[Section], crcs: list[int],
              first_offset: int) -> list[dict[str, Any]]:
    described, offset = [], first_offset
    for section, crc in zip(sections, crcs):
        described.append({"name": section.name, "dtype": _dtype_name(section.dtype),
                          "shape": list(section.shape), "offset": offset,
                          "nbytes": section.nbytes, "crc32": crc})
        offset = _aligned(offset + section.nbytes)
    return described


def _header_bytes(settings: dict[str, Any], sections: list[Section]) -> bytes:
    crcs = [_crc(section.arrays) for section in sections]
    # Section offsets depend on the header's length, which depends on the
    # offsets' digits: lay out until the length stops changing.
    length = 0
    while True:
        first = _aligned(_ALIGN + length)
        header = json.dumps({"settings": settings, "sections": _describe(sections, crcs, first)},
                            sort_keys=True).encode()
        if len(header) == length:
            return header
        length = len(header)


def write(path: str | os.PathLike[str], settings: dict[str, Any],
          sections: list[Section]) -> None:
    """Writes a complete file next to ``path``, syncs it, then renames it over
    ``path``. Through a symlink, the file it points to is replaced (the link
    stays). The file keeps the permissions of the one it replaces; a new one
    follows the umask, as ``open`` would."""
    target = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(target)
    header = _header_bytes(settings, sections)
    layout = json.loads(header)["sections"]
    mode = _mode_for(target)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.",
                                         suffix=".tmp", dir=folder)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(_PREAMBLE.pack(MAGIC, _version_for(sections), len(header), zlib.crc32(header)))
            out.write(bytes(_ALIGN - _PREAMBLE.size))
            out.write(header)
            for section, where in zip(sections, layout):
                out.write(bytes(where["offset"] - out.tell()))
                for piece in _pieces(section.arrays):
                    out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _version_for(sections: list[Section]) -> int:
    """The oldest format version that holds these sections."""
    return 2 if any(section.dtype == BFLOAT16 for section in sections) else 1


def _mode_for(target: str) -> int:
    """The permission bits a save gives ``target``: those of the file there,
    else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        pass
    try:
        with open("/proc/self/status") as status:  # reads the umask without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back
    os.umask(mask)
    return 0o666 & ~mask


def _sync_folder(folder: str) -> None:
    """Makes the rename itself durable."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some systems
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} in the header")


def _read_header(path: str, size: int) -> dict[str, Any]:
    with open(path, "rb") as f:
        preamble = f.read(_ALIGN)
        if len(preamble) < _PREAMBLE.size or preamble[:len(MAGIC)] != MAGIC:
            raise IndexFileError(f"{path} is not a simkernel index file")
        _, version, length, crc = _PREAMBLE.unpack_from(preamble)
        if version > VERSION:
            raise IndexFileError(
                f"{path} has index format version {version}; this simkernel reads "
                f"versions up to {VERSION}: upgrade simkernel to load it")
        if version < 1:
            raise IndexFileError(f"{path} has format version {version}, which never existed")
        # The claimed length is checked against the file before anything is read.
        if _ALIGN + length > size:
            raise IndexFileError(f"{path} is truncated: its header runs past the end")
        header = f.read(length) if len(preamble) == _ALIGN else b""
    if len(header) != length or zlib.crc32(header) != crc:
        raise IndexFileError(f"{path} is corrupt: its header checksum does not match")
    try:
        parsed = json.loads(header, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise IndexFileError(f"{path} is corrupt: unreadable header ({error})") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("settings"), dict):
        raise IndexFileError(f"{path} is corrupt: header lacks settings")
    return parsed


# The element types an index file holds (ids, and each storage kind's rows),
# by the name its header gives them: numpy's type string, except bfloat16,
# whose type string ("<V2") would read back as two raw bytes.
_DTYPES = {np.dtype(t).str: np.dtype(t) for t in (np.int64, np.float32, np.float16, np.int8, np.uint8)}
_DTYPES["bfloat16"] = BFLOAT16


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if dtype == BFLOAT16 else dtype.str


def _count(value: object) -> bool:
    """A non-negative JSON integer (not a bool, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: str, size: int, header: dict[str, Any]) -> list[dict[str, Any]]:
    """Every section's description, checked against the rules a written file
    keeps: known element types, whole shapes, sizes that match, sections in
    order at 64-byte boundaries, one name each, the last one ending the file."""
    sections = header.get("sections")
    if not isinstance(sections, list):
        raise IndexFileError(f"{path} is corrupt: header lacks its sections")
    end, names = _ALIGN, set()
    for s in sections:
        ok = (isinstance(s, dict) and isinstance(s.get("name"), str)
              and isinstance(s.get("dtype"), str) and s["dtype"] in _DTYPES
              and isinstance(s.get("shape"), list)
              and all(_count(n) for n in s["shape"]) and 1 <= len(s["shape"]) <= 2
              and all(_count(s.get(key)) for key in ("offset", "nbytes", "crc32")))
        if not ok:
            raise IndexFileError(f"{path} is corrupt: a section is described wrongly: "
                                 f"{str(s)[:200]}")
        if s["name"] in names:
            raise IndexFileError(f"{path} is corrupt: two sections are named {s['name']!r}")
        names.add(s["name"])
        expected = _DTYPES[s["dtype"]].itemsize
        for n in s["shape"]:
            expected *= n  # Python integers: a huge shape cannot wrap around
        if s["offset"] % _ALIGN or s["offset"] < end or s["nbytes"] != expected:
            raise IndexFileError(f"{path} is corrupt: section {s['name']!r} is misplaced")
        end = s["offset"] + s["nbytes"]
    if end > size:
        raise IndexFileError(f"{path} is truncated: {size} bytes, its sections need {end}")
    if end < size:
        raise IndexFileError(f"{path} is corrupt: {size - end} bytes follow its last section")
    return sections


def read(path: str | os.PathLike[str], mmap: bool,
         verify: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The settings and the sections of an index file.

    With ``mmap`` the sections are read-only memory maps and nothing past the
    header is read unless ``verify``; without it, they are read and verified.
    """
    path = os.fspath(path)
    info = os.stat(path)
    # A FIFO or a device would block open() or read without end.
    if not stat.S_ISREG(info.st_mode):
        raise IndexFileError(f"{path} is not a regular file")
    size = info.st_size
    header = _read_header(path, size)
    arrays = {}
    for s in _check_layout(path, size, header):
        dtype, shape = _DTYPES[s["dtype"]], tuple(s["shape"])
        if s["nbytes"] == 0:
            array = np.empty(shape, dtype)
        elif mmap:
            array = np.memmap(path, dtype=dtype, mode="r", offset=s["offset"], shape=shape)
        else:
            array = np.fromfile(path, dtype=dtype, count=int(np.prod(shape)),
                                offset=s["offset"]).reshape(shape)
        if (verify or not mmap) and _crc([array]) != s["crc32"]:
            raise IndexFileError(f"{path} is corrupt: section {s['name']!r} fails its checksum")
        arrays[s["name"]] = array
    return header["settings"], arrays
