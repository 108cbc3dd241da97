"""Market-1501, DukeMTMC-reID and custom (Market-naming) parsers on small fixture trees."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures.market import duke_name, market_name, write_tree, zip_tree  # noqa: E402

from spherereid.data.datasets import DatasetError, get, market1501, names, parse, relabel  # noqa: E402

TRAIN = [market_name(2, 1, 10), market_name(2, 2, 11), market_name(7, 3, 12), market_name(1500, 6, 13)]
QUERY = [market_name(2, 1, 20), market_name(7, 3, 21)]
GALLERY = [market_name(2, 4, 30), market_name(7, 5, 31), market_name(1501, 2, 32)]
GALLERY += [market_name(0, 1, 40), market_name(0, 6, 41)]  # distractors
JUNK = [market_name(-1, 1, 50), market_name(-1, 2, 51), market_name(-1, 3, 52)]
EXTRA_TRAIN = ["0011_c2s1_000060_01.JPG", "0012_c4s1_000061_01.jpeg", "0013_c5s1_000062_01.png"]
BAD = {
    "bounding_box_train/0002_c7s1_000001_01.jpg": "camera c7 outside c1..c6",
    "bounding_box_train/1502_c1s1_000001_01.jpg": "pid 1502 outside 0..1501",
    "bounding_box_train/garbage.jpg": "name does not match",
    "bounding_box_train/notes.txt": "not an image file",
    "bounding_box_test/c1_0002.jpg": "name does not match",
}
IGNORED = ["Thumbs.db", ".DS_Store", "._0002_c1s1_000010_01.jpg"]


def _market(folder: Path) -> Path:
    write_tree(
        folder,
        {
            "bounding_box_train": TRAIN + EXTRA_TRAIN + IGNORED,
            "query": QUERY,
            "bounding_box_test": GALLERY + JUNK + IGNORED,
        },
    )
    for rel in BAD:
        (folder / rel).write_bytes(b"")
    return folder


def _summary(items):
    return sorted((it.path.name, it.pid, it.camid) for it in items)


EXPECTED_TRAIN = [
    ("0002_c1s1_000010_01.jpg", 2, 0),
    ("0002_c2s1_000011_01.jpg", 2, 1),
    ("0007_c3s1_000012_01.jpg", 7, 2),
    ("0011_c2s1_000060_01.JPG", 11, 1),
    ("0012_c4s1_000061_01.jpeg", 12, 3),
    ("0013_c5s1_000062_01.png", 13, 4),
    ("1500_c6s1_000013_01.jpg", 1500, 5),
]
EXPECTED_QUERY = [("0002_c1s1_000020_01.jpg", 2, 0), ("0007_c3s1_000021_01.jpg", 7, 2)]
EXPECTED_GALLERY = [
    ("0000_c1s1_000040_01.jpg", 0, 0),
    ("0000_c6s1_000041_01.jpg", 0, 5),
    ("0002_c4s1_000030_01.jpg", 2, 3),
    ("0007_c5s1_000031_01.jpg", 7, 4),
    ("1501_c2s1_000032_01.jpg", 1501, 1),
]


def _check_market(splits, prefix=""):
    assert _summary(splits.train) == EXPECTED_TRAIN
    assert _summary(splits.query) == EXPECTED_QUERY
    assert _summary(splits.gallery) == EXPECTED_GALLERY
    assert splits.protocol == {"name": "market", "junk_dropped": 3}
    got = {s.path: s.reason for s in splits.skipped}
    assert len(got) == len(BAD)
    for rel, reason in BAD.items():
        assert reason in got[prefix + rel]
    for folder, items in (
        ("bounding_box_train", splits.train),
        ("query", splits.query),
        ("bounding_box_test", splits.gallery),
    ):
        assert all(it.source == f"{prefix}{folder}/{it.path.name}" and it.crop is None for it in items)


@pytest.mark.parametrize(
    "sub", ["", "Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15"]
)
def test_market_layouts_and_basename_parsing(tmp_path, sub):
    root = tmp_path / "x_7_c3"  # a parent folder that looks like pid 7, camera 3 (pitfall 1)
    folder = _market(root / sub if sub else root)
    before = sorted(p.as_posix() for p in root.rglob("*"))
    splits = parse("market1501", root, tmp_path / "work")
    lead = f"{sub}/" if sub else ""
    _check_market(splits, prefix=lead)
    assert splits.query[0].source == f"{lead}query/0002_c1s1_000020_01.jpg"
    assert splits.query[0].path == folder / "query" / "0002_c1s1_000020_01.jpg"
    assert sorted(p.as_posix() for p in root.rglob("*")) == before  # nothing written into the root


def test_symlinks_inside_kept_escaping_skipped(tmp_path):
    root = _market(tmp_path / "m")
    outside = tmp_path / "elsewhere" / "0099_c1s1_000001_01.jpg"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    train = root / "bounding_box_train"
    os.symlink(outside, train / "0099_c1s1_000001_01.jpg")
    os.symlink("../query/0002_c1s1_000020_01.jpg", train / "0002_c1s1_000070_01.jpg")
    splits = parse("market1501", root, tmp_path / "work")
    names = [it.path.name for it in splits.train]
    assert "0002_c1s1_000070_01.jpg" in names and "0099_c1s1_000001_01.jpg" not in names
    esc = [s for s in splits.skipped if s.path.endswith("0099_c1s1_000001_01.jpg")]
    assert len(esc) == 1 and "outside the dataset root" in esc[0].reason


@pytest.mark.parametrize("where", ["root", "market1501", "zip itself"])
def test_market_official_zip(tmp_path, where):
    src = _market(tmp_path / "src")
    raw = tmp_path / "raw"
    holder = raw / "market1501" if where == "market1501" else raw
    holder.mkdir(parents=True)
    arc = zip_tree(src, holder / "Market-1501-v15.09.15.zip", "Market-1501-v15.09.15")
    work = tmp_path / "work"
    splits = parse("market1501", arc if where == "zip itself" else raw, work)
    lead = "market1501/" if where == "market1501" else ""
    _check_market(splits, prefix=f"{lead}Market-1501-v15.09.15.zip#Market-1501-v15.09.15/")
    assert all(work in it.path.parents for it in splits.train + splits.query + splits.gallery)
    assert sorted(p.name for p in holder.iterdir()) == ["Market-1501-v15.09.15.zip"]
    marker = splits.train[0].path
    marker.write_bytes(b"changed")  # a second parse reuses the extraction
    again = parse("market1501", raw, work)
    assert again.train[0].path == marker and marker.read_bytes() == b"changed"


def test_market_fatal_problems_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        parse("market1501", tmp_path / "nope", tmp_path / "work")
    root = _market(tmp_path / "m")
    for p in (root / "query").iterdir():
        p.unlink()
    (root / "query" / market_name(-1, 1)).write_bytes(b"")  # only junk: an empty split
    with pytest.raises(
        DatasetError, match=r"m/query: no usable images for the query split \(0 skipped, 1 junk\)"
    ):
        parse("market1501", root, tmp_path / "work")
    (root / "query").rename(root / "queries")
    with pytest.raises(DatasetError, match="bounding_box_train/, bounding_box_test/ and query/"):
        parse("market1501", root, tmp_path / "work")


def test_dukemtmc_eight_cameras(tmp_path):
    root = tmp_path / "data"
    write_tree(
        root / "dukemtmc-reid" / "DukeMTMC-reID",
        {
            "bounding_box_train": [duke_name(5, 2, 46985), duke_name(5, 8, 1), duke_name(9, 1, 2)],
            "query": [duke_name(5, 1, 3)],
            "bounding_box_test": [duke_name(5, 7, 4), duke_name(7140, 3, 5), duke_name(9, 9, 6)],
        },
    )
    splits = parse("dukemtmc", root, tmp_path / "work")
    assert _summary(splits.train) == [
        ("0005_c2_f0046985.jpg", 5, 1),
        ("0005_c8_f0000001.jpg", 5, 7),
        ("0009_c1_f0000002.jpg", 9, 0),
    ]
    assert _summary(splits.query) == [("0005_c1_f0000003.jpg", 5, 0)]
    assert _summary(splits.gallery) == [("0005_c7_f0000004.jpg", 5, 6), ("7140_c3_f0000005.jpg", 7140, 2)]
    assert [(s.path, s.reason) for s in splits.skipped] == [
        ("dukemtmc-reid/DukeMTMC-reID/bounding_box_test/0009_c9_f0000006.jpg", "camera c9 outside c1..c8")
    ]
    assert splits.protocol == {"name": "market", "junk_dropped": 0}


def test_custom_up_to_99_cameras(tmp_path):
    root = tmp_path / "mine"
    write_tree(
        root,
        {
            "bounding_box_train": ["0042_c3_anything.jpg", "7_c12.png", "123456_c99_x.jpg", "5_c100_x.jpg"],
            "query": ["0042_c1_q.jpg"],
            "bounding_box_test": ["0042_c12_g.jpg", "0_c2_distractor.jpg", "-1_c4_junk.jpg"],
        },
    )
    splits = parse("custom", root, tmp_path / "work")
    assert _summary(splits.train) == [
        ("0042_c3_anything.jpg", 42, 2),
        ("123456_c99_x.jpg", 123456, 98),
        ("7_c12.png", 7, 11),
    ]
    assert _summary(splits.gallery) == [("0042_c12_g.jpg", 42, 11), ("0_c2_distractor.jpg", 0, 1)]
    assert [s.reason for s in splits.skipped] == ["camera c100 outside c1..c99"]
    assert splits.protocol["junk_dropped"] == 1


def test_registry_and_dispatch(tmp_path):
    assert set(names()) == {
        "market1501",
        "dukemtmc",
        "cuhk03",
        "cuhk_sysu",
        "custom",
        "synthetic",
        "synthetic_b",
        "msmt17",
        "veri776",
        "custom_folders",
    }
    assert get("market1501").parser is market1501.parse
    # synthetic: Market layout unless it holds MSMT17 lists
    _market(tmp_path / "syn")
    _check_market(parse("synthetic", tmp_path / "syn", tmp_path / "work"), prefix="")
    with pytest.raises(DatasetError, match="unknown dataset 'market'"):
        parse("market", tmp_path / "syn", tmp_path / "work")


def test_relabel_sorted_and_order_independent():
    pids = [1500, 2, 7, 2, 0, 7, 1500, 11]
    assert relabel(pids) == {0: 0, 2: 1, 7: 2, 11: 3, 1500: 4}
    shuffled = pids[:]
    random.Random(3).shuffle(shuffled)
    assert relabel(shuffled) == relabel(pids)
    assert relabel([]) == {}
