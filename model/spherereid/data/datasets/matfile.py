"""MATLAB files of dataset releases (CUHK03, CUHK-SYSU): v5 via scipy, v7.3 (HDF5) via h5py.

Every failure, from an unreadable file to a struct of unexpected shape, becomes a `DatasetError` that
names the file and says which original release file is expected.
Sizes are checked before anything is read, so a tiny file cannot ask for gigabytes: a v5 file's variables
(their shapes, from `scipy.io.whosmat`, and how far each compressed one expands) before `loadmat`; an
HDF5 dataset's shape and chunk size before it is read (`read_v73`).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from .base import DatasetError

MAX_V5_ARRAY_BYTES = 16 * 1024**2  # a v5 variable's numeric array (real files: CUHK03-NP's largest is 113 kB)
MAX_V5_ELEMENTS = 10_000_000  # elements of a v5 cell / struct array (real files: at most ~20,000)
# A compressed v5 variable (cell and struct contents included) may inflate beyond MAX_V5_INFLATED_BYTES
# only at a modest ratio: real files expand ~25-fold (CUHK03-NP: 46,868 -> 1,014,968 bytes), a zlib
# bomb ~1000-fold.
MAX_V5_INFLATED_BYTES = 64 * 1024**2
MAX_V5_EXPANSION = 100
_V5_CLASS_BYTES = {
    "double": 8,
    "single": 4,
    "int64": 8,
    "uint64": 8,
    "int32": 4,
    "uint32": 4,
    "int16": 2,
    "uint16": 2,
    "int8": 1,
    "uint8": 1,
    "logical": 1,
    "char": 4,
}
_V5_CONTAINERS = ("cell", "struct", "object")
_MI_COMPRESSED = 15
_V5_HEADER = 128
_READ = 1 << 16
_HEAD = 256  # inflated bytes kept of a compressed variable: enough for its name

# what a file of the wrong structure raises while it is walked (missing key / field, wrong dtype, ...);
# OSError (unreadable data, disk full) is left alone: it is not about the structure, and the CLIs
# report it in one line anyway
_STRUCTURE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


@contextmanager
def reading(path: Path, expected: str) -> Iterator[None]:
    """Turn structure errors raised in the block into a DatasetError naming `path` and `expected`."""
    try:
        yield
    except DatasetError:
        raise
    except _STRUCTURE_ERRORS as exc:
        raise DatasetError(
            f"{path}: unexpected content ({type(exc).__name__}: {exc}); use the original {expected}"
        ) from None


def _v5_size(shape: tuple[int, ...], cls: str) -> tuple[int, str, int]:
    """(size, unit, cap) of a v5 variable as whosmat declares it: elements of a cell / struct array, bytes
    of any other (0 for sparse and opaque classes: what they hold is data in the file)."""
    count = math.prod(shape)
    if cls in _V5_CONTAINERS:
        return count, "element", MAX_V5_ELEMENTS
    return count * _V5_CLASS_BYTES.get(cls, 0), "byte", MAX_V5_ARRAY_BYTES


def _check_v5_shapes(path: Path, expected: str) -> None:
    """DatasetError if a variable's declared shape (from whosmat, which reads headers only) is over a cap."""
    import scipy.io

    for name, shape, cls in scipy.io.whosmat(path):
        size, unit, cap = _v5_size(shape, cls)
        if size > cap:
            raise DatasetError(
                f"{path}: variable '{name}' is a {'x'.join(map(str, shape))} {cls} array of {size} {unit}s, "
                f"over the {cap}-{unit} cap; not loaded (use the original {expected})"
            )


def _inflate_counted(fh: IO[bytes], compressed: int, limit: int) -> tuple[int, bytes]:
    """(bytes the next `compressed` bytes of fh inflate to, counted up to just past `limit`; the first
    inflated bytes). Inflated in small pieces, nothing kept; fh is left after the compressed bytes."""
    inflate, total, left, head = zlib.decompressobj(), 0, compressed, b""
    while left > 0 and total <= limit:
        data = fh.read(min(left, _READ))
        if not data:
            break
        left -= len(data)
        while data and total <= limit:
            out = inflate.decompress(data, _READ)
            head, total, data = head or out[:_HEAD], total + len(out), inflate.unconsumed_tail
    fh.seek(left, 1)
    return total, head


