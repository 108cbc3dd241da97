"""Run the same pipeline function on this machine with kfp.local: subprocesses in the current venv, or each
task in our image (`runner="docker"`, see pipeline.docker_runner)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from .compile import load_pipeline_module
from .docker_runner import docker_runner
from .settings import LOCAL_SETTINGS, ClusterSettings, PipelineError, pipeline_arguments

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUNNERS = ("subprocess", "docker")


def run_local(
    *,
    out_dir: str | Path,
    params_path: str | Path = "params.yaml",
    datasets: list[str] | None = None,
    raw_root: str = "",
    overrides: dict[str, Any] | None = None,
    settings: ClusterSettings = LOCAL_SETTINGS,
    runner: str = "subprocess",
    image: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the pipeline under `<out_dir>/kfp`; return {dataset: {"metrics": {...}, "registration": {...},
    "cross": {test: {...}}, "dir": ...}} (read_matrix(Path(dir).parent) gives the whole matrix).

    `settings` (default LOCAL_SETTINGS) can ask for scale-out: gpus_per_node=2 trains with two gloo
    processes under torchrun here (kfp.local ignores the GPU request itself). `runner="docker"` runs every
    task in `image` through a Docker API (a daemon, or podman's socket via DOCKER_HOST)."""
    import kfp.local

    arguments = pipeline_arguments(params_path)
    if datasets:
        arguments["datasets"] = list(datasets)
    arguments.update(overrides or {})
    if raw_root:
        arguments["raw_root"] = str(Path(raw_root).resolve())
    root = Path(out_dir).resolve() / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local_runner, settings, bound = _runner(
        runner, root=root, image=image, settings=settings, raw_root=raw_root
    )
    if runner == "subprocess":
        _create_local_store()
    kfp.local.init(runner=local_runner, pipeline_root=str(root))
    pipeline_fn = load_pipeline_module(bound).build_pipeline(settings)
    try:
        # kfp.local prints its own and the tasks' logs to stdout: send them to stderr, keep stdout for results
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # "settings [...] have no effect in the current local runner", "custom base image": expected here
            warnings.filterwarnings("ignore", category=UserWarning, module=r"kfp\.local")
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"kfp\.local")
            pipeline_fn(**arguments)
    except RuntimeError as exc:  # kfp.local: "Task ... finished with status FAILURE" (its log is above)
        first = _ANSI.sub("", str(exc)).splitlines()[0]
        raise PipelineError(f"local pipeline run failed: {first} (task log above)") from None
    new = sorted(set(root.iterdir()) - before)
    if not new:
        raise PipelineError(f"{root}: the local run wrote no output directory")
    return collect_results(new[-1])


def _create_local_store() -> None:
    """Create a sqlite MLflow store's tables now: tasks running in parallel (one per dataset) would race
    to create them ("duplicate column name")."""
    from spherereid.tracking.client import client, tracking_uri

    uri = tracking_uri()
    if uri.startswith("sqlite:"):
        c = client(uri)
        c.search_experiments(max_results=1)
        c.search_registered_models(max_results=1)


def _runner(
    name: str, *, root: Path, image: str | None, settings: ClusterSettings, raw_root: str
) -> tuple[Any, ClusterSettings, str | None]:
    """(kfp.local runner, settings, image the components bind to; None: the subprocess runner's default)."""
    import kfp.local

    if name == "docker":
        return docker_runner(root=root, image=image, settings=settings, raw_root=raw_root)
    if name == "subprocess":
        return kfp.local.SubprocessRunner(use_venv=False), settings, None
    raise PipelineError(f"unknown runner '{name}': choose one of {', '.join(RUNNERS)}")


def _artifact_metadata(task_dir: Path, output: str) -> dict[str, Any]:
    executor_output = json.loads((task_dir / "executor_output.json").read_text())
    return executor_output["artifacts"][output]["artifacts"][0].get("metadata", {})


def read_matrix(run_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """The matrix task's matrix.json ({train: {test: {rank1, mAP, mAP_official, mINP}}}); {} without one."""
    task = Path(run_dir) / "matrix"
    if not (task / "executor_output.json").is_file():
        return {}
    executor_output = json.loads((task / "executor_output.json").read_text())
    cross = Path(executor_output["artifacts"]["cross"]["artifacts"][0]["uri"])
    return json.loads((cross / "matrix.json").read_text())


def collect_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per dataset: the evaluate task's Metrics values, the register task's registration metadata and
    the dataset's row of the cross-dataset matrix (`cross`: {test: metrics})."""
    results: dict[str, dict[str, Any]] = {}
    matrix = read_matrix(run_dir)
    for iteration in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if not (iteration / "register").is_dir():
            continue
        dataset = _artifact_metadata(iteration / "preprocess", "prepared").get("dataset", iteration.name)
        results[dataset] = {
            "metrics": _artifact_metadata(iteration / "evaluate", "metrics"),
            "registration": _artifact_metadata(iteration / "register", "registration"),
            "cross": matrix.get(dataset, {}),
            "dir": str(iteration),
        }
    return results
