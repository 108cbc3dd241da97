"""spherereid ablation: the grid (17 cells, --grid narrowing), --set overrides (typed, one-line errors),
the tables, and (slow) a tiny end-to-end run that a simulated kill interrupts and a rerun finishes,
training only the cells that had not finished."""

from __future__ import annotations

import json

import mlflow
import pytest

from spherereid import cli
from spherereid.config import load_params
from spherereid.experiments import runner
from spherereid.experiments.grid import Cell, default_grid, narrow, parse_filters
from spherereid.experiments.overrides import OverrideError, apply_overrides, parse_assignments
from spherereid.experiments.tables import to_markdown

PARAMS = "params.yaml"
TINY = [
    "model.backbone=tiny",
    "model.embedding_dim=16",
    "train.epochs=1",
    "train.device=cpu",
    "synthetic.train_identities=8",
    "synthetic.test_identities=8",
    "synthetic.cameras=3",
    "synthetic.distractors=4",
    "synthetic.junk=2",
    "synthetic.height=36",
    "synthetic.width=18",
    "data.stored_height=36",
    "data.stored_width=18",
    "data.workers=1",
    "transform.resize_height=36",
    "transform.resize_width=18",
    "transform.crop_height=32",
    "transform.crop_width=16",
    "sampler.p=4",
    "sampler.k=2",
    "sampler.batch_size=8",
    "evaluate.max_rank=5",
]


def test_default_grid_is_16_balanced_cells_plus_random_on_the_full_method():
    cells = default_grid()
    assert len(cells) == 17 and len({c.cell_id for c in cells}) == 17
    balanced = [c for c in cells if c.sampler == "balanced"]
    assert len(balanced) == 16 == len({(c.head, c.loss, c.warmup) for c in balanced})
    assert [c for c in cells if c.sampler == "random"] == [Cell("D", "sphere", "on", "random")]


def test_grid_filters_narrow_each_axis():
    cells = narrow(default_grid(), parse_filters(["model.head=A,D", "loss=sphere"]))
    # A, D x sphere x on/off = 4 balanced + the random cell (D, sphere, on)
    assert sorted(c.cell_id for c in cells) == sorted(
        [
            "A-sphere-warmup-balanced",
            "A-sphere-nowarmup-balanced",
            "D-sphere-warmup-balanced",
            "D-sphere-nowarmup-balanced",
            "D-sphere-warmup-random",
        ]
    )
    assert len(narrow(default_grid(), parse_filters(["sampler=balanced", "warmup=off"]))) == 8
    with pytest.raises(OverrideError, match="--grid depth: unknown axis"):
        parse_filters(["depth=3"])
    with pytest.raises(OverrideError, match="values must be among softmax,sphere"):
        parse_filters(["loss=arcface"])
    with pytest.raises(OverrideError, match="leaves no cell"):
        narrow(default_grid(), parse_filters(["sampler=random", "head=A"]))


def test_cell_overrides_turn_warmup_off_with_zero_epochs_and_keep_milestones():
    params = load_params(PARAMS)
    cell = Cell("B", "softmax", "off", "balanced")
    p = apply_overrides(params, cell.overrides(params))
    assert (p.model.head, p.loss.type, p.sampler.type) == ("B", "softmax", "balanced")
    assert p.schedule.warmup_epochs == 0 and p.schedule.milestones == params.schedule.milestones
    on = apply_overrides(params, Cell("B", "sphere", "on", "random").overrides(params))
    assert on.schedule.warmup_epochs == params.schedule.warmup_epochs == 5 and on.sampler.type == "random"


