"""MATLAB v5 files are size-checked before scipy loads them: the real files pass, hostile ones are refused."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures.matv5 import write_variable  # noqa: E402

from spherereid.data.datasets.base import DatasetError  # noqa: E402
from spherereid.data.datasets.matfile import load_v5  # noqa: E402

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cuhk03-np"
EXPECTED = "cuhk03_new_protocol_config_*.mat (CUHK03-NP)"


def _load_traced(path: Path) -> tuple[object, int]:
    """(load_v5's result or DatasetError, peak bytes allocated by Python and numpy while it ran)."""
    tracemalloc.start()
    try:
        try:
            result: object = load_v5(path, EXPECTED)
        except DatasetError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real CUHK03-NP files not found at {REAL}")
@pytest.mark.parametrize("kind, n", [("labeled", 14096), ("detected", 14097)])
def test_the_real_cuhk03_np_files_pass_the_caps(kind, n):
    mat = load_v5(REAL / f"cuhk03_new_protocol_config_{kind}.mat", EXPECTED)
    assert np.asarray(mat["filelist"]).shape == (n, 1) and np.asarray(mat["labels"]).shape == (n, 1)
    assert len(mat["query_idx"]) == 1400


def test_oversized_variable_is_refused_before_loading(tmp_path):
    # 16.8 MB of 0/1 noise compressed ~6-fold (not a bomb); before: loadmat allocated all of it (and would
    # any size, up to the format's 4 GB per variable)
    path = tmp_path / "cuhk03_new_protocol_config_detected.mat"
    write_variable(path, "labels", (4096, 4100), noise=True)
    err, peak = _load_traced(path)
    assert isinstance(err, DatasetError), "loaded"
    assert str(err) == (
        f"{path}: variable 'labels' is a 4096x4100 uint8 array of 16793600 bytes, over the 16777216-byte "
        f"cap; not loaded (use the original {EXPECTED})"
    )
    assert peak < 8 * 2**20, f"{peak} bytes allocated"


@pytest.mark.parametrize("in_cell", [False, True], ids=["variable", "inside-a-cell"])
def test_decompression_bomb_is_refused_before_loading(tmp_path, in_cell):
    # 84 MB of zeros compressed ~1000-fold; inside a 1x1 cell, whosmat sees only the cell's shape
    path = write_variable(tmp_path / "bomb.mat", "filelist", (8192, 10240), in_cell=in_cell)
    assert path.stat().st_size < 200_000
    err, peak = _load_traced(path)
    assert isinstance(err, DatasetError), "loaded"
    compressed = path.stat().st_size - 136  # the 128-byte header and the element's 8-byte tag
    assert str(err) == (
        f"{path}: variable 'filelist' expands from {compressed} compressed bytes to over 67108864 bytes "
        f"(more than 100x), a likely decompression bomb; not loaded (use the original {EXPECTED})"
    )
    assert peak < 16 * 2**20, f"{peak} bytes allocated"


def test_a_small_file_loads_as_before(tmp_path):
    path = write_variable(tmp_path / "small.mat", "filelist", (100, 200), in_cell=True)
    mat = load_v5(path, EXPECTED)
    assert mat["filelist"][0, 0].shape == (100, 200) and not mat["filelist"][0, 0].any()
    path = write_variable(tmp_path / "noise.mat", "labels", (4096, 4096), noise=True)  # exactly the cap
    labels = load_v5(path, EXPECTED)["labels"]
    assert labels.shape == (4096, 4096) and set(np.unique(labels)) == {0, 1}