def _v5_element(buf: bytes, pos: int, order: str) -> tuple[bytes, int]:
    """(data, position after) of the v5 data element at buf[pos:], small (4-byte) format included."""
    mdtype, nbytes = struct.unpack_from(order + "II", buf, pos)
    if mdtype >> 16:  # small data element: the size in the tag's upper half, the data in its second word
        return buf[pos + 4 : pos + 4 + (mdtype >> 16)], pos + 8
    return buf[pos + 8 : pos + 8 + nbytes], pos + 8 + nbytes + (-nbytes % 8)


def _v5_name(head: bytes, order: str) -> str:
    """The variable name in the first bytes of an inflated miMATRIX element (tag, flags, dims, name)."""
    try:
        _, pos = _v5_element(head, 8, order)  # array flags
        _, pos = _v5_element(head, pos, order)  # dimensions
        return _v5_element(head, pos, order)[0].decode("latin1")
    except struct.error:
        return "?"


def _check_v5_expansion(path: Path, expected: str) -> None:
    """DatasetError if a compressed variable inflates past MAX_V5_INFLATED_BYTES at more than
    MAX_V5_EXPANSION-fold (cell and struct contents included, which whosmat does not show). Runs before
    whosmat, which inflates a whole 128 kB compressed block at once (~130 MB of a zlib bomb)."""
    with open(path, "rb") as fh:
        endian = fh.read(_V5_HEADER)[126:128]
        if endian not in (b"IM", b"MI"):
            return  # not a v5 file (v4 has no compression): whosmat / loadmat read or refuse it
        order = "<" if endian == b"IM" else ">"
        while len(tag := fh.read(8)) == 8:
            mdtype, nbytes = struct.unpack(order + "II", tag)
            if mdtype != _MI_COMPRESSED:
                fh.seek(nbytes + (-nbytes % 8), 1)  # an uncompressed element: no larger than the file
                continue
            limit = max(MAX_V5_INFLATED_BYTES, MAX_V5_EXPANSION * nbytes)
            total, head = _inflate_counted(fh, nbytes, limit)
            if total > limit:
                raise DatasetError(
                    f"{path}: variable '{_v5_name(head, order)}' expands from {nbytes} compressed bytes to "
                    f"over {limit} bytes (more than {MAX_V5_EXPANSION}x), a likely decompression bomb; not "
                    f"loaded (use the original {expected})"
                )


def load_v5(path: Path, expected: str, **kwargs: Any) -> dict[str, Any]:
    """`scipy.io.loadmat(path, **kwargs)` after the size checks; DatasetError if the file is not a readable
    v5 MAT file or a variable is over a cap."""
    import scipy.io

    try:
        _check_v5_expansion(path, expected)
        _check_v5_shapes(path, expected)
        return scipy.io.loadmat(path, **kwargs)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - MatReadError, ValueError, NotImplementedError (v7.3), ...
        raise DatasetError(
            f"{path}: not readable as a MATLAB v5 file ({type(exc).__name__}: {exc}); use the original "
            f"{expected}"
        ) from None


def open_v73(path: Path, expected: str) -> Any:
    """An open h5py.File of a MATLAB v7.3 file, or DatasetError if it is not HDF5."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(
            f"{path}: not readable as MATLAB v7.3 (HDF5) ({exc}); use the original {expected}"
        ) from None


def v73_bytes(ds: Any) -> int:
    """Bytes reading an h5py dataset whole allocates: its shape's, or one chunk's (HDF5 inflates whole
    chunks, and a chunk may be larger than the shape), whichever is larger."""
    sizes = [math.prod(ds.shape or ()), math.prod(ds.chunks or ())]
    return max(sizes) * ds.dtype.itemsize


def read_v73(ds: Any, path: Path, expected: str, max_bytes: int) -> np.ndarray:
    """`ds[()]`, or DatasetError before reading anything if `v73_bytes(ds)` is over `max_bytes`."""
    need = v73_bytes(ds)
    if need > max_bytes:
        raise DatasetError(
            f"{path}: '{ds.name}' is {ds.shape} {ds.dtype} ({need} bytes), over the {max_bytes}-byte cap for "
            f"this entry; not read. Use the original {expected}"
        )
    return np.asarray(ds[()])


def mat_str(x: Any) -> str:
    """A MATLAB string as loaded by scipy (str, or a nested 1-element array of one) as str; '' if empty."""
    while isinstance(x, np.ndarray):
        x = x.ravel()[0] if x.size else ""
    return str(x)
