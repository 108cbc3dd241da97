"""custom_folders: one folder per identity, with and without cameras read from the file names."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from fixtures import custom_folders as fx

from spherereid.config import DataConfig
from spherereid.data import datasets
from spherereid.data.datasets.base import DatasetError
from spherereid.reporting.report import queries_without_match
from spherereid.stages import preprocess

# identities sorted over all splits: 'Ann Lee' 1, bob 2, carol 3, dave 4, eve 5, zoë 6
PIDS = {"Ann Lee": 1, "bob": 2, "carol": 3, "dave": 4, "eve": 5, "zoë": 6}


def _rows(items):
    return [(i.source, i.pid, i.camid) for i in items]


def test_without_cameras_only_the_query_file_itself_is_excluded(tmp_path):
    s = datasets.parse("custom_folders", fx.write_tree(tmp_path), tmp_path / "work")
    assert _rows(s.train) == [
        ("train/Ann Lee/x_c1.png", 1, 0),
        ("train/Ann Lee/y_c3.jpg", 1, 0),
        ("train/bob/b1_c1.jpg", 2, 0),
        ("train/bob/b2_c2.jpg", 2, 0),
        ("train/zoë/z_c2.jpg", 6, 0),
    ]
    # query k (1-based) has camid k; its copy in the gallery (same identity + name) the same
    assert _rows(s.query) == [
        ("query/carol/c1_c2.jpg", 3, 1),
        ("query/carol/c2_c10.jpg", 3, 2),
        ("query/dave/d1_c1.jpg", 4, 3),
    ]
    assert _rows(s.gallery) == [
        ("gallery/carol/c1_c2.jpg", 3, 1),
        ("gallery/carol/c3_c10.jpg", 3, 0),
        ("gallery/dave/d1_c1.jpg", 4, 3),
        ("gallery/dave/d9_c2.jpg", 4, 0),
        ("gallery/eve/e_c1.jpg", 5, 0),
    ]
    assert s.protocol["cameras"] is False and "no cameras" in s.protocol["notes"][0]
    assert datasets.relabel(i.pid for i in s.train) == {1: 0, 2: 1, 6: 2}


def test_a_query_whose_only_gallery_image_is_itself_has_no_match(tmp_path):
    tree = {
        "train": {"a": ["1.jpg"]},
        "query": {"b": ["q.jpg"], "c": ["q.jpg"]},
        "gallery": {"b": ["q.jpg"], "c": ["q.jpg", "other.jpg"]},
    }
    s = datasets.parse("custom_folders", fx.write_tree(tmp_path, tree), tmp_path / "work")
    assert queries_without_match(s.query, s.gallery) == [0]  # b: only itself; c: other.jpg matches


def test_camera_pattern_gives_cameras_in_numeric_order(tmp_path):
    s = datasets.parse(
        "custom_folders",
        fx.write_tree(tmp_path),
        tmp_path / "work",
        data=DataConfig(camera_pattern=r"_c(\d+)"),
    )
    # cameras seen: 1, 2, 3, 10 -> camids 0, 1, 2, 3 (numeric, not text, order)
    assert [i.camid for i in s.train] == [0, 2, 0, 1, 1]
    assert [i.camid for i in s.query] == [1, 3, 0]
    assert [i.camid for i in s.gallery] == [1, 3, 0, 1, 0]
    assert s.protocol["cameras"] is True and s.protocol["camera_names"] == ["1", "2", "3", "10"]
    # carol's queries: c2 matches c3_c10 (cam 10), c10 matches c1_c2 (cam 2); dave c1 matches d9_c2
    assert queries_without_match(s.query, s.gallery) == []


def test_every_bad_file_is_reported_by_name(tmp_path):
    root = fx.write_tree(tmp_path / "data")
    (root / "train" / "loose.jpg").write_bytes(b"x")
    (root / "train" / "bob" / "notes.txt").write_text("x")
    (root / "train" / "bob" / "nested").mkdir()
    (root / "train" / "empty").mkdir()
    (root / "gallery" / "eve" / "nocam.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "outside.jpg", root / "query" / "dave" / "link_c1.jpg")
    s = datasets.parse("custom_folders", root, tmp_path / "work", data=DataConfig(camera_pattern=r"_c(\d+)"))
    got = {k.path: k.reason for k in s.skipped}
    assert set(got) == {
        "train/loose.jpg",
        "train/bob/notes.txt",
        "train/bob/nested",
        "train/empty",
        "gallery/eve/nocam.jpg",
        "query/dave/link_c1.jpg",
    }
    assert "no camera" in got["gallery/eve/nocam.jpg"]
    assert "outside the dataset root" in got["query/dave/link_c1.jpg"]
    assert "no usable image" in got["train/empty"]


def test_missing_split_folder_is_one_error(tmp_path):
    root = fx.write_tree(tmp_path)
    (root / "gallery").rename(tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match=r"gallery: split folder missing"):
        datasets.parse("custom_folders", root, tmp_path / "work")


@pytest.mark.parametrize("pattern", ["", r"_c(\d+)"])
def test_preprocess_reports_how_cameras_are_used(tmp_path, pattern):
    root = fx.write_tree(tmp_path / "raw")
    data = dataclasses.replace(
        DataConfig(), stored_height=16, stored_width=8, workers=1, camera_pattern=pattern
    )
    res = preprocess.run(dataset="custom_folders", raw_dir=root, out_dir=tmp_path / "prep", data=data)
    assert res.num_images == {"train": 5, "query": 3, "gallery": 5} and res.num_classes == 3
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    expected = "no cameras (data.camera_pattern is empty)" if not pattern else "4 cameras"
    assert expected in report["notes"][0]
    assert report["warnings"]["queries_without_match"]["count"] == 0
