"""CUHK-SYSU: person boxes from the raw release (.mat annotations) and the train-only cropped form."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures import cuhk_sysu as fx  # noqa: E402
from fixtures.market import write_tree  # noqa: E402

from spherereid.config import DataConfig  # noqa: E402
from spherereid.data.datasets import DatasetError, parse  # noqa: E402

N = 1_000_000  # first pid of unlabelled gallery boxes


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sysu") / "raw"
    fx.write_release(root / "CUHK-SYSU")
    return root


def _rows(items):
    return [(it.path.name, it.pid, it.camid, it.crop) for it in items]


def test_train_and_query(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=50))
    assert _rows(splits.train) == [
        ("s1.jpg", 1, 0, fx.P1[0]),
        ("s2.jpg", 1, 0, fx.P1[1]),
        ("s2.jpg", 2, 0, fx.P2[0]),
        ("s3.jpg", 2, 0, fx.P2[1]),
        ("s3.jpg", 3, 0, fx.P3[0]),  # p3's box in s4 is empty: skipped
    ]
    # pids are the idname numbers: train p1..p3, test p101 and p102 (before: 1 and 2, clashing with train)
    assert _rows(splits.query) == [("s5.jpg", 101, 0, fx.A), ("s8.jpg", 102, 0, fx.D)]
    assert splits.train[0].source == "CUHK-SYSU/Image/SSM/s1.jpg#1,1,10,20"
    assert splits.train[0].path == release / "CUHK-SYSU" / "Image" / "SSM" / "s1.jpg"
    assert [(s.path, s.reason) for s in splits.skipped] == [
        ("CUHK-SYSU/Image/SSM/s4.jpg", "empty box (9, 9, 0, 20) (train person 3)"),
        ("CUHK-SYSU/Image/SSM/s8.jpg", "empty box (7, 7, 0, 12) (gallery box of Images.mat)"),
    ]
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_gallery_50(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=50))
    # scenes in first-listed order: s6, s7, s8 (query 1), then s9, s5, s10 (query 2)
    assert _rows(splits.gallery) == [
        ("s6.jpg", 101, 1, fx.B),
        ("s6.jpg", N, 1, fx.U[2]),
        ("s7.jpg", 101, 1, fx.C_ANNOT),  # Images.mat box matched to TestG's C by IoU 171/229
        ("s8.jpg", 102, 1, fx.D),  # query 2's own box labels it in query 1's gallery
        ("s9.jpg", 102, 1, fx.E),
        ("s5.jpg", 101, 1, fx.A),
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
        assert pos == {101: ["s6.jpg", "s7.jpg"], 102: ["s9.jpg"]}[q.pid]


def test_gallery_100(tmp_path, release):
    splits = parse("cuhk_sysu", release, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=100))
    assert _rows(splits.query) == [("s5.jpg", 101, 0, fx.A), ("s8.jpg", 102, 0, fx.D)]
    assert [(r[0], r[1]) for r in _rows(splits.gallery)] == [
        ("s6.jpg", 101),
        ("s6.jpg", N),
        ("s7.jpg", 101),
        ("s8.jpg", 102),
        ("s11.jpg", N + 1),
        ("s12.jpg", N + 2),
        ("s9.jpg", 102),
        ("s5.jpg", 101),
        ("s5.jpg", N + 3),
        ("s10.jpg", N + 4),
        ("s10.jpg", N + 5),
        ("s1.jpg", N + 6),
        ("s1.jpg", N + 7),
    ]
    assert splits.protocol["galleries"] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 4, 11, 12]]


def test_missing_files_are_fatal_or_skipped(tmp_path, release):
    with pytest.raises(DatasetError, match=r"TestG500.mat: missing"):
        parse("cuhk_sysu", release, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=500))
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="neither annotation/Images.mat"):
        parse("cuhk_sysu", tmp_path / "x", tmp_path / "work")
    root = fx.write_release(tmp_path / "copy")
    (root / "Image" / "SSM" / "s10.jpg").unlink()
    splits = parse("cuhk_sysu", root, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=50))
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


def test_unreadable_or_malformed_annotation_names_the_file(tmp_path):
    import numpy as np
    import scipy.io

    root = fx.write_release(tmp_path / "raw")
    images = root / "annotation" / "Images.mat"
    images.write_bytes(b"garbage, not a MAT file")  # before: scipy's MatReadError as a traceback
    with pytest.raises(DatasetError, match=f"{images}: not readable as a MATLAB v5 file"):
        parse("cuhk_sysu", root, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=50))
    box = np.zeros((1, 1), dtype=[("idlocate", object), ("ishard", object)])
    box[0, 0] = ("x y w h", 0.0)  # a box that is text, not numbers: before a ValueError traceback
    img = np.zeros((1, 1), dtype=[("imname", object), ("nAppear", object), ("box", object)])
    img[0, 0] = ("s1.jpg", 1.0, box)
    scipy.io.savemat(images, {"Img": img})
    with pytest.raises(DatasetError, match=f"{images}: unexpected content \\(ValueError"):
        parse("cuhk_sysu", root, tmp_path / "work", data=DataConfig(cuhksysu_gallery_size=50))


def test_root_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "release.zip").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="release.zip: is a file, not a folder"):
        parse("cuhk_sysu", tmp_path / "release.zip", tmp_path / "work")


def test_raw_release_goes_through_preprocess(tmp_path, release):
    """Before pids were idnames, train pids 1..3 and test pids 1..2 clashed: the train/test identity
    overlap check refused every raw CUHK-SYSU release."""
    from spherereid.config import DataConfig
    from spherereid.data.manifest import PreparedSet
    from spherereid.stages import preprocess

    data = DataConfig(
        stored_height=16, stored_width=8, workers=1, max_bad_fraction=0.5, cuhksysu_gallery_size=50
    )
    res = preprocess.run(dataset="cuhk_sysu", raw_dir=release, out_dir=tmp_path / "out", data=data)
    assert res.num_images == {"train": 5, "query": 2, "gallery": 9} and res.num_classes == 3
    prepared = PreparedSet(tmp_path / "out")
    assert prepared.split("query").pids.tolist() == [101, 102]
    assert prepared.split("train").labels.tolist() == [0, 0, 1, 1, 2]
    assert prepared.protocol["galleries"] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
