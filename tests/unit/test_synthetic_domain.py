"""The second synthetic camera network (`synthetic_b`): deterministic, own identities, shifted looks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from spherereid.data.datasets import parse
from spherereid.data.datasets.synthetic import _persons, _root, generate, plan

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
ROOT = Path(__file__).resolve().parents[2]


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.jpg"))
    }


def _mean_rgb(root: Path) -> np.ndarray:
    """(3,) mean pixel over every image of the dataset."""
    means = [np.asarray(Image.open(p), dtype=np.float64).mean(axis=(0, 1)) for p in root.rglob("*.jpg")]
    return np.mean(means, axis=0)


def test_domain_b_is_deterministic_and_independent_of_workers(tmp_path):
    generate(tmp_path / "one", seed=3, domain="b", workers=1, **TINY)
    generate(tmp_path / "two", seed=3, domain="b", workers=2, **TINY)
    assert _hashes(tmp_path / "one") == _hashes(tmp_path / "two")


def test_domain_a_is_the_original_generator(tmp_path):
    generate(tmp_path / "default", seed=3, **TINY)
    generate(tmp_path / "a", seed=3, domain="a", **TINY)
    assert _hashes(tmp_path / "default") == _hashes(tmp_path / "a")
    assert _root(3, "a") == (3,)  # the original RNG streams: datasets already built keep their bytes


def test_domain_b_has_its_own_identities_and_looks(tmp_path):
    a = [
        s.person
        for s in plan(
            seed=3,
            domain="a",
            layout="market1501",
            **{k: v for k, v in TINY.items() if k not in ("height", "width")},
        )
    ]
    b = [
        s.person
        for s in plan(
            seed=3,
            domain="b",
            layout="market1501",
            **{k: v for k, v in TINY.items() if k not in ("height", "width")},
        )
    ]
    assert a != b
    assert not set(_persons(_root(3, "a"), 14)) & set(_persons(_root(3, "b"), 14))  # no shared identity
    generate(tmp_path / "a", seed=3, **TINY)
    summary = generate(tmp_path / "b", seed=3, domain="b", **TINY)
    assert summary["domain"] == "b"
    # domain b's cast adds blue and removes red (tint -0.15 red, +0.3 blue): the blue-red balance moves
    ma, mb = _mean_rgb(tmp_path / "a"), _mean_rgb(tmp_path / "b")
    assert (mb[2] - mb[0]) - (ma[2] - ma[0]) > 10


def test_unknown_domain_is_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="synthetic.domain"):
        generate(tmp_path / "x", seed=3, domain="c", **TINY)


def test_synthesize_cli_domain_b_is_parsed_as_synthetic_b(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["synthetic"].update(TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "raw" / "synthetic_b"
    cmd = [
        sys.executable,
        "-m",
        "spherereid.stages.synthesize",
        "--params",
        str(tmp_path / "params.yaml"),
        "--domain",
        "b",
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    assert json.loads((out / "synthetic.json").read_text())["config"]["domain"] == "b"
    splits = parse("synthetic_b", out, tmp_path / "work")
    assert len({i.pid for i in splits.train}) == TINY["train_identities"]
    assert {i.pid for i in splits.query} <= {i.pid for i in splits.gallery}
