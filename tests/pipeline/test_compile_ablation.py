"""`python -m pipeline compile --ablation`: the grid's cells fan out (train -> evaluate each), one summary
task gathers their evaluations (dsl.Collected) into ablation.json/md; --set and --grid as `spherereid
ablation`; and the summary component called directly on hand-made evaluations."""

import json
from pathlib import Path

import pytest
import yaml
from kfp import dsl

from pipeline.__main__ import main
from spherereid.config import load_params
from spherereid.experiments.grid import default_grid, narrow, parse_filters
from spherereid.experiments.tables import METRICS, to_markdown

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:0.3.0"


def _compile(tmp_path, *flags):
    out = tmp_path / "ablation.yaml"
    argv = [
        "compile",
        "--ablation",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
    ]
    assert main([*argv, *flags]) == 0
    return list(yaml.safe_load_all(out.read_text()))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(spec, kubernetes executors) of the default grid with two --set overrides."""
    spec, platform = _compile(
        tmp_path_factory.mktemp("a"), "--set", "train.epochs=3", "--set", "model.backbone=tiny"
    )
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _cells(spec):
    return spec["root"]["inputDefinitions"]["parameters"]["cells"]["defaultValue"]


def test_the_default_grid_fans_out_17_cells_over_the_cells_parameter(compiled):
    spec, _ = compiled
    assert spec["pipelineInfo"]["name"] == "spherereid-ablation"
    cells = _cells(spec)
    assert len(cells) == 17
    assert [c["cell"]["cell"] for c in cells] == [c.cell_id for c in default_grid()]
    handler = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert sorted(handler) == ["ablation-summary", "for-loop-2", "preprocess"]
    loop = handler["for-loop-2"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--cells"
    assert loop["dependentTasks"] == ["preprocess"]  # one prepared set for every cell
    body = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]
    assert sorted(body) == ["evaluate", "train"]
    train = body["train"]["inputs"]["parameters"]
    for section in ("model", "loss", "sampler", "schedule"):  # the cell's own sections
        assert train[section] == {
            "componentInputParameter": "pipelinechannel--cells-loop-item",
            "parameterExpressionSelector": f'parseJson(string_value)["{section}"]',
        }
    assert train["optim"] == {"componentInputParameter": "pipelinechannel--optim"}  # shared
    assert body["evaluate"]["inputs"]["parameters"]["cell"]["parameterExpressionSelector"] == (
        'parseJson(string_value)["cell"]'
    )
    assert body["evaluate"]["dependentTasks"] == ["train"]


def test_the_summary_collects_every_cells_evaluation(compiled):
    spec, _ = compiled
    summary = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["ablation-summary"]
    assert summary["dependentTasks"] == ["for-loop-2"]
    assert summary["inputs"]["artifacts"]["evaluations"]["taskOutputArtifact"] == {
        "outputArtifactKey": "pipelinechannel--evaluate-evaluation",
        "producerTask": "for-loop-2",
    }
    assert summary["inputs"]["parameters"]["cells"] == {"componentInputParameter": "pipelinechannel--cells"}
    component = spec["components"]["comp-ablation-summary"]
    assert component["inputDefinitions"]["artifacts"]["evaluations"]["isArtifactList"] is True
    outputs = component["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert outputs["ablation"]["artifactType"]["schemaTitle"] == "system.Artifact"


def test_set_applies_to_every_cell_and_the_cells_set_their_axes(compiled):
    spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["train"]["defaultValue"]["epochs"] == 3
    assert params["dataset"]["defaultValue"] == load_params(ROOT / "params.yaml").datasets[0]
    assert "model" not in params and "datasets" not in params  # per cell / one dataset
    for cell, item in zip(default_grid(), _cells(spec), strict=True):
        assert item["model"]["backbone"] == "tiny" and item["model"]["head"] == cell.head
        assert item["loss"]["type"] == cell.loss and item["sampler"]["type"] == cell.sampler
        assert item["schedule"]["warmup_epochs"] == (5 if cell.warmup == "on" else 0)


def test_cluster_basics_on_every_task(compiled):
    spec, k8s = compiled
    executors = spec["deploymentSpec"]["executors"]
    tasks = ("preprocess", "train", "evaluate", "ablation-summary", "cleanup")
    assert sorted(executors) == sorted(f"exec-{t}" for t in tasks)
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    assert executors["exec-train"]["container"]["resources"]["accelerator"]["resourceCount"] == "1"
    for name in tasks:
        assert k8s[f"exec-{name}"]["fieldPathAsEnv"][0]["name"] == "KFP_RUN_ID"
        assert "activeDeadlineSeconds" in k8s[f"exec-{name}"]
    names = {
        t: task["taskInfo"]["name"]
        for t, task in spec["components"]["comp-exit-handler-1"]["dag"]["tasks"].items()
    }
    assert names["ablation-summary"] == "Ablation table (summary)"
    assert spec["root"]["dag"]["tasks"]["cleanup"]["triggerPolicy"] == {
        "strategy": "ALL_UPSTREAM_TASKS_COMPLETED"
    }


def test_grid_narrows_the_cells(tmp_path):
    spec, _ = _compile(tmp_path, "--grid", "head=A,D", "--grid", "loss=sphere")
    want = narrow(default_grid(), parse_filters(["head=A,D", "loss=sphere"]))
    assert [c["cell"]["cell"] for c in _cells(spec)] == [c.cell_id for c in want]
    assert len(want) == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--grid", "head=Z"], "--grid head=Z: values must be among A,B,C,D"),
        (["--set", "train.epochz=3"], "--set train.epochz: unknown key"),
        (["--checkpoint-pvc", "ckpt"], "--ablation: --checkpoint-pvc and --nodes > 1 are not supported"),
    ],
)
def test_bad_ablation_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    out = tmp_path / "a.yaml"
    argv = [
        "compile",
        "--ablation",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
    ]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not out.exists()


def test_set_and_grid_need_ablation(tmp_path, capsys):
    argv = ["compile", "--image", IMAGE, "--out", str(tmp_path / "p.yaml"), "--grid", "head=A"]
    assert main(argv) == 2
    assert "--set and --grid go with --ablation" in capsys.readouterr().err


def test_the_summary_component_writes_the_clis_tables_in_grid_order(tmp_path):
    from components.ablation_summary import ablation_summary
    from spherereid.experiments.cells import cell_items

    cells = narrow(default_grid(), parse_filters(["head=A", "loss=sphere"]))
    items = cell_items(load_params(ROOT / "params.yaml"), cells)
    evaluations = []
    for i, item in enumerate(reversed(items)):  # collected in another order
        folder = tmp_path / f"e{i}"
        folder.mkdir()
        values = {m: 0.125 * (i + 1) for m in METRICS}
        (folder / "metrics.json").write_text(json.dumps({**values, "num_queries": 6}))
        metadata = {"dataset": "synthetic", "mlflow_run_id": f"r{i}", **item["cell"]}
        evaluations.append(dsl.Artifact(name=f"e{i}", uri=str(folder), metadata=metadata))
    ablation = dsl.Artifact(name="ablation", uri=str(tmp_path / "ablation"), metadata={})
    report = dsl.Markdown(name="report", uri=str(tmp_path / "report.md"), metadata={})
    ablation_summary.python_func(cells=items, evaluations=evaluations, ablation=ablation, report=report)
    records = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert [r["cell"] for r in records] == ["A-sphere-warmup-balanced", "A-sphere-nowarmup-balanced"]
    assert [r["rank1"] for r in records] == [0.25, 0.125]  # the first cell was collected second
    assert [r["run_id"] for r in records] == ["r1", "r0"]
    assert records[1] == {
        "cell": "A-sphere-nowarmup-balanced",
        "head": "A",
        "loss": "sphere",
        "warmup": "off",
        "sampler": "balanced",
        **{m: 0.125 for m in METRICS},
        "run_id": "r0",
    }
    md = (tmp_path / "report.md").read_text()
    assert md == (tmp_path / "ablation" / "ablation.md").read_text() == to_markdown(records)
    assert (tmp_path / "ablation" / "ablation.png").stat().st_size > 1000
    assert ablation.metadata == {"cells": ["A-sphere-warmup-balanced", "A-sphere-nowarmup-balanced"]}
