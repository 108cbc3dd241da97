"""CUHK-SYSU: person boxes from the raw release (.mat annotations) and the train-only cropped form."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures import cuhk_sysu as fx  # noqa: E402
from fixtures.market import write_tree  # noqa: E402

from spherereid.datasets import DatasetError, parse  # noqa: E402

N = 1_000_000  # first pid of unlabelled gallery boxes


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sysu") / "raw"
    fx.write_release(root / "CUHK-SYSU")
    return root


def _rows(items):
    return [(it.path.name, it.pid, it.camid, it.crop) for it in items]


def test_train_and_query(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", cuhksysu_gallery_size=50)
    assert _rows(splits.train) == [
        ("s1.jpg", 1, 0, fx.P1[0]),
        ("s2.jpg", 1, 0, fx.P1[1]),
        ("s2.jpg", 2, 0, fx.P2[0]),
        ("s3.jpg", 2, 0, fx.P2[1]),
        ("s3.jpg", 3, 0, fx.P3[0]),  # p3's box in s4 is empty: skipped
    ]
    assert _rows(splits.query) == [("s5.jpg", 1, 0, fx.A), ("s8.jpg", 2, 0, fx.D)]
    assert splits.train[0].source == "CUHK-SYSU/Image/SSM/s1.jpg#1,1,10,20"
    assert splits.train[0].path == release / "CUHK-SYSU" / "Image" / "SSM" / "s1.jpg"
    assert [(s.path, s.reason) for s in splits.skipped] == [
        ("CUHK-SYSU/Image/SSM/s4.jpg", "empty box (9, 9, 0, 20) (train person 3)"),
        ("CUHK-SYSU/Image/SSM/s8.jpg", "empty box (7, 7, 0, 12) (gallery box of Images.mat)"),
    ]
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_gallery_50(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", cuhksysu_gallery_size=50)
    # scenes in first-listed order: s6, s7, s8 (query 1), then s9, s5, s10 (query 2)
    assert _rows(splits.gallery) == [
        ("s6.jpg", 1, 1, fx.B),
        ("s6.jpg", N, 1, fx.U[2]),
        ("s7.jpg", 1, 1, fx.C_ANNOT),  # Images.mat box matched to TestG's C by IoU 171/229
        ("s8.jpg", 2, 1, fx.D),  # query 2's own box labels it in query 1's gallery
        ("s9.jpg", 2, 1, fx.E),
        ("s5.jpg", 1, 1, fx.A),
        ("s5.jpg", N + 1, 1, fx.U[1]),
        ("s10.jpg", N + 2, 1, fx.U[3]),
        ("s10.jpg", N + 3, 1, fx.U[4]),
    ]
    assert splits.protocol == {
        "name": "cuhk-sysu",
        "gallery_size": 50,
        "galleries": [[0, 1, 2, 3], [4, 5, 6, 7, 8]],
    }
    # positives of each query (same pid) are exactly its labelled gallery boxes
    for q, gal in zip(splits.query, splits.protocol["galleries"], strict=True):
        pos = [splits.gallery[i].path.name for i in gal if splits.gallery[i].pid == q.pid]
        assert pos == {1: ["s6.jpg", "s7.jpg"], 2: ["s9.jpg"]}[q.pid]


def test_gallery_100(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", cuhksysu_gallery_size=100)
    assert _rows(splits.query) == [("s5.jpg", 1, 0, fx.A), ("s8.jpg", 2, 0, fx.D)]
    assert [(r[0], r[1]) for r in _rows(splits.gallery)] == [
        ("s6.jpg", 1),
        ("s6.jpg", N),
        ("s7.jpg", 1),
        ("s8.jpg", 2),
        ("s11.jpg", N + 1),
        ("s12.jpg", N + 2),
        ("s9.jpg", 2),
        ("s5.jpg", 1),
        ("s5.jpg", N + 3),
        ("s10.jpg", N + 4),
        ("s10.jpg", N + 5),
        ("s1.jpg", N + 6),
        ("s1.jpg", N + 7),
    ]
    assert splits.protocol["galleries"] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 4, 11, 12]]


def test_missing_files_are_fatal_or_skipped(tmp_path, release):
    with pytest.raises(DatasetError, match=r"TestG500.mat: missing"):
        parse("cuhk_sysu", release, tmp_path / "work", cuhksysu_gallery_size=500)
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="neither annotation/Images.mat"):
        parse("cuhk_sysu", tmp_path / "x", tmp_path / "work")
    root = fx.write_release(tmp_path / "copy")
    (root / "Image" / "SSM" / "s10.jpg").unlink()
    splits = parse("cuhk_sysu", root, tmp_path / "work", cuhksysu_gallery_size=50)
    assert [it.path.name for it in splits.gallery].count("s10.jpg") == 0 and len(splits.gallery) == 7
    assert ("Image/SSM/s10.jpg", "scene missing or outside the root (gallery box of Images.mat)") in [
        (s.path, s.reason) for s in splits.skipped
    ]


def test_cropped_form_is_train_only(tmp_path):
    names = ["p11422_s16929_1.jpg", "p11422_s16930_2.jpg", "p3_s1_1.jpg", "readme.txt", ".DS_Store"]
    write_tree(tmp_path / "data" / "cuhksysu", {"cropped_images": names})
    splits = parse("cuhk_sysu", tmp_path / "data", tmp_path / "work")
    assert _rows(splits.train) == [
        ("p11422_s16929_1.jpg", 11422, 0, None),
        ("p11422_s16930_2.jpg", 11422, 0, None),
        ("p3_s1_1.jpg", 3, 0, None),
    ]
    assert splits.query == [] and splits.gallery == [] and splits.protocol == {"name": "train-only"}
    assert [s.path for s in splits.skipped] == ["cuhksysu/cropped_images/readme.txt"]
