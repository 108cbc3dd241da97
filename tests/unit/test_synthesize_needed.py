"""The main job draws only the generated datasets that params.yaml's `datasets` uses (before, synthetic_b
was drawn on every `dvc repro`, about 20 s, though the quickstart trains on `synthetic` alone).

dvc.yaml's synthesize commands are run here as DVC runs them (shell, in the repository root, params.yaml
there); every output they declare must exist afterwards (DVC fails a stage otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures.tiny_params import SMALLEST_SYNTHETIC as TINY

from spherereid.config import SyntheticConfig
from spherereid.stages import synthesize

ROOT = Path(__file__).resolve().parents[2]
GENERATED = list(synthesize.generated_datasets())


def _synthesize_stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: s for name, s in stages.items() if "spherereid.stages.synthesize" in str(s.get("cmd"))}


def _out_paths(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]


def _images(folder: Path) -> int:
    return len(list(folder.rglob("*.jpg")))


def _repro_synthesize(tmp_path: Path, chosen: list[str]) -> tuple[Path, list[str]]:
    """Run every synthesize stage of dvc.yaml in `tmp_path` with `datasets: chosen` and tiny sizes;
    returns the folder and the outputs the stages declare."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = chosen
    params["synthetic"].update(TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    outs = []
    for stage in _synthesize_stages().values():
        cmd = str(stage["cmd"]).replace("python -m", f"{sys.executable} -m", 1)
        subprocess.run(cmd, shell=True, cwd=tmp_path, check=True, capture_output=True, timeout=300)
        outs += _out_paths(stage)
    return tmp_path, outs


@pytest.mark.parametrize(
    ("chosen", "drawn"),
    [
        (["synthetic"], {"synthetic"}),  # the quickstart: synthetic_b is not drawn
        (["synthetic_b"], {"synthetic_b"}),
        (["market1501", "synthetic"], {"synthetic"}),
        (["synthetic+synthetic_b"], {"synthetic", "synthetic_b"}),  # a union needs each part
    ],
)
def test_dvc_draws_only_the_generated_datasets_that_datasets_uses(tmp_path, chosen, drawn):
    root, outs = _repro_synthesize(tmp_path, chosen)
    assert all((root / out).exists() for out in outs), outs  # DVC's check after the command
    for name in GENERATED:
        assert (_images(root / "data" / "raw" / name) > 0) == (name in drawn), name


def test_every_generated_dataset_is_an_output_of_a_synthesize_stage():
    """A dataset `datasets` may name is always made by DVC; the stage reruns when `datasets` changes."""
    outs = {out for stage in _synthesize_stages().values() for out in _out_paths(stage)}
    assert {f"data/raw/{name}" for name in GENERATED} <= outs
    assert all({"datasets", "synthetic"} <= set(s["params"]) for s in _synthesize_stages().values())


def test_a_placeholder_becomes_the_dataset_once_needed_and_back(tmp_path):
    cfg = SyntheticConfig(**TINY)
    first = synthesize.run_needed(synthetic=cfg, datasets=["synthetic"], root=tmp_path, workers=1)
    assert first["synthetic"] is not None and first["synthetic_b"] is None
    record = json.loads((tmp_path / "synthetic_b" / synthesize.RECORD).read_text())
    assert record["placeholder"] is True and "synthetic_b" in record["note"]
    assert sorted(p.name for p in (tmp_path / "synthetic_b").iterdir()) == [synthesize.RECORD]
    again = synthesize.run_needed(synthetic=cfg, datasets=["synthetic_b"], root=tmp_path, workers=1)
    assert again["synthetic_b"] is not None and not again["synthetic_b"].reused
    assert _images(tmp_path / "synthetic_b") > 0 and _images(tmp_path / "synthetic") == 0
    b = json.loads((tmp_path / "synthetic_b" / synthesize.RECORD).read_text())
    assert b["config"]["domain"] == "b"


def test_a_needed_dataset_already_drawn_with_this_configuration_is_reused(tmp_path):
    cfg = SyntheticConfig(**TINY)
    synthesize.run_needed(synthetic=cfg, datasets=["synthetic"], root=tmp_path, workers=1)
    before = (tmp_path / "synthetic" / synthesize.RECORD).stat().st_mtime_ns
    res = synthesize.run_needed(synthetic=cfg, datasets=["synthetic", "market1501"], root=tmp_path, workers=1)
    assert res["synthetic"] is not None and res["synthetic"].reused
    assert (tmp_path / "synthetic" / synthesize.RECORD).stat().st_mtime_ns == before


def test_a_placeholder_never_replaces_a_foreign_folder(tmp_path):
    (tmp_path / "synthetic_b").mkdir()
    (tmp_path / "synthetic_b" / "notes.txt").write_text("keep me")
    with pytest.raises(synthesize.SynthesizeError, match="refusing to replace"):
        synthesize.run_needed(
            synthetic=SyntheticConfig(**TINY), datasets=["synthetic"], root=tmp_path, workers=1
        )
    assert (tmp_path / "synthetic_b" / "notes.txt").read_text() == "keep me"
