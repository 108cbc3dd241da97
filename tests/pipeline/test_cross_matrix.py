"""The cross-dataset matrix in the KFP pipeline (issue 21): compiled structure, and the cross_evaluate and
matrix components called directly (their python_func) on hand-made artifacts and a real sqlite registry."""

import json
from pathlib import Path

import pytest
import yaml
from kfp import dsl

from pipeline.compile import compile_pipeline
from pipeline.settings import pipeline_arguments
from spherereid.experiments.matrix import to_markdown

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:0.2.0"
METRICS = {"rank1": 0.5, "mAP": 0.25, "mAP_official": 0.125, "mINP": 0.0625}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = compile_pipeline(
        image=IMAGE, out=tmp_path_factory.mktemp("c") / "p.yaml", params_path=ROOT / "params.yaml"
    )
    return list(yaml.safe_load_all(out.read_text()))[0]


def test_the_matrix_sub_pipeline_runs_after_every_chain_on_their_collected_artifacts(spec):
    handler = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    cross = handler["cross-dataset-matrix"]
    assert cross["dependentTasks"] == ["for-loop-2"]  # the per-dataset loop, gate branches included
    artifacts = cross["inputs"]["artifacts"]
    assert {
        name: (a["taskOutputArtifact"]["producerTask"], a["taskOutputArtifact"]["outputArtifactKey"])
        for name, a in artifacts.items()
    } == {  # dsl.Collected: the loop's outputs, as lists
        "prepared": ("for-loop-2", "pipelinechannel--preprocess-prepared"),
        "trained": ("for-loop-2", "pipelinechannel--train-trained"),
        "evaluations": ("for-loop-2", "pipelinechannel--evaluate-evaluation"),
    }
    params = cross["inputs"]["parameters"]
    assert params["datasets"] == {"componentInputParameter": "pipelinechannel--datasets"}
    inputs = spec["components"]["comp-cross-dataset-matrix"]["inputDefinitions"]["artifacts"]
    assert all(inputs[name]["isArtifactList"] for name in ("prepared", "trained", "evaluations"))


