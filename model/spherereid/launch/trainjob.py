"""A Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) for multi-node training.

The job references the cluster's torch-distributed runtime, runs our image with `torchrun -m
spherereid.stages.train ...` (the runtime injects PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, ... which
torchrun reads), requests the GPUs per node, and patches the runtime's `node` pods with the GPU node
selector and tolerations, the checkpoint PVC and a memory-backed /dev/shm. Credentials come from the
Kubernetes Secret as env vars (never literals). The name is derived from the pipeline run id and dataset,
so a retried task finds its own job. `validate_trainjob` round-trips the manifest through the
`kubeflow-trainer-api` models: a wrong type, a missing field or an unknown (stale) field is an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..contracts import CHECKPOINT_MOUNT
from .torchrun import TRAIN_MODULE, LaunchError

API_GROUP = "trainer.kubeflow.org"
API_VERSION = "v1alpha1"
PLURAL = "trainjobs"
NODE = "node"  # the torch runtime's replicated job and container name
PATCH_MANAGER = "spherereid"
SHM_VOLUME = "dshm"
LABEL_RUN = "spherereid/run-id"
LABEL_DATASET = "spherereid/dataset"


@dataclass(frozen=True)
class TrainJobSpec:
    """What varies between clusters and runs; everything else is fixed by the manifest builder."""

    name: str
    namespace: str
    image: str
    runtime: str  # name of the torch-distributed ClusterTrainingRuntime
    nodes: int
    gpus_per_node: int
    args: tuple[str, ...]  # arguments of spherereid.stages.train
    accelerator_type: str = "nvidia.com/gpu"
    cpu: str = "4"
    memory: str = "32G"
    shm_size: str = "8Gi"
    node_selector: dict[str, str] = field(default_factory=dict)
    toleration_keys: tuple[str, ...] = ()  # tolerated with operator Exists, effect NoSchedule
    secret_name: str = ""
    secret_keys: tuple[str, ...] = ()
    optional_secret_keys: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pvc_name: str = ""
    mount_path: str = CHECKPOINT_MOUNT
    deadline_s: int = 0  # activeDeadlineSeconds: the cluster ends the job even if the launcher is gone
    labels: dict[str, str] = field(default_factory=dict)


def job_name(run_id: str, dataset: str, prefix: str = "reid") -> str:
    """A DNS-1035 name (<= 40 chars) that is the same for every attempt of one run's task for `dataset`."""
    if not run_id:
        raise LaunchError("no pipeline run id: a TrainJob is named from it so a retried task finds its job")
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-")[:20].strip("-") or "data"
    digest = hashlib.sha256(f"{run_id}/{dataset}".encode()).hexdigest()[:10]
    return f"{prefix}-{slug}-{digest}"


def _label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")


def _env(spec: TrainJobSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    for keys, optional in ((spec.secret_keys, False), (spec.optional_secret_keys, True)):
        for key in keys:
            ref = {"name": spec.secret_name, "key": key, "optional": optional}
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _pod_patch(spec: TrainJobSpec) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}}
    ]
    mounts: list[dict[str, Any]] = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if spec.pvc_name:
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {"claimName": spec.pvc_name}})
        mounts.append({"name": "checkpoints", "mountPath": spec.mount_path})
    pod: dict[str, Any] = {"containers": [{"name": NODE, "volumeMounts": mounts}], "volumes": volumes}
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.toleration_keys:
        pod["tolerations"] = [
            {"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in spec.toleration_keys
        ]
    return pod


def build_trainjob(spec: TrainJobSpec) -> dict[str, Any]:
    """The TrainJob manifest (a plain dict in the API's camelCase) for `spec`."""
    if spec.nodes < 1 or spec.gpus_per_node < 1:
        raise LaunchError(f"nodes and gpus_per_node must be >= 1, got {spec.nodes} and {spec.gpus_per_node}")
    if not spec.runtime:
        raise LaunchError("no training runtime named: set the TrainJob runtime (e.g. torch-distributed)")
    limits = {spec.accelerator_type: str(spec.gpus_per_node), "cpu": spec.cpu, "memory": spec.memory}
    trainer: dict[str, Any] = {
        "image": spec.image,
        "command": ["torchrun", "-m", TRAIN_MODULE, *spec.args],
        "numNodes": spec.nodes,
        "numProcPerNode": spec.gpus_per_node,
        "resourcesPerNode": {"limits": limits, "requests": dict(limits)},
        "env": _env(spec),
    }
    patch = {
        "replicatedJobs": [{"name": NODE, "template": {"spec": {"template": {"spec": _pod_patch(spec)}}}}]
    }
    job_spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": API_GROUP, "kind": "ClusterTrainingRuntime", "name": spec.runtime},
        "trainer": trainer,
        "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": patch}}}],
    }
    if spec.deadline_s > 0:
        job_spec["activeDeadlineSeconds"] = int(spec.deadline_s)
    labels = {k: _label_value(v) for k, v in spec.labels.items()}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": job_spec,
    }


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """The first path where two manifests differ (for the error message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                return f"{path}.{key} (unknown to the TrainJob API)"
            if key not in a:
                return f"{path}.{key} (added by the TrainJob API)"
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return ""
    return "" if a == b else path or "<root>"


def validate_trainjob(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return `manifest` if it survives a round trip through the kubeflow-trainer-api models unchanged;
    raise LaunchError naming the first wrong or unknown field otherwise."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
    from pydantic import ValidationError

    try:
        back = TrainerV1alpha1TrainJob.from_dict(manifest).to_dict()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LaunchError(f"TrainJob manifest: {where}: {first['msg']}") from None
    if back != manifest:
        raise LaunchError(f"TrainJob manifest: field {_first_difference(manifest, back)} does not round-trip")
    return manifest
