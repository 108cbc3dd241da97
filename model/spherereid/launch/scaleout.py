"""Train on several GPUs or nodes from a pipeline task: torchrun in this pod, or a TrainJob across nodes.

`ScaleOut` is the compile-time description (a plain dict in the pipeline, built from ClusterSettings).
`train_scaled` writes the train sections to a params file next to the outputs and runs
`spherereid.stages.train` with several processes: with one node, `torchrun --standalone` here; with
several, a TrainJob whose pods mount the same ReadWriteMany volume, so the prepared set is copied there.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import SECTIONS
from ..contracts import CHECKPOINT_MOUNT
from .torchrun import TRAIN_MODULE, LaunchError, run_torchrun, torchrun_argv
from .trainjob import LABEL_DATASET, LABEL_RUN, TrainJobSpec, build_trainjob, job_name, validate_trainjob

log = logging.getLogger(__name__)

PARAMS_FILE = "train-params.yaml"


@dataclass(frozen=True)
class ScaleOut:
    """How many processes train, and (for nodes > 1) how the TrainJob looks."""

    nodes: int = 1
    gpus_per_node: int = 1
    runtime: str = "torch-distributed"
    namespace: str = ""  # empty: the pipeline pod's own namespace
    image: str = ""
    timeout_s: int = 7 * 24 * 3600
    accelerator_type: str = "nvidia.com/gpu"
    cpu: str = "4"
    memory: str = "32G"
    shm_size: str = "8Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    toleration_keys: tuple[str, ...] = ()
    secret_name: str = ""
    secret_keys: tuple[str, ...] = ()
    optional_secret_keys: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pvc_name: str = ""
    mount_path: str = CHECKPOINT_MOUNT

    def __post_init__(self) -> None:
        for name in ("nodes", "gpus_per_node", "timeout_s"):
            value = getattr(self, name)
            if float(value) != int(value) or int(value) < 1:
                raise LaunchError(f"scale-out setting {name} must be a whole number >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))  # a KFP struct turns ints into floats
        for name in ("toleration_keys", "secret_keys", "optional_secret_keys"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.nodes > 1 and not self.pvc_name:
            raise LaunchError(
                "nodes > 1 needs a ReadWriteMany checkpoint PVC shared by the TrainJob's pods: "
                "pass --checkpoint-pvc"
            )

    @property
    def processes(self) -> int:
        return self.nodes * self.gpus_per_node

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ScaleOut:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise LaunchError(f"unknown scale-out setting '{unknown[0]}' (known: {', '.join(sorted(names))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (a KFP dict parameter)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def write_train_params(path: Path, sections: dict[str, Any], dataset: str) -> Path:
    """A complete params file: the given section dataclasses, defaults for the sections train ignores."""
    raw: dict[str, Any] = {"datasets": [dataset]}
    for name, cls in SECTIONS.items():
        value = sections.get(name) or cls()
        raw[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def trainjob_for(
    scale: ScaleOut, *, run_id: str, dataset: str, namespace: str, args: list[str]
) -> dict[str, Any]:
    """The validated TrainJob manifest for this task."""
    spec = TrainJobSpec(
        name=job_name(run_id, dataset),
        namespace=namespace,
        image=scale.image,
        runtime=scale.runtime,
        nodes=scale.nodes,
        gpus_per_node=scale.gpus_per_node,
        args=tuple(args),
        accelerator_type=scale.accelerator_type,
        cpu=scale.cpu,
        memory=scale.memory,
        shm_size=scale.shm_size,
        node_selector=dict(scale.node_selector),
        toleration_keys=scale.toleration_keys,
        secret_name=scale.secret_name,
        secret_keys=scale.secret_keys,
        optional_secret_keys=scale.optional_secret_keys,
        env=dict(scale.env),
        pvc_name=scale.pvc_name,
        mount_path=scale.mount_path,
        deadline_s=scale.timeout_s,
        labels={LABEL_RUN: run_id, LABEL_DATASET: dataset},
    )
    return validate_trainjob(build_trainjob(spec))


def train_scaled(
    scale: ScaleOut,
    *,
    prepared_dir: Path,
    out_dir: Path,
    sections: dict[str, Any],
    dataset: str,
    run_id: str = "",
    launcher: Any = None,
    poll_s: float = 10.0,
) -> None:
    """Run the train stage with `scale.processes` processes; its outputs land in `out_dir` as usual.

    `launcher` (a TrainJobLauncher) defaults to one built from the pod's service account; `poll_s` is how
    often the job's status is read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = write_train_params(out_dir / PARAMS_FILE, sections, dataset)
    if scale.nodes == 1:
        args = ["--params", str(params), "--prepared", str(prepared_dir), "--out", str(out_dir)]
        run_torchrun(torchrun_argv(scale.gpus_per_node, TRAIN_MODULE, args))
        return
    if not str(out_dir.resolve()).startswith(scale.mount_path.rstrip("/") + "/"):
        raise LaunchError(
            f"{out_dir} is not on the shared volume {scale.mount_path}: "
            "multi-node training needs --checkpoint-pvc"
        )
    shared_prepared = out_dir.with_name(out_dir.name + "-prepared")
    shutil.copytree(prepared_dir, shared_prepared, dirs_exist_ok=True)  # the job's pods cannot see our inputs
    args = ["--params", str(params), "--prepared", str(shared_prepared), "--out", str(out_dir)]
    from .launcher import TrainJobLauncher, current_namespace, in_cluster_api_client

    namespace = scale.namespace or current_namespace()
    manifest = trainjob_for(scale, run_id=run_id, dataset=dataset, namespace=namespace, args=args)
    launcher = launcher or TrainJobLauncher(in_cluster_api_client(), namespace)
    launcher.run(manifest, timeout_s=scale.timeout_s, poll_s=poll_s, drain_s=poll_s)