def test_cross_evaluations_fan_out_over_datasets_and_the_matrix_collects_them(spec):
    dag = spec["components"]["comp-cross-dataset-matrix"]["dag"]["tasks"]
    assert sorted(dag) == ["for-loop-1", "matrix"]
    loop = dag["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--datasets"
    task = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["cross-evaluate"]
    params = task["inputs"]["parameters"]
    assert params["model"] == {"componentInputParameter": "pipelinechannel--datasets-loop-item"}
    assert params["tests"] == {"componentInputParameter": "pipelinechannel--datasets"}  # every dataset
    assert task["cachingOptions"].get("enableCache", False) is False  # it tags the registry
    summary = dag["matrix"]
    assert summary["dependentTasks"] == ["for-loop-1"]
    assert summary["inputs"]["artifacts"]["results"]["taskOutputArtifact"] == {
        "outputArtifactKey": "pipelinechannel--cross-evaluate-results",
        "producerTask": "for-loop-1",
    }
    outputs = spec["components"]["comp-matrix"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert outputs["cross"]["artifactType"]["schemaTitle"] == "system.Artifact"
    assert spec["components"]["comp-matrix"]["inputDefinitions"]["artifacts"]["results"]["isArtifactList"]


def _artifact(cls, path: Path, metadata=None):
    return cls(name=path.name, uri=str(path), metadata=dict(metadata or {}))


def _component(name):
    import importlib

    return getattr(importlib.import_module(f"components.{name}"), name)


def test_cross_evaluate_matches_by_dataset_and_tags_only_a_registered_version(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from spherereid.stages import cross_evaluate as stage
    from spherereid.tracking import runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("spherereid-b", artifact_location=str(tmp_path / "art"))
    run_b, run_a = c.create_run(exp).info.run_id, c.create_run(exp).info.run_id
    c.create_registered_model("spherereid-b")
    c.create_model_version("spherereid-b", source=str(tmp_path / "art"), run_id=run_b)
    c.set_tag(run_b, "registered_model", "spherereid-b")
    c.set_tag(run_b, "registered_version", "1")
    prepared, trained, evaluations = [], [], []
    for name, run in (("b", run_b), ("a", run_a)):  # the lists in another order than the tests
        for kind, items, cls in (
            ("p", prepared, dsl.Dataset),
            ("t", trained, dsl.Model),
            ("e", evaluations, dsl.Artifact),
        ):
            (tmp_path / f"{kind}-{name}").mkdir()
            (tmp_path / f"{kind}-{name}" / "which").write_text(f"{kind}-{name}")
            items.append(_artifact(cls, tmp_path / f"{kind}-{name}", {"dataset": name}))
        runs.write_run_ref(tmp_path / f"t-{name}" / "mlflow_run.json", runs.RunRef(run, exp, uri))
    seen = []

    def fake(*, model, train_dir, eval_dir, prepared_root, tests, out_dir, evaluate):
        # what the real run() reads: its model's folders and <prepared_root>/<test> for every test
        linked = {t: (prepared_root / t / "which").read_text() for t in tests}
        seen.append((model, train_dir.name, eval_dir.name, linked, evaluate.batch_size))
        return {
            t: {"train": model, "test": t, "metrics": {**METRICS, "rank1": 0.5 if t == model else 0.25}}
            for t in tests
        }

    monkeypatch.setattr(stage, "run", fake)
    raw = {**pipeline_arguments(ROOT / "params.yaml")["evaluate"], "batch_size": 16.0}  # a Struct float
    for model in ("b", "a"):
        metrics = _artifact(dsl.Metrics, tmp_path / f"m-{model}")
        results = _artifact(dsl.Artifact, tmp_path / f"r-{model}")
        said = _component("cross_evaluate").python_func(
            model=model,
            tests=["a", "b"],
            prepared=prepared,
            trained=trained,
            evaluations=evaluations,
            evaluate=raw,
            results=results,
            metrics=metrics,
        )
        assert results.metadata == {"dataset": model, "tests": ["a", "b"]}
        other = "a" if model == "b" else "b"
        assert metrics.metadata == {
            f"{model}.rank1": 0.5,
            f"{model}.mAP": 0.25,
            f"{other}.rank1": 0.25,
            f"{other}.mAP": 0.25,
        }
        if model == "b":
            assert said == (
                "tagged xeval.a.rank1, xeval.a.mAP, xeval.b.rank1, xeval.b.mAP; "
                "model card: cross-dataset table"
            )
        else:  # the gate refused a's model: no version, no tags
            assert said == "not registered (quality gate refused): no xeval tags"
    assert seen == [
        ("b", "t-b", "e-b", {"a": "p-a", "b": "p-b"}, 16),
        ("a", "t-a", "e-a", {"a": "p-a", "b": "p-b"}, 16),
    ]
    tags = c.get_model_version("spherereid-b", "1").tags
    assert {k: v for k, v in tags.items() if k.startswith("xeval.")} == {
        "xeval.a.rank1": "0.2500",
        "xeval.a.mAP": "0.2500",
        "xeval.b.rank1": "0.5000",
        "xeval.b.mAP": "0.2500",
    }
    card = c.get_model_version("spherereid-b", "1").description
    assert "| b (own) | 50.00% |" in card and "| a | 25.00% |" in card


def test_matrix_writes_the_dvc_matrix_files_and_the_markdown_artifact(tmp_path):
    results = []
    for train, row in {"a": {"a": 0.75, "b": 0.25}, "b": {"a": 0.5}}.items():  # b -> b is missing
        folder = tmp_path / f"r-{train}"
        folder.mkdir()
        for test, rank1 in row.items():
            body = {"train": train, "test": test, "metrics": {**METRICS, "rank1": rank1}}
            (folder / f"{test}.json").write_text(json.dumps(body))
        results.append(_artifact(dsl.Artifact, folder, {"dataset": train}))
    cross = _artifact(dsl.Artifact, tmp_path / "cross")
    report = _artifact(dsl.Markdown, tmp_path / "report.md")
    _component("matrix").python_func(results=results, cross=cross, report=report)
    want = {
        "a": {"a": {**METRICS, "rank1": 0.75}, "b": {**METRICS, "rank1": 0.25}},
        "b": {"a": {**METRICS, "rank1": 0.5}},
    }
    assert json.loads((tmp_path / "cross" / "matrix.json").read_text()) == want
    md = (tmp_path / "report.md").read_text()
    assert md == (tmp_path / "cross" / "matrix.md").read_text() == to_markdown(want)
    assert "| b | 50.00% | missing |" in md and "| a | **75.00%** | 25.00% |" in md
    assert (tmp_path / "cross" / "matrix.png").stat().st_size > 1000
    assert cross.metadata == {"trains": ["a", "b"], "pairs": 3}


def test_matrix_without_results_is_an_error_naming_them(tmp_path):
    from spherereid.experiments.matrix import MatrixError

    (tmp_path / "empty").mkdir()
    with pytest.raises(MatrixError, match="the collected cross-evaluations: no cross-evaluation results"):
        _component("matrix").python_func(
            results=[_artifact(dsl.Artifact, tmp_path / "empty")],
            cross=_artifact(dsl.Artifact, tmp_path / "c"),
            report=_artifact(dsl.Markdown, tmp_path / "r.md"),
        )
