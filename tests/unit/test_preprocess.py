"""The preprocess stage on tiny Market-format fixtures: manifest, arrays, validation, bad files, errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spherereid.config import DataConfig
from spherereid.data.datasets.base import DatasetError, Item, Splits
from spherereid.data.manifest import PreparedSet
from spherereid.stages import preprocess
from spherereid.stages.preprocess import PreprocessError

H, W = 16, 8
# (folder, pid, camera): train pids 7, 2, 5 (relabelled in sorted order), test pids 11 and 12
LAYOUT = [
    ("bounding_box_train", 7, 1),
    ("bounding_box_train", 7, 2),
    ("bounding_box_train", 2, 1),
    ("bounding_box_train", 2, 3),
    ("bounding_box_train", 5, 2),
    ("bounding_box_train", 5, 3),
    ("query", 11, 1),
    ("query", 12, 2),
    ("bounding_box_test", 11, 2),
    ("bounding_box_test", 11, 3),
    ("bounding_box_test", 12, 1),
    ("bounding_box_test", 0, 3),
    ("bounding_box_test", -1, 1),
]


def _name(pid: int, cam: int, frame: int) -> str:
    return f"{'-1' if pid < 0 else f'{pid:04d}'}_c{cam}s1_{frame:06d}_01.jpg"


def _jpeg(seed: int, w: int = 12, h: int = 30) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_market(root: Path, layout=LAYOUT) -> Path:
    for n, (folder, pid, cam) in enumerate(layout):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / _name(pid, cam, 100 + n)).write_bytes(_jpeg(n))
    return root


def data(**kw) -> DataConfig:
    return DataConfig(**{"stored_height": H, "stored_width": W, "workers": 1, "max_bad_fraction": 0.0, **kw})


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_prepared_set_contents(tmp_path):
    raw = make_market(tmp_path / "raw")
    res = preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    out = tmp_path / "out"
    rows = _rows(out)
    got = [(r["split"], int(r["index"]), int(r["pid"]), int(r["camid"]), int(r["label"])) for r in rows]
    assert got == [
        # file-name order inside each folder; labels: 2 -> 0, 5 -> 1, 7 -> 2
        ("train", 0, 2, 0, 0),
        ("train", 1, 2, 2, 0),
        ("train", 2, 5, 1, 1),
        ("train", 3, 5, 2, 1),
        ("train", 4, 7, 0, 2),
        ("train", 5, 7, 1, 2),
        ("query", 0, 11, 0, -1),
        ("query", 1, 12, 1, -1),
        ("gallery", 0, 0, 2, -1),
        ("gallery", 1, 11, 1, -1),
        ("gallery", 2, 11, 2, -1),
        ("gallery", 3, 12, 0, -1),
    ]
    for r in rows:
        assert r["sha256"] == hashlib.sha256((raw / r["source"]).read_bytes()).hexdigest()
    assert rows[0]["source"] == "bounding_box_train/" + _name(2, 1, 102)
    info = json.loads((out / "dataset.json").read_text())
    assert info == {
        "dataset": "market1501",
        "height": H,
        "width": W,
        "num_classes": 3,
        "protocol": {"name": "market", "junk_dropped": 1},
        "num_images": {"train": 6, "query": 2, "gallery": 4},
    }
    assert res.num_images == info["num_images"] and res.num_classes == 3 and res.skipped == 0
    ps = PreparedSet(out)
    train = ps.split("train")
    assert train.images.shape == (6, H, W, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    src = Image.open(raw / rows[3]["source"]).convert("RGB").resize((W, H), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(train.images[3], np.asarray(src))
    gal = ps.split("gallery")
    src = Image.open(raw / rows[-1]["source"]).convert("RGB").resize((W, H), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(gal.images[3], np.asarray(src))
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "images_gallery.npy",
        "images_query.npy",
        "images_train.npy",
        "manifest.csv",
        "report.json",
        "report.md",
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["splits"]["train"] == {
        "images": 6,
        "identities": 3,
        "cameras": 3,
        "folder": str(raw / "bounding_box_train"),
    }
    assert report["splits"]["gallery"]["identities"] == 3  # 11, 12 and the distractor id 0
    assert report["skipped"]["count"] == 0 and report["warnings"]["queries_without_match"]["count"] == 0


def test_two_workers_give_the_same_prepared_set(tmp_path):
    raw = make_market(tmp_path / "raw")
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "a", data=data())
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "b", data=data(workers=2))
    for name in (
        "manifest.csv",
        "dataset.json",
        "images_train.npy",
        "images_query.npy",
        "images_gallery.npy",
    ):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _add_bad_files(raw: Path, outside: Path) -> dict[str, str]:
    """One bad file of each kind; returns source -> expected start of the reason."""
    train = raw / "bounding_box_train"
    (train / _name(2, 1, 900)).write_bytes(b"")
    (train / _name(5, 2, 901)).write_bytes(_jpeg(1)[:250])
    (raw / "query" / _name(11, 2, 902)).write_text("not an image at all\n")
    (train / "frame_0042.jpg").write_bytes(_jpeg(2))
    (train / _name(7, 9, 903)).write_bytes(_jpeg(3))
    outside.write_bytes(_jpeg(4))
    os.symlink(outside, raw / "bounding_box_test" / _name(12, 3, 904))
    return {
        "bounding_box_train/" + _name(2, 1, 900): "empty file (0 bytes)",
        "bounding_box_train/" + _name(5, 2, 901): "truncated or corrupt",
        "query/" + _name(11, 2, 902): "not an image",
        "bounding_box_train/frame_0042.jpg": "name does not match",
        "bounding_box_train/" + _name(7, 9, 903): "camera c9 outside c1..c6",
        "bounding_box_test/" + _name(12, 3, 904): "symlink to",
    }


def test_bad_files_are_skipped_and_reported(tmp_path):
    raw = make_market(tmp_path / "raw")
    expected = _add_bad_files(raw, tmp_path / "elsewhere.jpg")
    res = preprocess.run(
        dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data(max_bad_fraction=0.5)
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    reasons = {f["path"]: f["reason"] for f in report["skipped"]["files"]}
    assert set(reasons) == set(expected) and res.skipped == 6
    for path, start in expected.items():
        assert reasons[path].startswith(start), (path, reasons[path])
    assert report["skipped"]["count"] == 6 and report["skipped"]["candidates"] == 12 + 6
    md = (tmp_path / "out" / "report.md").read_text()
    assert all(f"`{p}`" in md for p in expected)
    sources = {r["source"] for r in _rows(tmp_path / "out")}
    assert not sources & set(expected) and len(sources) == 12
    assert PreparedSet(tmp_path / "out").split("train").images.shape == (6, H, W, 3)


def test_too_many_bad_files_fail_naming_the_first_offender(tmp_path):
    raw = make_market(tmp_path / "raw")
    (raw / "bounding_box_train" / _name(2, 1, 1)).write_bytes(b"")
    with pytest.raises(PreprocessError) as err:
        preprocess.run(
            dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data(max_bad_fraction=0.05)
        )
    msg = str(err.value)
    assert "1 of 13 files skipped" in msg and "data.max_bad_fraction=0.05" in msg
    assert f"bounding_box_train/{_name(2, 1, 1)}: empty file (0 bytes)" in msg
    assert not (tmp_path / "out" / "dataset.json").exists()
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_refusal_lists_every_bad_file_parsed_or_undecodable_in_a_report(tmp_path):
    """Above the limit, the error names a report with ALL bad files: parser skips and decode failures."""
    raw = make_market(tmp_path / "raw")
    expected = _add_bad_files(raw, tmp_path / "elsewhere.jpg")
    out = tmp_path / "out"
    with pytest.raises(PreprocessError) as err:
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=out, data=data(max_bad_fraction=0.1))
    msg = str(err.value)
    md, js = out / "skipped_files.md", out / "skipped_files.json"
    assert "6 of 18 files skipped" in msg and str(md) in msg and "data.max_bad_fraction=0.1" in msg
    listed = json.loads(js.read_text())
    reasons = {f["path"]: f["reason"] for f in listed["files"]}
    assert set(reasons) == set(expected) and listed["count"] == 6 and listed["candidates"] == 18
    for path, start in expected.items():  # 3 fail to decode, 3 are refused by the parser
        assert reasons[path].startswith(start), (path, reasons[path])
    text = md.read_text()
    assert all(f"`{p}`" in text for p in expected) and "6 of 18" in text
    assert not (out / "dataset.json").exists()
    # fixed and rerun with a higher limit: the stale refusal report goes away
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=out, data=data(max_bad_fraction=0.5))
    assert not md.exists() and not js.exists() and (out / "dataset.json").is_file()


def test_split_left_empty_by_bad_files_names_the_folder(tmp_path):
    layout = [x for x in LAYOUT if x[0] != "query"]
    raw = make_market(tmp_path / "raw", layout)
    (raw / "query").mkdir()
    (raw / "query" / _name(11, 1, 5)).write_bytes(b"")
    with pytest.raises(PreprocessError, match=f"{raw / 'query'}: no usable images left for the query split"):
        preprocess.run(
            dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data(max_bad_fraction=1.0)
        )


def test_empty_folder_is_an_error_naming_it(tmp_path):
    raw = make_market(tmp_path / "raw", [x for x in LAYOUT if x[0] != "query"])
    (raw / "query").mkdir()
    with pytest.raises(DatasetError, match=str(raw / "query")):
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())


def test_train_test_identity_overlap_is_an_error(tmp_path):
    raw = make_market(tmp_path / "raw", [*LAYOUT, ("bounding_box_test", 5, 1), ("query", 7, 3)])
    with pytest.raises(
        PreprocessError, match="2 identities are in both train and query/gallery \\(first: 5, 7\\)"
    ):
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())


def test_warnings_for_unmatched_queries_and_single_image_identities(tmp_path):
    layout = [*LAYOUT, ("bounding_box_train", 9, 1), ("query", 13, 1), ("bounding_box_test", 13, 1)]
    raw = make_market(tmp_path / "raw", layout)
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    w = json.loads((tmp_path / "out" / "report.json").read_text())["warnings"]
    assert w["queries_without_match"] == {"count": 1, "first": ["query/" + _name(13, 1, 114)]}
    assert w["single_image_identities"] == {"count": 1, "first": [9]}


def test_duplicate_images_are_reported(tmp_path):
    raw = make_market(tmp_path / "raw")
    train, test = raw / "bounding_box_train", raw / "bounding_box_test"
    # a copy inside train, a train image leaked into the gallery, and a query copied into the gallery
    (train / _name(7, 3, 300)).write_bytes((train / _name(7, 1, 100)).read_bytes())
    (test / _name(11, 4, 301)).write_bytes((train / _name(2, 1, 102)).read_bytes())
    (test / _name(12, 3, 302)).write_bytes((raw / "query" / _name(12, 2, 107)).read_bytes())
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    w = json.loads((tmp_path / "out" / "report.json").read_text())["warnings"]
    # query = gallery copies are allowed (CUHK03-classic); the other two are listed, in manifest order
    assert w["duplicate_images"] == {
        "count": 2,
        "first": [
            ["bounding_box_train/" + _name(7, 3, 300), "bounding_box_train/" + _name(7, 1, 100)],
            ["bounding_box_test/" + _name(11, 4, 301), "bounding_box_train/" + _name(2, 1, 102)],
        ],
    }
    assert (
        "duplicate images (same bytes as an earlier one): 2" in (tmp_path / "out" / "report.md").read_text()
    )


def test_no_query_with_a_gallery_match_is_an_error_naming_the_folders(tmp_path):
    layout = [x for x in LAYOUT if x[0] != "bounding_box_test" or x[1] not in (11, 12)]
    raw = make_market(tmp_path / "raw", layout)  # the gallery holds only the distractor (and junk)
    with pytest.raises(
        PreprocessError, match=f"{raw / 'query'}: none of the 2 queries .* in {raw / 'bounding_box_test'}"
    ):
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    assert not (tmp_path / "out" / "dataset.json").exists()


def test_failed_run_leaves_no_empty_scratch_folder(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="does not exist"):
        preprocess.run(dataset="market1501", raw_dir=tmp_path / "none", out_dir=out, data=data())
    assert list(out.iterdir()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that stores any bytes as a name")
def test_file_names_that_are_not_utf8_are_kept_and_written_escaped(tmp_path):
    raw = make_market(tmp_path / "raw")
    name = os.fsencode(raw / "bounding_box_test" / "0011_c4s1_000300_") + b"\xff.jpg"
    with open(name, "wb") as fh:
        fh.write(_jpeg(300))
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    sources = [r["source"] for r in _rows(tmp_path / "out")]
    assert "bounding_box_test/0011_c4s1_000300_\\udcff.jpg" in sources  # before: UnicodeEncodeError
    assert PreparedSet(tmp_path / "out").split("gallery").camids.tolist() == [2, 1, 2, 3, 0]


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for f in filenames:
            st = os.lstat(Path(dirpath, f))
            out[os.path.join(dirpath, f)] = (st.st_size, st.st_mtime_ns)
    return out


def test_nothing_is_written_outside_out_dir(tmp_path):
    raw = make_market(tmp_path / "raw")
    _add_bad_files(raw, tmp_path / "elsewhere.jpg")
    out = tmp_path / "deep" / "out"
    before = _snapshot(tmp_path, out)
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=out, data=data(max_bad_fraction=0.5, workers=2))
    assert _snapshot(tmp_path, out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "elsewhere.jpg", "raw"]


def test_interrupted_run_does_not_look_complete(tmp_path, monkeypatch):
    raw = make_market(tmp_path / "raw")
    out = tmp_path / "out"
    preprocess.run(dataset="market1501", raw_dir=raw, out_dir=out, data=data())
    assert (out / "dataset.json").is_file()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preprocess, "write_report", killed)
    with pytest.raises(KeyboardInterrupt):
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=out, data=data())
    assert not (out / "dataset.json").exists() and not list(out.glob(".tmp-*"))


def test_out_dir_must_not_contain_the_raw_data(tmp_path):
    raw = make_market(tmp_path / "raw")
    with pytest.raises(PreprocessError, match="must not be"):
        preprocess.run(dataset="market1501", raw_dir=raw, out_dir=tmp_path, data=data())


def test_main_prints_one_line_and_exits_2_on_errors(tmp_path, capsys):
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    args = ["--params", str(params), "--dataset", "market1501", "--raw", str(tmp_path / "none")]
    code = preprocess.main([*args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "does not exist" in err
    code = preprocess.main(
        [
            "--params",
            str(tmp_path / "missing.yaml"),
            "--dataset",
            "market1501",
            "--raw",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and "params file not found" in capsys.readouterr().err


def test_python_dash_m_reports_stage_errors_in_one_line(tmp_path):
    """Run as `python -m` the module is __main__; its PreprocessError used to escape as a traceback."""
    raw = make_market(tmp_path / "raw", [*LAYOUT, ("query", 7, 3)])  # pid 7 in train and query
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    args = [
        "--params",
        str(params),
        "--dataset",
        "market1501",
        "--raw",
        str(raw),
        "--out",
        str(tmp_path / "o"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "spherereid.stages.preprocess", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = f"error: {raw}: 1 identities are in both train and query/gallery (first: 7); train and test"
    assert proc.returncode == 2 and proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1


def _scene(path: Path, seed: int) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_crops_and_per_query_gallery_lists(tmp_path, monkeypatch):
    """CUHK-SYSU style: boxes cut from scenes (clipped), per-query galleries re-indexed after a bad file."""
    raw = tmp_path / "raw"
    raw.mkdir()
    s1, s2 = _scene(raw / "s1.png", 1), _scene(raw / "s2.png", 2)
    (raw / "s3.jpg").write_bytes(b"")
    item = lambda p, pid, box: Item(p, pid, 0, p.name, box)  # noqa: E731
    splits = Splits(
        train=[item(s1, 1, (0, 0, 10, 20)), item(s1, 2, (50, 30, 20, 20))],  # the second sticks out
        query=[item(s1, 3, (5, 5, 10, 10)), item(s2, 4, (5, 5, 10, 10))],
        gallery=[
            item(raw / "s3.jpg", 3, (0, 0, 5, 5)),
            item(s2, 3, (1, 1, 8, 8)),
            item(s2, 4, (20, 2, 9, 9)),
        ],
        protocol={"name": "cuhk-sysu", "gallery_size": 2, "galleries": [[0, 1], [1, 2]]},
    )
    monkeypatch.setattr(preprocess.datasets, "parse", lambda *a, **k: splits)
    preprocess.run(
        dataset="cuhk_sysu", raw_dir=raw, out_dir=tmp_path / "out", data=data(max_bad_fraction=0.5)
    )
    ps = PreparedSet(tmp_path / "out")
    assert ps.protocol["galleries"] == [[0], [0, 1]]  # gallery item 0 was unreadable
    train = ps.split("train")
    expected = Image.open(s1).convert("RGB").crop((50, 30, 60, 40)).resize((W, H), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(train.images[1], np.asarray(expected))
    rows = _rows(tmp_path / "out")
    assert rows[1]["sha256"] == hashlib.sha256(s1.read_bytes() + b"#crop=50,30,20,20").hexdigest()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["skipped"]["files"] == [{"path": "s3.jpg", "reason": "empty file (0 bytes)"}]
    assert "only for the standard (market) protocol" in report["baseline"]["note"]
    assert report["warnings"]["queries_without_match"]["count"] == 0


def test_train_only_protocol_writes_empty_test_arrays(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    s1 = _scene(raw / "p1_s1_1.png", 1)
    splits = Splits([Item(s1, 1, 0, s1.name), Item(s1, 2, 0, s1.name)], [], [], [], {"name": "train-only"})
    monkeypatch.setattr(preprocess.datasets, "parse", lambda *a, **k: splits)
    res = preprocess.run(dataset="cuhk_sysu", raw_dir=raw, out_dir=tmp_path / "out", data=data())
    assert res.num_images == {"train": 2, "query": 0, "gallery": 0} and res.num_classes == 2
    assert PreparedSet(tmp_path / "out").split("query").images.shape == (0, H, W, 3)