def test_set_overrides_are_typed_as_the_config_field():
    params = load_params(PARAMS)
    p = apply_overrides(
        params,
        parse_assignments(
            [
                "train.epochs=3",
                "optim.lr=1e-2",
                "model.pretrained=none",
                "evaluate.flip=false",
                "schedule.milestones=[6, 8]",
                "register.model_prefix=123",
            ]
        ),
    )
    assert p.train.epochs == 3 and isinstance(p.train.epochs, int)
    assert p.optim.lr == 0.01 and p.evaluate.flip is False
    assert p.schedule.milestones == (6, 8) and p.register.model_prefix == "123"
    assert params.train.epochs == 30, "the loaded params are not changed"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("model.hed=A", "--set model.hed: unknown key (known keys of model: backbone, head"),
        ("modle.head=A", "--set modle.head: unknown section 'modle'"),
        ("train.epochs=abc", "--set train.epochs=abc: expected a value of type int"),
        ("train.epochs", "--set 'train.epochs': expected section.key=value"),
        ("model.head=E", "--set: model.head must be one of A, B, C, D"),
    ],
)
def test_bad_set_is_one_line_naming_the_key(item, message, tmp_path, capsys):
    code = cli.main(["ablation", "--params", PARAMS, "--out", str(tmp_path / "out"), "--set", item])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {err[0][len('error: ') :]}"] and message in err[0]
    assert not (tmp_path / "out").exists(), "nothing is run or written before the arguments are checked"


def test_markdown_puts_the_papers_figures_beside_ours():
    record = {
        "head": "D",
        "loss": "sphere",
        "warmup": "on",
        "sampler": "balanced",
        "rank1": 0.5,
        "mAP": 0.25,
        "mAP_official": 0.2,
        "mINP": 0.125,
    }
    md = to_markdown(
        [{**record, "cell": "D-sphere-warmup-balanced"}, {**record, "cell": "A-sphere-warmup-balanced"}]
    )
    assert (
        "| D-sphere-warmup-balanced | D | sphere | on | balanced | 50.00% | 25.00% | 20.00% | 12.50% "
        "| 94.4% | 83.6% |" in md
    )
    assert (
        "| A-sphere-warmup-balanced | D | sphere | on | balanced | 50.00% | 25.00% | 20.00% | 12.50% "
        "| not found | not found |" in md
    )
    assert "paper's reported figures, not ours" in md and "Market-1501" in md
    assert "Fan et al. 2018, arXiv 1807.00537" in md  # the paper column names its source


@pytest.mark.slow
def test_tiny_ablation_writes_17_records_and_resumes_after_a_kill(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    trained: list[str] = []
    real_train = runner.train_stage.run

    def counting_train(**kwargs):  # the real stage, counted; the 6th training is "killed" before it starts
        if len(trained) == 5 and not (tmp_path / "killed").exists():
            (tmp_path / "killed").touch()
            raise KeyboardInterrupt
        trained.append(kwargs["out_dir"].parent.name)
        return real_train(**kwargs)

    monkeypatch.setattr(runner.train_stage, "run", counting_train)
    argv = ["ablation", "--params", PARAMS, "--out", str(tmp_path / "out")]
    for item in TINY:
        argv += ["--set", item]
    assert cli.main(argv) == 130  # interrupted: "run the same command again to resume"
    assert len(trained) == 5 and not (tmp_path / "out" / "ablation.json").exists()
    first = list(trained)
    assert cli.main(argv) == 0
    assert len(trained) == 17 and trained[:5] == first and not set(trained[5:]) & set(first)

    records = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert [r["cell"] for r in records] == [c.cell_id for c in default_grid()]
    for r in records:
        assert all(0.0 <= r[m] <= 1.0 for m in ("rank1", "mAP", "mAP_official", "mINP"))
    assert (tmp_path / "out" / "ablation.png").stat().st_size > 0
    assert (
        "| D-sphere-warmup-random | D | sphere | on | random |"
        in (tmp_path / "out" / "ablation.md").read_text()
    )

    assert cli.main(argv) == 0 and len(trained) == 17, "a finished ablation trains nothing again"
    client = mlflow.MlflowClient()
    parent = json.loads((tmp_path / "out" / runner.PARENT_FILE).read_text())["run_id"]
    children = [client.get_run(r["run_id"]) for r in records]
    assert all(c.data.tags["mlflow.parentRunId"] == parent for c in children)
    assert client.get_run(parent).data.metrics["D-sphere-warmup-random.mAP"] == pytest.approx(
        records[-1]["mAP"]
    )
