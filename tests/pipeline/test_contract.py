"""One contract, three front ends: dvc.yaml params, each stage's run() and each component's inputs agree.

The components are also called directly (their python_func) with params.yaml values as KFP delivers
them (through a protobuf Struct: every number a float) and the stage's run() replaced by a recorder: the
recorded call must bind to the real run() signature and carry exactly the params.yaml dataclasses.
"""

import dataclasses
import importlib
import inspect
import json
import re
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kfp import dsl

from spherereid.config import SECTIONS, TRAIN_SECTIONS, FitConfig, load_params

ROOT = Path(__file__).resolve().parents[2]
SECTION_OF = {cls: name for name, cls in SECTIONS.items()}
# component -> the stage modules whose run() it calls
CALLS = {
    "preprocess": ("preprocess", "synthesize"),
    "train": ("train",),
    "evaluate": ("evaluate",),
    "register": ("register",),
}


def _stage(name: str):
    if not (ROOT / "model" / "spherereid" / "stages" / f"{name}.py").is_file():
        pytest.skip(f"spherereid/stages/{name}.py does not exist yet")
    return importlib.import_module(f"spherereid.stages.{name}")


def _component(name: str):
    return getattr(importlib.import_module(f"components.{name}"), name)


def _config_kwargs(run) -> dict[str, str]:
    """run() keyword -> section name, for the keywords typed with a config dataclass."""
    hints = typing.get_type_hints(run)
    return {p: SECTION_OF[hints[p]] for p in inspect.signature(run).parameters if hints.get(p) in SECTION_OF}


def _fit_config_kwargs(run) -> set[str]:
    """run() keywords typed FitConfig: each stands for the TRAIN_SECTIONS."""
    hints = typing.get_type_hints(run)
    return {p for p in inspect.signature(run).parameters if hints.get(p) is FitConfig}


def _sections_read(run) -> set[str]:
    """The params sections run() reads: its section keywords, and TRAIN_SECTIONS through a FitConfig."""
    return set(_config_kwargs(run).values()) | (set(TRAIN_SECTIONS) if _fit_config_kwargs(run) else set())


def _as_struct(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_as_struct(v) for v in value]
    return {k: _as_struct(v) for k, v in value.items()}


# evaluate also decides the quality gate (its output parameters), with register's thresholds, and
# carries the ablation pipeline's grid cell (`cell`, id and settings) into its evaluation's metadata
GATE_INPUTS = {"evaluate": {"register", "cell"}}


@pytest.mark.parametrize("component", sorted(CALLS))
def test_component_inputs_match_the_stage_signatures(component):
    runs = [_stage(s).run for s in CALLS[component]]
    spec = _component(component).component_spec
    dict_inputs = {name for name, i in spec.inputs.items() if i.type == "Dict"}
    wanted: set[str] = set()
    for run in runs:
        kwargs = _config_kwargs(run)
        assert all(k == section for k, section in kwargs.items()), f"{run.__module__}: keyword != section"
        wanted |= _sections_read(run)
        for name, p in inspect.signature(run).parameters.items():
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (
                f"{run.__module__}.run({name}) must be keyword-only"
            )
            plain = name not in {*kwargs, *_fit_config_kwargs(run)} and not name.endswith("_dir")
            plain = plain and p.default is inspect.Parameter.empty
            if plain and run.__module__.endswith(component):  # e.g. preprocess's `dataset`
                assert name in spec.inputs, f"component {component} lacks input {name}"
    assert dict_inputs == wanted | GATE_INPUTS.get(component, set())


def test_dvc_yaml_params_match_the_stage_signatures():
    path = ROOT / "dvc.yaml"
    if not path.is_file():
        pytest.skip("dvc.yaml does not exist yet")
    stages = yaml.safe_load(path.read_text())["stages"]
    checked = 0
    for name, stage in stages.items():
        body = stage.get("do", stage)
        found = re.search(r"spherereid\.stages\.(\w+)", str(body.get("cmd", "")))
        if not found:
            continue
        sections = set()
        for entry in body.get("params", []):
            keys = [k for v in entry.values() for k in (v or [])] if isinstance(entry, dict) else [entry]
            sections |= {str(k).split(".")[0] for k in keys}
        sections.discard("datasets")  # the dataset list (cross_evaluate's test sets) is no config section
        run = _stage(found.group(1)).run
        assert sections == _sections_read(run), f"dvc.yaml stage {name}"
        checked += 1
    assert checked >= 4


class _Recorder:
    """Stands in for a stage's run(): the call must bind to the real signature; records it, fakes outputs."""

    def __init__(self, real, outputs):
        self.real, self.outputs, self.calls = real, outputs, []

    def __call__(self, **kwargs):
        inspect.signature(self.real).bind(**kwargs)
        self.calls.append(kwargs)
        return self.outputs(**kwargs)


def _artifact(cls, path: Path, metadata=None):
    return cls(name=path.name, uri=str(path), metadata=dict(metadata or {}))


