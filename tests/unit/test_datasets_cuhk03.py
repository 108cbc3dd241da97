"""CUHK03: extraction from a v7.3 (HDF5) cuhk-03.mat, the new (CUHK03-NP) and classic protocols."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures import cuhk03 as fx  # noqa: E402
from fixtures.market import zip_tree  # noqa: E402

from spherereid.config import DataConfig  # noqa: E402
from spherereid.data.datasets import DatasetError, parse  # noqa: E402
from spherereid.data.datasets.cuhk03 import extract_images, pairs_sizes  # noqa: E402
from spherereid.data.datasets.cuhk03 import parse as cuhk03_parse  # noqa: E402

OFFSETS = [0, 40, 70, 90, 105]  # cumulative PAIR_SIZES (40, 30, 20, 15, 10)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cuhk03") / "raw"
    fx.write_cuhk03_mat(root / "cuhk03_release" / "cuhk-03.mat")
    for kind in ("labeled", "detected"):
        fx.write_new_protocol(root / f"cuhk03_new_protocol_config_{kind}.mat", *fx.new_protocol_for(kind))
    return root


def test_fixture_has_the_release_layout(raw):
    import h5py

    with h5py.File(raw / "cuhk03_release" / "cuhk-03.mat", "r") as f:
        assert f["labeled"].shape == (1, 5) and f["testsets"].shape == (1, 20)
        assert [f[r].shape for r in f["detected"][0]] == [(10, 40), (10, 30), (10, 20), (10, 15), (10, 10)]
        assert f[f["testsets"][0][0]].shape == (2, 100)
        empty = f[f[f["labeled"][0][0]][9, 0]]  # person 1 of pair 1 has no 10th image
        assert empty.dtype == np.uint64 and empty.shape == (2,)
    assert (raw / "cuhk03_release" / "cuhk-03.mat").read_bytes()[:10] == b"MATLAB 7.3"
    assert pairs_sizes(raw / "cuhk03_release" / "cuhk-03.mat", "labeled") == [40, 30, 20, 15, 10]


@pytest.mark.parametrize("kind, count", [("labeled", 331), ("detected", 319)])
def test_extraction_names_and_pixels(tmp_path, raw, kind, count):
    # by hand: 115 persons x 2 images, + 2 for the 39 with g % 3 == 0, + 1 for the 23 with g % 5 == 0
    # (detected: minus the 12 with g % 10 == 0)
    out = tmp_path / f"images_{kind}"
    assert extract_images(raw / "cuhk03_release" / "cuhk-03.mat", kind, out) == []
    names = sorted(p.name for p in out.glob("*.png"))
    assert len(names) == count and names == fx.names(kind)
    assert "1_001_1_01.png" in names and "1_001_2_06.png" in names and "5_010_2_06.png" in names
    for name in ("1_001_1_01.png", "1_006_1_03.png", "2_003_2_07.png", "5_010_2_06.png"):
        c, p, _, k = (int(t) for t in name[:-4].split("_"))
        got = np.asarray(Image.open(out / name))
        assert got.shape == (*fx.IMAGE_HW, 3)  # (H, W, 3): the stored (3, W, H) transposed back
        assert np.array_equal(got, fx.image(kind, c, p, k - 1))


def _names(items):
    return [it.path.name for it in items]


@pytest.mark.parametrize("kind", ["labeled", "detected"])
def test_new_protocol(tmp_path, raw, kind):
    files, labels, idx = fx.new_protocol_for(kind)
    splits = parse("cuhk03", raw, tmp_path / "work", data=DataConfig(cuhk03_labels=kind))
    for split in ("train", "query", "gallery"):
        items = getattr(splits, split)
        want = [i - 1 for i in idx[f"{split}_idx"]]
        assert _names(items) == [files[i] for i in want]
        assert [it.pid for it in items] == [labels[i] for i in want]
        assert [it.camid for it in items] == [int(files[i].split("_")[2]) - 1 for i in want]
    assert len({it.pid for it in splits.train}) == 85 and len({it.pid for it in splits.query}) == 30
    assert len(splits.query) == 60  # one per (test identity, camera)
    # test ids: the last 30 of the persons with >= 2 images per view (g % 3 == 0, pid g + 1): 28, 31, .., 115
    assert {(it.pid, it.camid) for it in splits.query} == {(p, c) for p in range(28, 116, 3) for c in (0, 1)}
    assert splits.protocol == {"name": "market", "variant": "cuhk03-new", "labels": kind}
    assert splits.skipped == []
    assert splits.train[0].source == f"cuhk03_release/cuhk-03.mat#{kind}/1_001_1_01.png"
    assert (tmp_path / "work" / "cuhk03" / f"images_{kind}" / "1_001_1_01.png").is_file()


def test_extraction_is_reused(tmp_path, raw):
    work = tmp_path / "work"
    first = parse("cuhk03", raw, work, data=DataConfig(cuhk03_labels="labeled"))
    png = first.train[0].path
    png.write_bytes(b"not re-extracted")
    second = parse("cuhk03", raw, work, data=DataConfig(cuhk03_labels="labeled"))
    assert second.train[0].path == png and png.read_bytes() == b"not re-extracted"
    mat = raw / "cuhk03_release" / "cuhk-03.mat"
    os.utime(mat, (mat.stat().st_atime, mat.stat().st_mtime + 10))  # a changed .mat is extracted again
    parse("cuhk03", raw, work, data=DataConfig(cuhk03_labels="labeled"))
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("split", [0, 7, 19])
def test_classic_protocol(tmp_path, raw, split):
    splits = parse(
        "cuhk03",
        raw,
        tmp_path / "work",
        data=DataConfig(cuhk03_labels="detected", cuhk03_protocol="classic", cuhk03_split=split),
    )
    test = {(int(c), int(p)) for c, p in fx.testsets()[split]}
    assert len(test) == 100
    expect_q, expect_t = [], []
    for name in fx.names("detected"):
        c, p, view, _ = (int(t) for t in name[:-4].split("_"))
        row = (name, OFFSETS[c - 1] + p, view - 1)
        (expect_q if (c, p) in test else expect_t).append(row)
    assert [(it.path.name, it.pid, it.camid) for it in splits.query] == expect_q
    assert splits.gallery == splits.query and splits.gallery is not splits.query
    assert [(it.path.name, it.pid, it.camid) for it in splits.train] == expect_t
    assert len({it.pid for it in splits.train}) == 15 and len({it.pid for it in splits.query}) == 100
    assert splits.protocol == {"name": "cuhk03-classic", "split": split, "repeats": 10, "labels": "detected"}


MISSING = "listed in cuhk03_new_protocol_config_labeled.mat but the image is missing"


def test_pre_extracted_folder_and_protocol_file_in_release_dir(tmp_path, raw):
    work = tmp_path / "work"
    parse("cuhk03", raw, work, data=DataConfig(cuhk03_labels="labeled"))
    root = tmp_path / "mine" / "cuhk03"
    shutil.copytree(work / "cuhk03" / "images_labeled", root / "images_labeled")
    (root / "images_labeled" / "5_010_2_06.png").unlink()  # listed in the protocol file but missing
    outside = tmp_path / "elsewhere.png"
    (root / "images_labeled" / "5_009_2_06.png").rename(outside)
    (root / "images_labeled" / "5_009_2_06.png").symlink_to(outside)  # escapes the dataset root
    (root / "cuhk03_release").mkdir()
    shutil.copy(raw / "cuhk03_new_protocol_config_labeled.mat", root / "cuhk03_release")
    splits = parse("cuhk03", tmp_path / "mine", tmp_path / "work2", data=DataConfig(cuhk03_labels="labeled"))
    files, _, idx = fx.new_protocol_for("labeled")
    assert len(splits.train) + len(splits.query) + len(splits.gallery) == len(files) - 2
    assert splits.query[0].source == "cuhk03/images_labeled/" + splits.query[0].path.name
    assert [(s.path, s.reason) for s in splits.skipped] == [
        ("cuhk03/images_labeled/5_009_2_06.png", "symlink outside the dataset root"),
        ("cuhk03/images_labeled/5_010_2_06.png", MISSING),
    ]
    assert not (tmp_path / "work2" / "cuhk03").exists()  # nothing extracted
    with pytest.raises(DatasetError, match="classic protocol needs cuhk03_release/cuhk-03.mat"):
        parse(
            "cuhk03",
            tmp_path / "mine",
            tmp_path / "work2",
            data=DataConfig(cuhk03_labels="labeled", cuhk03_protocol="classic"),
        )
    with pytest.raises(DatasetError, match="images_detected: missing"):
        parse("cuhk03", tmp_path / "mine", tmp_path / "work2", data=DataConfig(cuhk03_labels="detected"))


def test_release_zip(tmp_path, raw):
    root = tmp_path / "raw"
    root.mkdir()
    zip_tree(raw / "cuhk03_release", root / "cuhk03_release.zip", "cuhk03_release")
    shutil.copy(raw / "cuhk03_new_protocol_config_detected.mat", root)
    splits = parse("cuhk03", root, tmp_path / "work")
    _, _, idx = fx.new_protocol_for("detected")
    assert [len(s) for s in (splits.train, splits.query, splits.gallery)] == [len(idx[k]) for k in idx]
    assert splits.query[0].source.startswith("cuhk03_release.zip.d/cuhk03_release/cuhk-03.mat#detected/")
    assert sorted(p.name for p in root.iterdir()) == [
        "cuhk03_new_protocol_config_detected.mat",
        "cuhk03_release.zip",
    ]


def test_bad_stored_image_is_skipped(tmp_path):
    mat = fx.write_cuhk03_mat(tmp_path / "cuhk03_release" / "cuhk-03.mat", bad=("labeled", 2, 3, 5))
    skipped = extract_images(mat, "labeled", tmp_path / "out")
    assert skipped == [("2_003_2_06.png", "stored array (4, 4, 8) uint8 is not a (3, W, H) uint8 image")]
    assert not (tmp_path / "out" / "2_003_2_06.png").exists()
    assert len(list((tmp_path / "out").glob("*.png"))) == 330


def test_fatal_problems(tmp_path, raw):
    with pytest.raises(DatasetError, match="does not exist"):
        parse("cuhk03", tmp_path / "none", tmp_path / "w")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="found neither cuhk03_release/cuhk-03.mat"):
        parse("cuhk03", tmp_path / "empty", tmp_path / "w")
    only_mat = tmp_path / "only" / "cuhk03_release"
    only_mat.mkdir(parents=True)
    shutil.copy(raw / "cuhk03_release" / "cuhk-03.mat", only_mat)
    with pytest.raises(DatasetError, match="cuhk03_new_protocol_config_detected.mat: missing"):
        parse("cuhk03", tmp_path / "only", tmp_path / "w")
    (only_mat / "cuhk-03.mat").write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DatasetError, match="not readable as MATLAB v7.3"):
        parse("cuhk03", tmp_path / "only", tmp_path / "w2")
    with pytest.raises(DatasetError, match="labeled or detected"):
        cuhk03_parse(raw, tmp_path / "w", labels="both")  # the parser checks too
    with pytest.raises(DatasetError, match="split 0..19"):
        cuhk03_parse(raw, tmp_path / "w", protocol="classic", split=20)


def test_unreadable_or_malformed_mat_files_name_the_file(tmp_path, raw):
    import h5py

    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    config = root / "cuhk03_new_protocol_config_detected.mat"
    config.write_bytes(b"garbage")  # before: scipy's MatReadError as a traceback
    with pytest.raises(DatasetError, match=f"{config}: not readable as a MATLAB v5 file"):
        parse("cuhk03", root, tmp_path / "work")
    mat = root / "cuhk03_release" / "cuhk-03.mat"
    with h5py.File(mat, "w") as f:  # HDF5, but 'detected' holds numbers instead of references
        f["detected"] = np.zeros((1, 5))
        f["testsets"] = np.zeros((1, 20))
    with pytest.raises(DatasetError, match=f"{mat}: unexpected content \\(TypeError"):
        parse("cuhk03", root, tmp_path / "work", data=DataConfig(cuhk03_protocol="classic"))
    with pytest.raises(DatasetError, match=f"{config}: is a file, not a folder"):
        parse("cuhk03", config, tmp_path / "work")


def _traced_peak(fn):
    """(fn's result or exception, peak bytes allocated by Python and numpy while it ran)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except DatasetError as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


HUGE_REASON = (
    "stored array (3, 12000, 12000) uint8 is larger than 2048 px per side (CUHK03 crops are a few "
    "hundred); not read"
)
CHUNK_REASON = (
    "stored in HDF5 chunks of (3, 3000, 3000) (27000000 bytes), over the 12582912-byte cap; not read"
)


@pytest.mark.parametrize(
    "shape, chunks, reason",
    [((3, 12000, 12000), (3, 1000, 1000), HUGE_REASON), ((3, 8, 4), (3, 3000, 3000), CHUNK_REASON)],
    ids=["shape", "chunks"],
)
def test_oversized_image_cell_is_skipped_without_reading_it(tmp_path, shape, chunks, reason):
    # before: the cell was read whole (432 MB here, 4.8 GB for the (3, 40000, 40000)) and
    # written out as a PNG; a cell of normal shape in huge chunks was read and extracted
    mat = fx.write_cuhk03_mat(
        tmp_path / "cuhk-03.mat", huge=("labeled", 2, 3, 5), huge_shape=shape, huge_chunks=chunks
    )
    skipped, peak = _traced_peak(lambda: extract_images(mat, "labeled", tmp_path / "out"))
    assert skipped == [("2_003_2_06.png", reason)]
    assert peak < 32 * 2**20, f"{peak} bytes allocated"
    assert not (tmp_path / "out" / "2_003_2_06.png").exists()
    assert len(list((tmp_path / "out").glob("*.png"))) == 330


def test_oversized_cell_array_is_refused_before_reading(tmp_path):
    import h5py

    mat = fx.write_cuhk03_mat(tmp_path / "cuhk-03.mat")
    with h5py.File(mat, "r+") as f:  # 'detected': (1, 20M) references instead of (1, 5): 160 MB
        del f["detected"]
        f.create_dataset("detected", shape=(1, 20_000_000), dtype=h5py.ref_dtype, chunks=(1, 1_000_000))
    err, peak = _traced_peak(lambda: extract_images(mat, "detected", tmp_path / "out"))
    assert isinstance(err, DatasetError)
    assert str(err) == (
        f"{mat}: '/detected' is (1, 20000000) object (160000000 bytes), over the 16777216-byte cap for "
        "this entry; not read. Use the original cuhk-03.mat of the release"
    )
    assert peak < 32 * 2**20, f"{peak} bytes allocated"


def test_preprocess_skips_the_hostile_cell_in_one_line_under_2_gb(tmp_path):
    """The issue's run: preprocess --dataset cuhk03 on a cuhk-03.mat whose one image cell asks for a
    huge allocation (here (3, 20000, 20000): 1.2 GB; before: read, transposed, written as a 400 Mpx PNG,
    peak RSS well over 2 GB). Now it is a reported skip, and the run's peak RSS stays under 2 GB."""
    root = tmp_path / "raw"
    fx.write_cuhk03_mat(
        root / "cuhk03_release" / "cuhk-03.mat", huge=("detected", 1, 1, 0), huge_shape=(3, 20000, 20000)
    )
    fx.write_new_protocol(root / "cuhk03_new_protocol_config_detected.mat", *fx.new_protocol_for("detected"))
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    script = shutil.which("spherereid") or str(Path(sys.executable).parent / "spherereid")
    out = tmp_path / "out"
    measure = (  # a fresh process: its RUSAGE_CHILDREN holds only the preprocess run (and its workers)
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    args = ["preprocess", "--params", str(params), "--dataset", "cuhk03"]
    args += ["--raw", str(root), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", measure, script, *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    assert peak_kib < 2 * 1024**2, f"peak RSS {peak_kib} KiB"
    assert "1 skipped" in proc.stdout
    reason = (
        "stored array (3, 20000, 20000) uint8 is larger than 2048 px per side (CUHK03 crops are a few "
        "hundred); not read"
    )
    report = json.loads((out / "report.json").read_text())
    assert report["skipped"]["files"] == [
        {"path": "cuhk03_release/cuhk-03.mat#detected/1_001_1_01.png", "reason": reason}
    ]
    assert not (out / "work" / "cuhk03" / "images_detected" / "1_001_1_01.png").exists()
