"""The synthetic ReID dataset: determinism, Market layout, camera coverage, raw-pixel baseline."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spherereid.config import DataConfig, SyntheticConfig
from spherereid.data.datasets import market1501
from spherereid.data.datasets.synthetic import _persons, generate, plan
from spherereid.data.datasets.synthetic_draw import person_key
from spherereid.evaluation.baseline import area_matrix
from spherereid.stages import preprocess, synthesize

TINY = dict(
    train_identities=6,
    test_identities=8,
    cameras=4,
    images_per_camera=2,
    min_cameras=2,
    distractors=5,
    junk=3,
    height=64,
    width=32,
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("syn") / "raw"
    return root, generate(root, seed=3, **TINY)


def test_same_seed_same_bytes_any_worker_count(tiny, tmp_path):
    root, _ = tiny
    generate(tmp_path / "again", seed=3, **TINY, workers=2)
    first, second = _files(root), _files(tmp_path / "again")
    assert len(first) > 0 and first == second
    generate(tmp_path / "other", seed=4, **TINY)
    other = _files(tmp_path / "other")
    common = set(first) & set(other)
    assert first != other and all(first[k] != other[k] for k in common)


def test_jpegs_carry_no_metadata(tiny):
    root, _ = tiny
    img = Image.open(next((root / "query").iterdir()))
    assert img.format == "JPEG" and img.size == (32, 64) and not img.getexif() and "exif" not in img.info


def test_parses_back_with_the_configured_counts(tiny, tmp_path):
    root, summary = tiny
    splits = market1501.parse(root, tmp_path / "work")
    assert splits.skipped == [] and splits.protocol["junk_dropped"] == TINY["junk"]
    train_ids = {i.pid for i in splits.train}
    test_ids = {i.pid for i in splits.query}
    assert len(train_ids) == TINY["train_identities"] and len(test_ids) == TINY["test_identities"]
    assert not train_ids & ({i.pid for i in splits.gallery} - {0})
    assert sum(i.pid == 0 for i in splits.gallery) == TINY["distractors"]
    assert {i.pid for i in splits.gallery} == test_ids | {0}
    assert len(splits.query) == summary["images"]["query"]
    assert len(splits.gallery) + TINY["junk"] == summary["images"]["bounding_box_test"]
    assert len(splits.train) == summary["images"]["bounding_box_train"]
    cams: dict[int, set[int]] = defaultdict(set)
    for item in splits.train + splits.query + splits.gallery:
        if item.pid > 0:
            cams[item.pid].add(item.camid)
    assert all(len(c) >= TINY["min_cameras"] for c in cams.values())
    per_id_cam: dict[tuple[int, int], int] = defaultdict(int)
    for item in splits.train + splits.query + [g for g in splits.gallery if g.pid > 0]:
        per_id_cam[item.pid, item.camid] += 1
    assert set(per_id_cam.values()) == {TINY["images_per_camera"]}
    qcams = [(q.pid, q.camid) for q in splits.query]
    assert len(qcams) == len(set(qcams))  # at most one query per identity and camera
    for q in splits.query:  # every query has a match in another camera
        assert any(g.pid == q.pid and g.camid != q.camid for g in splits.gallery)


def test_attribute_combinations_are_unique():
    persons = _persons(0, 300)
    assert len({person_key(p) for p in persons}) == 300
    assert len({p.upper for p in persons}) > 50  # colours are shared ...
    assert max(sum(p.pattern == pat for p in persons) for pat in ("plain", "stripes", "checks", "logo")) < 120


def test_plan_names_follow_market_naming():
    shots = plan(seed=0, **{k: v for k, v in TINY.items() if k not in ("height", "width")})
    names = [s.name for s in shots]
    assert len(names) == len(set(names))
    assert {s.name[:3] for s in shots if s.pid == -1} == {"-1_"}
    assert all(s.name.startswith(f"{s.pid:04d}_c{s.cam}s") for s in shots if s.pid >= 0)


def test_area_matrix_by_hand():
    np.testing.assert_allclose(area_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(area_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def _independent_baseline(root: Path) -> tuple[float, float]:
    """Rank-1 / mAP of raw-pixel matching written from scratch: 2x2 block means of the 64x32 JPEGs."""
    q, g = [], []
    for folder, out in (("query", q), ("bounding_box_test", g)):
        for p in sorted((root / folder).iterdir()):
            pid, cam = p.name.split("_")[:2]
            if pid != "-1":
                x = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
                f = x.reshape(32, 2, 16, 2, 3).mean(axis=(1, 3)).ravel()
                f = (f - f.mean()) / f.std()
                out.append((f / np.linalg.norm(f), int(pid), int(cam[1:].split("s")[0])))
    hits, aps = [], []
    for fq, pq, cq in q:
        cand = [(-float(fq @ fg), pg == pq) for fg, pg, cg in g if not (pg == pq and cg == cq)]
        good = [m for _, m in sorted(cand, key=lambda t: t[0])]
        pos = [i for i, m in enumerate(good) if m]
        hits.append(float(good[0]))
        aps.append(np.mean([(n + 1) / (i + 1) for n, i in enumerate(pos)]))
    return float(np.mean(hits)), float(np.mean(aps))


def test_report_baseline_equals_an_independent_computation(tiny, tmp_path):
    root, _ = tiny
    data = DataConfig(stored_height=64, stored_width=32, workers=1)
    res = preprocess.run(dataset="synthetic", raw_dir=root, out_dir=tmp_path / "prep", data=data)
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    rank1, mean_ap = _independent_baseline(root)
    assert report["baseline"]["rank1"] == pytest.approx(rank1, abs=1e-6)
    assert report["baseline"]["mAP"] == pytest.approx(mean_ap, abs=1e-5)
    assert res.baseline == report["baseline"]
    assert "rank-1" in (tmp_path / "prep" / "report.md").read_text()


def test_synthesize_stage_writes_atomically_and_reuses(tmp_path, monkeypatch):
    cfg = SyntheticConfig(seed=1, **TINY)
    out = tmp_path / "raw" / "synthetic"
    res = synthesize.run(synthetic=cfg, out_dir=out, workers=1)
    assert not res.reused and res.images["query"] == len(list((out / "query").iterdir()))
    record = json.loads((out / "synthetic.json").read_text())
    # the default layout and domain are not recorded: the synthetic.json (and DVC md5) is as before
    assert record["config"] == {
        k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("layout", "domain")
    }
    assert synthesize.run(synthetic=cfg, out_dir=out, workers=1).reused

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthesize, "generate", boom)
    with pytest.raises(KeyboardInterrupt):  # a killed run leaves no half dataset behind
        synthesize.run(synthetic=dataclasses.replace(cfg, seed=2), out_dir=tmp_path / "new", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_synthesize_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(synthesize.SynthesizeError, match="refusing to replace"):
        synthesize.run(synthetic=SyntheticConfig(**TINY), out_dir=tmp_path / "mine", workers=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_synthesize_main_reports_errors_in_one_line(tmp_path, capsys):
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    raw["synthetic"]["seed"] = -1
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    assert synthesize.main(["--params", str(params), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: synthetic.seed must be >= 0, got -1"
    assert not (tmp_path / "out").exists()


def test_synthesize_removes_what_a_killed_run_left(tmp_path):
    out = tmp_path / "synthetic"
    for name in (".tmp-synthetic-999999", ".tmp-synthetic-2-777", "keep"):  # a dead run's temp folder,
        (tmp_path / name / "query").mkdir(parents=True)  # another output's temp and an unrelated folder
    synthesize.run(synthetic=SyntheticConfig(**TINY), out_dir=out, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-synthetic-2-777", "keep", "synthetic"]


def test_python_dash_m_reports_stage_errors_in_one_line(tmp_path):
    """Run as `python -m` the module is __main__; its SynthesizeError used to escape as a traceback."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    cmd = [sys.executable, "-m", "spherereid.stages.synthesize", "--params", str(params)]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "mine")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert (
        proc.stderr == f"error: {tmp_path / 'mine'}: exists, is not empty and holds no synthetic.json; "
        "refusing to replace it (choose another --out)\n"
    )