def _struct_params():
    params = load_params(ROOT / "params.yaml")
    raw = {
        f.name: _as_struct(dataclasses.asdict(getattr(params, f.name)))
        for f in dataclasses.fields(params)
        if dataclasses.is_dataclass(getattr(params, f.name))
    }
    return params, raw


def test_preprocess_component_calls_run_with_the_params(tmp_path, monkeypatch):
    stage = _stage("preprocess")
    params, raw = _struct_params()
    (tmp_path / "raw" / "market1501").mkdir(parents=True)

    def fake(*, out_dir, **_):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "report.md").write_text("# report\n")

    rec = _Recorder(stage.run, fake)
    monkeypatch.setattr(stage, "run", rec)
    prepared = _artifact(dsl.Dataset, tmp_path / "prepared")
    report = _artifact(dsl.Markdown, tmp_path / "report.md")
    _component("preprocess").python_func(
        dataset="market1501",
        data=raw["data"],
        synthetic=raw["synthetic"],
        prepared=prepared,
        report=report,
        raw_root=str(tmp_path / "raw"),
    )
    (call,) = rec.calls
    assert call["data"] == params.data and call["dataset"] == "market1501"
    assert Path(call["raw_dir"]) == tmp_path / "raw" / "market1501"
    assert Path(call["out_dir"]) == tmp_path / "prepared"
    assert (tmp_path / "report.md").read_text() == "# report\n"
    assert prepared.metadata["dataset"] == "market1501" and prepared.metadata["origin"] == "local"


def _write_run_ref(out_dir, run_id="r1"):
    from spherereid.tracking import runs as tracking

    tracking.write_run_ref(Path(out_dir) / "mlflow_run.json", tracking.RunRef(run_id, "1", "sqlite:///x.db"))


def _record_tags(monkeypatch) -> list:
    from spherereid.tracking import runs as tracking

    tagged = []
    monkeypatch.setattr(tracking, "set_tags", lambda ref, tags: tagged.append((ref.run_id, dict(tags))))
    return tagged


def test_train_component_calls_run_with_the_params(tmp_path, monkeypatch):
    stage = _stage("train")
    params, raw = _struct_params()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def fake(*, out_dir, **_):
        _write_run_ref(out_dir)
        return SimpleNamespace(epochs=3, final_loss=0.5, run_id="r1")

    rec = _Recorder(stage.run, fake)
    monkeypatch.setattr(stage, "run", rec)
    tagged = _record_tags(monkeypatch)
    metadata = {"dataset": "synthetic", "data_hash": "h", "revision": "c0ffee"}
    prepared = _artifact(dsl.Dataset, tmp_path / "prepared", metadata)
    trained = _artifact(dsl.Model, tmp_path / "trained")
    _component("train").python_func(prepared=prepared, trained=trained, **{n: raw[n] for n in TRAIN_SECTIONS})
    (call,) = rec.calls
    assert call["config"] == FitConfig.from_params(params)
    assert type(call["config"].train.epochs) is int
    assert Path(call["out_dir"]) == tmp_path / "trained"
    assert trained.metadata == {
        "dataset": "synthetic",
        "revision": "c0ffee",
        "data_hash": "h",
        "epochs": 3,
        "final_loss": 0.5,
        "mlflow_run_id": "r1",
    }
    # the pod has no dvc.lock: the raw data's DVC hash and revision reach the MLflow run as tags
    assert tagged == [("r1", {"dvc_data_hash": "h", "data_revision": "c0ffee"})]


