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
    """The settings the paper states (Fan et al. 2018, arXiv 1807.00537, Sec. 4), and our two choices where
    it states none (weight decay 5e-4, scale s = 14)."""
    p = load_params(ROOT / "params-paper.yaml")
    assert (p.model.backbone, p.model.head, p.model.embedding_dim) == ("resnet50", "D", 1024)
    assert (p.model.dropout, p.model.pretrained) == (0.5, "imagenet")
    assert (p.sampler.p, p.sampler.k, p.sampler.batch_size, p.sampler.type) == (16, 4, 64, "balanced")
    assert (p.optim.lr, p.optim.betas, p.optim.eps) == (1e-3, (0.9, 0.99), 1e-8)  # Adam, as stated
    assert (p.schedule.warmup_start_lr, p.schedule.warmup_epochs, p.schedule.milestones) == (
        5e-5,
        20,
        (80, 100),
    )
    assert (p.schedule.gamma, p.schedule.step_per) == (0.1, "epoch")
    assert p.train.epochs == 140
    assert (p.transform.resize_height, p.transform.resize_width) == (288, 144)
    assert (p.transform.crop_height, p.transform.crop_width) == (256, 128)
    assert p.loss.type == "sphere" and p.loss.margin == 0.0
    assert p.loss.scale == 14.0 and p.optim.weight_decay == 5e-4  # not stated by the paper: our choices
    assert p.train.cuda_graphs == "auto"  # the same file on one GPU and under torchrun


def test_the_quickstart_shares_the_papers_adam_betas_and_eps():
    quick, paper = load_params(ROOT / "params.yaml"), load_params(ROOT / "params-paper.yaml")
    assert (quick.optim.betas, quick.optim.eps) == (paper.optim.betas, paper.optim.eps) == ((0.9, 0.99), 1e-8)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("betas", [0.9], "optim.betas must be two values"),
        ("betas", [0.9, 1.0], "optim.betas must be two values"),
        ("eps", 0.0, "optim.eps must be > 0"),
    ],
)
def test_bad_adam_settings_are_named(key, value, message):
    raw = _raw()
    raw["optim"][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(raw, "x.yaml")


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_cuda_graphs_takes_true_false_or_auto(value):
    raw = _raw()
    raw["train"]["cuda_graphs"] = value
    assert params_from_dict(raw).train.cuda_graphs == value


@pytest.mark.parametrize("value", ["on", 1, None])
def test_other_cuda_graphs_values_are_refused(value):
    raw = _raw()
    raw["train"]["cuda_graphs"] = value
    with pytest.raises(ConfigError, match=r"train\.cuda_graphs must be true\|false\|auto"):
        params_from_dict(raw)


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
