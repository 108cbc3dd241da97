"""params.yaml loading: every section typed, unknown/missing keys named, invariants enforced."""

from pathlib import Path

import pytest
import yaml

from spherereid.config import ConfigError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _raw(name: str = "params.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["params.yaml", "params-paper.yaml"])
def test_shipped_params_load(name):
    p = load_params(ROOT / name)
    assert p.sampler.p * p.sampler.k == p.sampler.batch_size
    assert p.datasets == ("synthetic",)


def test_paper_recipe_matches_the_paper():
    p = load_params(ROOT / "params-paper.yaml")
    assert (p.model.backbone, p.model.head, p.model.embedding_dim) == ("resnet50", "D", 1024)
    assert (p.sampler.p, p.sampler.k) == (16, 4)
    assert (p.optim.lr, p.optim.weight_decay) == (1e-3, 5e-4)
    assert (p.schedule.warmup_start_lr, p.schedule.warmup_epochs, p.schedule.milestones) == (
        5e-5,
        20,
        (80, 100),
    )
    assert p.train.epochs == 140
    assert (p.transform.resize_height, p.transform.resize_width) == (288, 144)
    assert (p.transform.crop_height, p.transform.crop_width) == (256, 128)
    assert p.loss.scale == 14.0 and p.loss.margin == 0.0


def test_unknown_key_is_named_with_file(tmp_path):
    raw = _raw()
    raw["optim"]["momentum"] = 0.9
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"p\.yaml: unknown key 'optim\.momentum'"):
        load_params(path)


def test_missing_key_is_named():
    raw = _raw()
    del raw["loss"]["scale"]
    with pytest.raises(ConfigError, match=r"missing key 'loss\.scale'"):
        params_from_dict(raw, "x.yaml")


def test_unknown_and_missing_sections():
    raw = _raw()
    raw["optimiser"] = {}
    with pytest.raises(ConfigError, match="unknown section 'optimiser'"):
        params_from_dict(raw)
    raw = _raw()
    del raw["evaluate"]
    with pytest.raises(ConfigError, match="missing section 'evaluate'"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("sampler", "batch_size", 60, r"16\*4 != 60"),
        ("schedule", "milestones", [26, 20], "strictly increasing"),
        ("loss", "scale", 0.0, "scale must be > 0"),
        ("model", "head", "E", "one of A, B, C, D"),
        ("transform", "crop_height", 999, "must not exceed"),
        ("register", "promotion", "always", r"same-data\|best\|manual, got 'always'"),
    ],
)
def test_invariants(section, key, value, message):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw, "bad.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
