"""MATLAB files of dataset releases (CUHK03, CUHK-SYSU): v5 via scipy, v7.3 (HDF5) via h5py.

Every failure, from an unreadable file to a struct of unexpected shape, becomes a `DatasetError` that
names the file and says which original release file is expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError

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


def load_v5(path: Path, expected: str, **kwargs: Any) -> dict[str, Any]:
    """`scipy.io.loadmat(path, **kwargs)`, or DatasetError if the file is not a readable v5 MAT file."""
    import scipy.io

    try:
        return scipy.io.loadmat(path, **kwargs)
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


def mat_str(x: Any) -> str:
    """A MATLAB string as loaded by scipy (str, or a nested 1-element array of one) as str; '' if empty."""
    while isinstance(x, np.ndarray):
        x = x.ravel()[0] if x.size else ""
    return str(x)
