"""Parsers at the real datasets' scale: placeholder (empty) images under the real file names.

Uses the real split / label files in /work/shared/data (a sibling of the repository; see its
README.md). The parsers never decode images, so empty files stand in for them.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures.market import write_tree  # noqa: E402

from spherereid.config import DataConfig  # noqa: E402
from spherereid.data.datasets import parse, relabel  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (DATA / "README.md").is_file(),
    reason=f"real label files not found at {DATA} (shared/data next to the repo)",
)


@pytest.mark.parametrize(
    "kind, n_files, n_train, n_query, n_gallery",
    [("labeled", 14096, 7368, 1400, 5328), ("detected", 14097, 7365, 1400, 5332)],
)
def test_cuhk03_np_counts(tmp_path, kind, n_files, n_train, n_query, n_gallery):
    cfg_path = DATA / "cuhk03-np" / f"cuhk03_new_protocol_config_{kind}.mat"
    cfg = scipy.io.loadmat(cfg_path)
    files = [str(x[0][0]) for x in cfg["filelist"]]
    assert len(files) == n_files
    root = tmp_path / "cuhk03"
    write_tree(root, {f"images_{kind}": files}, empty=True)
    shutil.copy(cfg_path, root)
    splits = parse(
        "cuhk03", tmp_path, tmp_path / "work", data=DataConfig(cuhk03_labels=kind, cuhk03_protocol="new")
    )
    assert (len(splits.train), len(splits.query), len(splits.gallery)) == (n_train, n_query, n_gallery)
    assert splits.skipped == []
    train_ids = {it.pid for it in splits.train}
    test_ids = {it.pid for it in splits.query}
    assert len(train_ids) == 767 and len(test_ids) == 700 and not train_ids & test_ids
    assert {it.pid for it in splits.gallery} == test_ids
    assert Counter((it.pid, it.camid) for it in splits.query) == {(p, c): 1 for p in test_ids for c in (0, 1)}
    labels, cams = cfg["labels"].ravel(), cfg["camId"].ravel()
    by_name = {n: (int(labels[i]), int(cams[i]) - 1) for i, n in enumerate(files)}
    for it in splits.train + splits.query + splits.gallery:  # the mat's camId agrees with the name's view
        assert (it.pid, it.camid) == by_name[it.path.name]
    assert sorted(relabel(it.pid for it in splits.train).values()) == list(range(767))


def _mat(name: str, key: str) -> np.ndarray:
    return scipy.io.loadmat(DATA / "market1501-labels" / f"{name}.mat")[key].ravel().astype(np.int64)


def test_market1501_full_size(tmp_path):
    lines = []
    for txt in ("train.txt", "val.txt"):
        lines += (DATA / "market1501-labels" / txt).read_text().split("\n")
    pairs = [line.split() for line in lines if line.strip()]
    train_names = [p[0].split("/", 1)[1] for p in pairs]
    label_of = {name: int(p[1]) for name, p in zip(train_names, pairs, strict=True)}
    qid, qcam = _mat("queryID", "queryID"), _mat("queryCam", "queryCAM")
    gid, gcam = _mat("testID", "testID"), _mat("testCam", "testCAM")

    def name(pid, cam, i):
        return f"{'-1' if pid == -1 else f'{pid:04d}'}_c{cam}s1_{i:06d}_00.jpg"

    root = tmp_path / "Market-1501-v15.09.15"
    files = {
        "bounding_box_train": train_names,
        "query": [name(p, c, i) for i, (p, c) in enumerate(zip(qid, qcam, strict=True))],
        "bounding_box_test": [name(p, c, i) for i, (p, c) in enumerate(zip(gid, gcam, strict=True))],
    }
    write_tree(root, files, empty=True)
    splits = parse("market1501", tmp_path, tmp_path / "work")
    assert splits.skipped == []
    assert (len(splits.train), len(splits.query), len(splits.gallery)) == (12936, 3368, 15913)
    assert splits.protocol == {"name": "market", "junk_dropped": 3819}
    train_ids = sorted({it.pid for it in splits.train})
    assert len(train_ids) == 751 and (train_ids[0], train_ids[-1]) == (2, 1500)
    assert len({it.pid for it in splits.query}) == 750
    assert len({it.pid for it in splits.gallery}) == 751 and sum(it.pid == 0 for it in splits.gallery) == 2798
    assert Counter(it.camid for it in splits.train) == Counter((_mat("train_cam", "cam") - 1).tolist())
    assert Counter(it.camid for it in splits.query) == Counter((qcam - 1).tolist())
    keep = gid != -1
    assert Counter((it.pid, it.camid) for it in splits.gallery) == Counter(
        zip(gid[keep].tolist(), (gcam[keep] - 1).tolist(), strict=True)
    )
    # the release's own train labels (train.txt / val.txt) are the sorted-id relabelling
    mapping = relabel(it.pid for it in splits.train)
    assert all(mapping[it.pid] == label_of[it.path.name] for it in splits.train)
