"""MSMT17 V1 / V2 parser on fixture releases in the real layout (list files included)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fixtures import msmt17 as fx

from spherereid.config import DataConfig
from spherereid.data import datasets
from spherereid.data.datasets import msmt17
from spherereid.data.datasets.base import DatasetError
from spherereid.stages import preprocess

OFF = msmt17.TEST_PID_OFFSET


def _pairs(items):
    return [(i.pid, i.camid) for i in items]


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_split_sizes_pids_and_cameras(tmp_path, version):
    fx.write_release(tmp_path, version=version)
    s = datasets.parse("msmt17", tmp_path, tmp_path / "work")  # root above MSMT17_V*/
    # train = list_train + list_val (default); pid = list pid + 1, camid = camera field - 1
    assert _pairs(s.train) == [(1, 0), (1, 2), (2, 1), (2, 14), (3, 6), (1, 4), (3, 6)]
    assert _pairs(s.query) == [(OFF + 1, 0), (OFF + 2, 3), (OFF + 2, 8)]
    assert _pairs(s.gallery) == [(OFF + 1, 1), (OFF + 1, 0), (OFF + 2, 3), (OFF + 2, 11)]
    assert s.skipped == []
    train_dir = fx.FOLDERS[version][0]
    assert s.train[0].source == f"MSMT17_{version}/{train_dir}/0000/0000_000_01_0303morning_0001_0.jpg"
    assert s.train[0].path.is_file()
    assert s.protocol["msmt17_version"] == version and s.protocol["train_with_val"] is True


def test_train_without_val_leaves_the_val_list_out_and_says_so(tmp_path):
    folder = fx.write_release(tmp_path)
    s = datasets.parse("msmt17", folder, tmp_path / "work", data=DataConfig(msmt17_train_with_val=False))
    assert len(s.train) == 5
    assert s.protocol["val_images_excluded"] == 2
    assert "list_val.txt left out (2 images" in s.protocol["notes"][0]


def test_every_bad_line_and_file_is_reported_by_name(tmp_path):
    folder = fx.write_release(tmp_path)
    good = (folder / "list_train.txt").read_text()
    extra = fx.msmt17_name(2, 9, 16)  # camera 16 does not exist
    (folder / "train" / "0002" / extra).write_bytes(b"x")
    (folder / "train" / "0002" / "unlisted_000_01.jpg").write_bytes(b"x")
    (folder / "train" / "stray.jpg").write_bytes(b"x")
    (folder / "list_train.txt").write_text(
        good
        + "0002/0002_000_07_0303morning_0001_0.jpg\n"  # line 6: no pid
        + "0002/0002_000_07_0303morning_0001_0.jpg two\n"  # line 7: pid not an integer
        + "0002/missing_000_03_x.jpg 2\n"  # line 8: file missing
        + f"0002/{extra} 2\n"  # line 9: camera 16
        + "0000/0000_000_01_0303morning_0001_0.jpg 0\n"  # line 10: listed twice
        + "../../etc/passwd 0\n"  # line 11: escapes the folder
    )
    s = msmt17.parse(folder, tmp_path / "work")
    got = {k.path: k.reason for k in s.skipped}
    assert set(got) == {f"list_train.txt line {n}" for n in range(6, 12)} | {
        "train/0002/unlisted_000_01.jpg",
        f"train/0002/{extra}",
        "train/stray.jpg",
    }
    assert "expected '<pid folder>/<file name> <pid>'" in got["list_train.txt line 6"]
    assert "pid 'two'" in got["list_train.txt line 7"]
    assert "not found" in got["list_train.txt line 8"]
    assert "camera 16 outside 01..15" in got["list_train.txt line 9"]
    assert "listed twice" in got["list_train.txt line 10"]
    assert "not <pid folder>/<file name>" in got["list_train.txt line 11"]
    assert "named in no list" in got["train/0002/unlisted_000_01.jpg"]
    assert len(s.train) == 7  # the good lines are all kept


def test_missing_list_file_is_one_error_naming_it(tmp_path):
    folder = fx.write_release(tmp_path)
    (folder / "list_gallery.txt").unlink()
    with pytest.raises(DatasetError, match=r"MSMT17_V1/list_gallery.txt: MSMT17 list file missing"):
        msmt17.parse(folder, tmp_path / "work")


def test_no_release_found_names_where_it_looked(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match=r"no MSMT17 release .* point the raw data path at MSMT17_V1/"):
        msmt17.parse(tmp_path, tmp_path / "work")


def test_preprocess_reports_train_plus_val(tmp_path):
    folder = fx.write_release(tmp_path / "raw")
    data = dataclasses.replace(DataConfig(), stored_height=16, stored_width=8, workers=1)
    res = preprocess.run(dataset="msmt17", raw_dir=folder, out_dir=tmp_path / "prep", data=data)
    assert res.num_images == {"train": 7, "query": 3, "gallery": 4}
    assert res.num_classes == 3
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    assert report["notes"] == [
        "MSMT17 V1: trained on list_train.txt + list_val.txt (2 val images; data.msmt17_train_with_val)"
    ]
    assert (
        "- note: MSMT17 V1: trained on list_train.txt + list_val.txt"
        in (tmp_path / "prep" / "report.md").read_text()
    )
    # query 0 (pid 1, cam 1): gallery has pid 1 in cameras 2 and 1 -> matched; all queries match
    assert report["warnings"]["queries_without_match"]["count"] == 0


def test_dukemtmc_logs_the_withdrawal_notice_naming_msmt17(tmp_path, caplog):
    from fixtures.market import duke_name, write_tree

    root = write_tree(
        tmp_path / "duke",
        {
            "bounding_box_train": [duke_name(5, 2)],
            "query": [duke_name(7, 1)],
            "bounding_box_test": [duke_name(7, 2)],
        },
    )
    with caplog.at_level("WARNING"):
        datasets.parse("dukemtmc", root, tmp_path / "work")
    notices = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert notices == [
        "DukeMTMC-reID was withdrawn by its authors (2019); "
        "MSMT17 (dataset 'msmt17') is the usual replacement"
    ]