def test_train_component_with_a_checkpoint_dir_trains_there_and_copies_without_checkpoints(
    tmp_path, monkeypatch
):
    stage = _stage("train")
    _, raw = _struct_params()

    def fake(*, out_dir, **_):
        (Path(out_dir) / "checkpoints").mkdir(parents=True)
        (Path(out_dir) / "checkpoints" / "last.pt").write_bytes(b"c")
        (Path(out_dir) / "model.pt").write_bytes(b"m")
        _write_run_ref(out_dir, "r")
        return SimpleNamespace(epochs=1, final_loss=1.0, run_id="r")

    monkeypatch.setattr(stage, "run", _Recorder(stage.run, fake))
    _record_tags(monkeypatch)
    trained = _artifact(dsl.Model, tmp_path / "trained")
    _component("train").python_func(
        prepared=_artifact(dsl.Dataset, tmp_path / "p"),
        trained=trained,
        checkpoint_dir=str(tmp_path / "pvc"),
        **{n: raw[n] for n in TRAIN_SECTIONS},
    )
    assert (tmp_path / "pvc" / "checkpoints" / "last.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "trained").iterdir()) == ["mlflow_run.json", "model.pt"]


def test_evaluate_component_logs_every_metric_and_embeds_the_figures(tmp_path, monkeypatch):
    stage = _stage("evaluate")
    params, raw = _struct_params()
    png = b"\x89PNG\r\n\x1a\nfake"
    values = {"rank1": 0.75, "mAP": 0.5, "num_queries": 12}

    def fake(*, out_dir, **_):
        Path(out_dir).mkdir(parents=True)
        for name in ("cmc.png", "ranked_lists.png"):
            (Path(out_dir) / name).write_bytes(png)
        return SimpleNamespace(metrics=values)

    rec = _Recorder(stage.run, fake)
    monkeypatch.setattr(stage, "run", rec)
    metrics = _artifact(dsl.Metrics, tmp_path / "metrics")
    report = _artifact(dsl.HTML, tmp_path / "report.html")
    evaluation = _artifact(dsl.Artifact, tmp_path / "evaluation")
    cell = {"cell": "A-sphere-warmup-balanced", "head": "A", "loss": "sphere", "warmup": "on", "sampler": "x"}
    rank1, m_ap, gate, reason = _component("evaluate").python_func(
        prepared=_artifact(dsl.Dataset, tmp_path / "p", {"dataset": "synthetic"}),
        trained=_artifact(dsl.Model, tmp_path / "t", {"mlflow_run_id": "r7"}),
        evaluate=raw["evaluate"],
        transform=raw["transform"],
        evaluation=evaluation,
        metrics=metrics,
        report=report,
        register={**raw["register"], "min_rank1": 0.8, "min_map": 0.3},
        cell=cell,
    )
    # what the ablation summary matches collected evaluations by (the main pipeline passes no cell)
    assert evaluation.metadata == {"dataset": "synthetic", "mlflow_run_id": "r7", **cell}
    # the gate's verdict as output parameters: rank1 0.75 < 0.8 fails, mAP 0.5 >= 0.3 passes
    assert (rank1, m_ap, gate) == (0.75, 0.5, "failed")
    assert reason == "quality gate failed: rank1 0.7500 < min_rank1 0.8000"
    (call,) = rec.calls
    assert call["evaluate"] == params.evaluate and call["transform"] == params.transform
    assert metrics.metadata == {"rank1": 0.75, "mAP": 0.5, "num_queries": 12.0}
    html = Path(report.path).read_text()
    assert html.count('src="data:image/png;base64,iVBORw0KGgpmYWtl"') == 2  # base64 of the fake PNG


def test_register_component_calls_run_and_keeps_the_registration(tmp_path, monkeypatch):
    stage = _stage("register")
    params, raw = _struct_params()
    info = {"registered": True, "model_name": "spherereid-synthetic", "version": "1", "aliases": ["a"]}

    def fake(*, out_dir, **_):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "registration.json").write_text(json.dumps(info))

    rec = _Recorder(stage.run, fake)
    monkeypatch.setattr(stage, "run", rec)
    registration = _artifact(dsl.Artifact, tmp_path / "registration")
    _component("register").python_func(
        trained=_artifact(dsl.Model, tmp_path / "t"),
        evaluation=_artifact(dsl.Artifact, tmp_path / "e"),
        prepared=_artifact(dsl.Dataset, tmp_path / "p"),
        register=raw["register"],
        registration=registration,
    )
    (call,) = rec.calls
    assert call["register"] == params.register
    assert Path(call["train_dir"]) == tmp_path / "t" and Path(call["eval_dir"]) == tmp_path / "e"
    assert Path(call["prepared_dir"]) == tmp_path / "p"  # ONNX parity (register.export_onnx) is shown on it
    assert registration.metadata == info


# the components that call library code besides CALLS' (cross-dataset matrix, ablation summary)
LIBRARY_CALLS = {
    "cross_evaluate": "spherereid.stages",
    "matrix": "spherereid.experiments.matrix",
    "ablation_summary": "spherereid.experiments.tables",
}
COMPONENTS = sorted(p.stem for p in (ROOT / "components").glob("*.py") if p.stem != "__init__")


def _size(component: str) -> tuple[int, set[str]]:
    """(lines from `def` to the function's end, the modules it imports from) of a component function."""
    import ast
    import textwrap

    source = textwrap.dedent(inspect.getsource(_component(component).python_func))
    (fn,) = ast.parse(source).body
    return fn.end_lineno - fn.lineno + 1, {n.module for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)}


@pytest.mark.parametrize("component", COMPONENTS)
def test_components_stay_thin(component):
    """DEVELOPERS.md: a component is under 25 lines, `def` to its last line (signature, docstring, imports,
    the library call, its outputs); its work is library code (stages.tasks calls the stage's run(), as
    DVC does)."""
    lines, imported = _size(component)
    assert lines < 25, (
        f"components/{component}.py: {lines} lines; move the logic into spherereid.stages.tasks"
    )
    assert LIBRARY_CALLS.get(component, "spherereid.stages") in imported


def test_every_stage_with_a_component_is_measured():
    assert {*CALLS, *LIBRARY_CALLS, "cleanup", "gate_report"} <= set(COMPONENTS)
