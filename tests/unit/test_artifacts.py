"""spherereid/contracts.py is the one home of the names stages, components and reports hand each other:
no other file of model/spherereid, components/ or pipeline/ writes one of them out, and the names are
distinct.

What counts as writing a name out (the rule the scan keeps):
- a string constant (f-string constant parts included) that is not a docstring, and
- whose whole value is a name of contracts.py, or which holds no whitespace and has a name as one of its
  "/"-separated parts ("checkpoints/last.pt", the "/model.pt" of f"{out}/model.pt").
Prose (help texts, error and log messages: they hold spaces) may mention a name. Comments are not in the
syntax tree. Scanned names: the file and folder names, checkpoint companions and environment variables;
the layout folders train/eval/register/outputs are not (they are also config section and split names).
A same-spelled string that means something else is listed, with its meaning, in ELSEWHERE.
"""

import ast
from pathlib import Path

import pytest

from spherereid import contracts
from spherereid.contracts import EvalDir, JobLayout, TrainDir
from spherereid.training import checkpoint

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = "model/spherereid/contracts.py"
LAYOUT = {"OUTPUTS_DIR", "TRAIN_DIR", "EVAL_DIR", "REGISTER_DIR"}
ALL_NAMES = {key: value for key, value in vars(contracts).items() if key.isupper() and isinstance(value, str)}
NAMES = {value: key for key, value in ALL_NAMES.items() if key not in LAYOUT}
ELSEWHERE = {
    ("model/spherereid/modeling/backbones.py", "checkpoints"): "torch.hub's own cache folder",
    ("model/spherereid/launch/trainjob.py", "checkpoints"): "the Kubernetes volume's name",
}
FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in ("model/spherereid", "components", "pipeline")
    for p in (ROOT / folder).rglob("*.py")
    if p.relative_to(ROOT).as_posix() != CONTRACTS
)


def _literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in `path` that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    )


def _named(value: str) -> str | None:
    """The contract name `value` spells out, by the module docstring's rule, or None."""
    if value in NAMES:
        return value
    if any(ch.isspace() for ch in value):
        return None
    return next((part for part in value.split("/") if part in NAMES), None)


def _spelled_out(rel: str, path: Path) -> list[str]:
    hits = []
    for line, value in _literals(path):
        name = _named(value)
        if name is not None and (rel, name) not in ELSEWHERE:
            hits.append(f"{rel}:{line}: {value!r} spells contracts.{NAMES[name]}")
    return hits


def test_the_scan_covers_the_stages_reporting_components_and_pipeline():
    stages = ("model/spherereid/stages/train.py", "model/spherereid/stages/evaluate.py")
    others = ("model/spherereid/reporting/summary.py", "components/train.py", "pipeline/settings.py")
    for rel in (*stages, *others):
        assert rel in FILES


@pytest.mark.parametrize("rel", FILES)
def test_no_file_outside_contracts_spells_out_a_contract_name(rel):
    assert _spelled_out(rel, ROOT / rel) == []


def test_the_names_are_distinct_and_cover_the_stage_contract():
    values = list(ALL_NAMES.values())
    assert len(values) == len(set(values))
    for name in ("model.pt", "mlflow_run.json", "chain.json", "metrics.json", "features.npz", "cmc.png"):
        assert name in NAMES
    for name in ("train_result.json", "registration.json", "history.csv", "manifest.csv", "dataset.json"):
        assert name in NAMES
    for name in ("checkpoints", "last.pt", ".train.lock", ".sha256", ".corrupt", ".stale", ".prev"):
        assert name in NAMES
    for name in ("SPHEREREID_REQUIRE_CUDA", "KFP_RUN_ID", "MLFLOW_TRACKING_URI", "SPHEREREID_IMAGE"):
        assert name in NAMES


def test_a_spelled_out_name_is_found_and_prose_is_not(tmp_path):
    source = tmp_path / "stage.py"
    source.write_text(
        '"""Writes metrics.json."""\n\n'
        'OUT = "metrics.json"\n'
        'CKPT = "checkpoints/last.pt"\n'
        'def f(out):\n    return f"{out}/model.pt"\n'
        'HELP = f"writes {OUT} and model.pt"  # prose\n'
        'ENV = "SPHEREREID_REQUIRE_CUDA"\n'
    )
    assert _spelled_out("x.py", source) == [
        "x.py:3: 'metrics.json' spells contracts.METRICS_FILE",
        "x.py:4: 'checkpoints/last.pt' spells contracts.CHECKPOINTS_DIR",
        "x.py:6: '/model.pt' spells contracts.MODEL_FILE",
        "x.py:8: 'SPHEREREID_REQUIRE_CUDA' spells contracts.REQUIRE_CUDA_ENV",
    ]


def test_the_path_helpers_spell_the_layout_dvc_yaml_uses(tmp_path):
    job = JobLayout(tmp_path / "outputs", "market1501")
    base = tmp_path / "outputs" / "market1501"
    assert job.train == TrainDir(base / "train") and job.eval == EvalDir(base / "eval")
    assert job.registration == base / "register" / "registration.json"
    assert job.train.last_checkpoint == base / "train" / "checkpoints" / "last.pt"
    assert job.train.model == base / "train" / "model.pt"
    assert job.eval.metrics == base / "eval" / "metrics.json"
    assert checkpoint.previous(job.train.last_checkpoint).name == "last.prev.pt"
    assert checkpoint.sidecar(job.train.last_checkpoint).name == "last.pt.sha256"
    dvc_yaml = (ROOT / "dvc.yaml").read_text()
    for path in (job.train.model, job.train.checkpoints, job.eval.metrics, job.registration):
        assert path.relative_to(tmp_path).as_posix().replace("market1501", "${item}") in dvc_yaml
