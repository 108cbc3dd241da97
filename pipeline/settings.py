"""Cluster-side settings of the pipeline (compile-time) and the arguments read from params.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spherereid.config import load_params

CHECKPOINT_MOUNT = "/checkpoints"


class PipelineError(ValueError):
    """A pipeline CLI cannot proceed; the message names the input and the fix."""


@dataclass(frozen=True)
class ClusterSettings:
    """Kubernetes settings baked into the compiled pipeline (not hyper-parameters: those are params.yaml)."""

    accelerator_type: str = "nvidia.com/gpu"
    accelerator_count: int = 1
    train_cpu_request: str = "4"
    train_memory_request: str = "16G"
    train_memory_limit: str = "32G"
    task_cpu_request: str = "1"  # preprocess, evaluate, register
    task_memory_request: str = "4G"
    gpu_node_selector: tuple[str, str] = ("nvidia.com/gpu.present", "true")
    gpu_toleration_key: str = "nvidia.com/gpu"  # tolerated with operator Exists, effect NoSchedule
    train_retries: int = 3
    retry_backoff: str = "60s"
    retry_backoff_factor: float = 2.0
    # Kubernetes Secret holding credentials; each listed key becomes the env var of the same name.
    secret_name: str = "spherereid-credentials"
    secret_keys: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    optional_secret_keys: tuple[str, ...] = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    # Non-secret endpoints (set as plain env vars).
    env: dict[str, str] = field(
        default_factory=lambda: {
            "MLFLOW_TRACKING_URI": "http://mlflow.kubeflow.svc.cluster.local:5000",
            "MLFLOW_S3_ENDPOINT_URL": "http://minio-service.kubeflow.svc.cluster.local:9000",
            "AWS_ENDPOINT_URL": "http://minio-service.kubeflow.svc.cluster.local:9000",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    # PVC for train checkpoints: a retried train task resumes from <mount>/<run id>/<dataset>. Empty: the
    # checkpoint lives in the task's own output dir and a retry starts over.
    checkpoint_pvc: str = ""
    parallelism: int = 0  # datasets trained at once; 0 = unlimited

    def replace(self, **changes: Any) -> ClusterSettings:
        """A copy with `changes`, ignoring None values (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# For kfp.local, which honours env vars and retries: no cluster endpoints (the caller's environment is
# inherited: MLFLOW_TRACKING_URI, or the local sqlite store), no retries (fail fast), no secrets.
LOCAL_SETTINGS = ClusterSettings(env={}, train_retries=0, secret_keys=(), optional_secret_keys=())


def pipeline_arguments(params_path: str | Path) -> dict[str, Any]:
    """Pipeline arguments from params.yaml (validated): `datasets` plus one dict per section."""
    params = load_params(params_path)
    args: dict[str, Any] = {"datasets": list(params.datasets)}
    for section in dataclasses.fields(params):
        value = getattr(params, section.name)
        if dataclasses.is_dataclass(value):
            args[section.name] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()
            }
    return args
