"""VeRi-776 parser on a fixture release in the real layout."""

from __future__ import annotations

import pytest
from fixtures import veri776 as fx

from spherereid.data import datasets
from spherereid.data.datasets.base import DatasetError
from spherereid.reporting.report import queries_without_match


def _pairs(items):
    return [(i.pid, i.camid) for i in items]


def test_split_sizes_ids_and_cameras(tmp_path):
    fx.write_release(tmp_path)
    s = datasets.parse("veri776", tmp_path, tmp_path / "work")  # root above VeRi/
    assert _pairs(s.train) == [(1, 0), (1, 1), (5, 2), (5, 19), (9, 10)]  # sorted by file name
    assert _pairs(s.query) == [(2, 0), (776, 3)]
    assert _pairs(s.gallery) == [(2, 0), (2, 1), (776, 3), (776, 18), (776, 19)]
    assert s.skipped == [] and s.protocol["name"] == "market"
    assert s.train[0].source == "VeRi/image_train/0001_c001_00000100_0.jpg"


def test_same_camera_gallery_images_do_not_count_as_matches(tmp_path):
    entries = {
        "image_train": [(1, 1), (1, 2)],
        "image_query": [(2, 1), (3, 5)],
        "image_test": [(2, 1), (2, 2), (3, 5)],  # vehicle 3 only in the query's own camera
    }
    s = datasets.parse("veri776", fx.write_release(tmp_path, entries), tmp_path / "work")
    assert queries_without_match(s.query, s.gallery) == [1]


def test_every_bad_file_is_reported_by_name(tmp_path):
    folder = fx.write_release(tmp_path)
    for name in ("0003_c021_00000001_0.jpg", "0777_c001_00000001_0.jpg", "car.jpg", "0001_c001_1.txt"):
        (folder / "image_train" / name).write_bytes(b"x")
    (folder / "image_test" / "sub").mkdir()
    s = datasets.parse("veri776", folder, tmp_path / "work")
    got = {k.path: k.reason for k in s.skipped}
    assert got == {
        "image_train/0003_c021_00000001_0.jpg": "camera c21 outside c1..c20",
        "image_train/0777_c001_00000001_0.jpg": "pid 777 outside 1..776",
        "image_train/car.jpg": "name does not match VeRi-776 naming 'PPPP_cC...'",
        "image_train/0001_c001_1.txt": "not an image file (expected .jpg, .jpeg or .png)",
        "image_test/sub": "unexpected sub-folder in a split folder (not scanned)",
    }
    assert len(s.train) == 5


def test_missing_folders_are_one_error(tmp_path):
    (tmp_path / "image_train").mkdir()
    with pytest.raises(DatasetError, match=r"no folder with image_train/, image_query/ and image_test/"):
        datasets.parse("veri776", tmp_path, tmp_path / "work")
