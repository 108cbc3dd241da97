"""Cluster-side settings of the pipeline (compile-time) and the arguments read from params.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spherereid.config import Params, load_params
from spherereid.contracts import (
    AWS_ENDPOINT_ENV,
    AWS_KEY_ID_ENV,
    AWS_SECRET_KEY_ENV,
    CHECKPOINT_MOUNT,
    MLFLOW_PASSWORD_ENV,
    MLFLOW_USERNAME_ENV,
    REQUIRE_CUDA_ENV,
    S3_ENDPOINT_ENV,
    TRACKING_URI_ENV,
)


class PipelineError(ValueError):
    """A pipeline CLI cannot proceed; the message names the input and the fix."""


@dataclass(frozen=True)
class ClusterSettings:
    """Kubernetes settings baked into the compiled pipeline (not hyper-parameters: those are params.yaml)."""

    accelerator_type: str = "nvidia.com/gpu"
    # Train scale-out: gpus_per_node GPUs (and processes) per node. One node: the train task asks for them
    # and runs torchrun --standalone (0 = no GPU, one process). nodes > 1: the train task submits a Kubeflow
    # Trainer TrainJob on the trainjob_runtime ClusterTrainingRuntime and needs a RWX checkpoint_pvc.
    gpus_per_node: int = 1
    nodes: int = 1
    trainjob_runtime: str = "torch-distributed"
    trainjob_namespace: str = ""  # empty: the namespace the pipeline runs in
    trainjob_timeout_s: int = 7 * 24 * 3600
    shm_size: str = "8Gi"  # memory-backed /dev/shm for NCCL when a pod runs several GPUs
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
    secret_keys: tuple[str, ...] = (AWS_KEY_ID_ENV, AWS_SECRET_KEY_ENV)
    optional_secret_keys: tuple[str, ...] = (MLFLOW_USERNAME_ENV, MLFLOW_PASSWORD_ENV)
    # Non-secret endpoints (set as plain env vars).
    env: dict[str, str] = field(
        default_factory=lambda: {
            TRACKING_URI_ENV: "http://mlflow.kubeflow.svc.cluster.local:5000",
            S3_ENDPOINT_ENV: "http://minio-service.kubeflow.svc.cluster.local:9000",
            AWS_ENDPOINT_ENV: "http://minio-service.kubeflow.svc.cluster.local:9000",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    # PVC for train checkpoints: a retried train task resumes from <mount>/<run id>/<dataset>. Empty: the
    # checkpoint lives in the task's own output dir and a retry starts over.
    checkpoint_pvc: str = ""
    parallelism: int = 0  # datasets trained at once; 0 = unlimited
    # A train task given GPUs gets SPHEREREID_REQUIRE_CUDA=1: train.device auto then means cuda, so a node
    # whose driver cannot run the image's CUDA fails at the first step instead of training on the CPU.
    require_cuda: bool = True
    evaluate_gpus: int = 0  # GPUs for the evaluate task (extraction in bf16); 0 = CPU
    # Cluster basics. Secrets of type kubernetes.io/dockerconfigjson for a private registry, on every pod.
    image_pull_secrets: tuple[str, ...] = ()
    # Pod deadlines (activeDeadlineSeconds; 0 = none): a hung task fails instead of holding its node. The
    # train pod's must outlast a TrainJob it follows (trainjob_timeout_s).
    train_timeout_s: int = 7 * 24 * 3600 + 3600
    task_timeout_s: int = 6 * 3600  # preprocess, evaluate, register, the gate report and the cleanup
    # The whole run (Argo workflow): its pods and resources are deleted this long after it finished, and it
    # is stopped after active_deadline_s; 0 = unset.
    ttl_seconds_after_finished: int = 14 * 24 * 3600
    active_deadline_s: int = 8 * 24 * 3600
    # After a failed or cancelled chain the cleanup task keeps the checkpoint folder (a retry of the run
    # resumes from it) unless this is False.
    keep_checkpoints_on_failure: bool = True

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 0:
            raise PipelineError(
                f"need nodes >= 1 and gpus_per_node >= 0, got {self.nodes}, {self.gpus_per_node}"
            )
        if self.nodes > 1 and (self.gpus_per_node < 1 or not self.checkpoint_pvc):
            raise PipelineError(
                "--nodes > 1 runs a Kubeflow Trainer TrainJob: it needs --gpus >= 1 and --checkpoint-pvc "
                "(a ReadWriteMany volume the job's pods share)"
            )
        for name in ("train_timeout_s", "task_timeout_s", "ttl_seconds_after_finished", "active_deadline_s"):
            if int(getattr(self, name)) < 0:
                raise PipelineError(f"{name} must be >= 0 seconds (0 = unset), got {getattr(self, name)}")

    def scale_out(self, image: str) -> dict[str, Any]:
        """The train component's scale-out plan (spherereid.launch.scaleout.ScaleOut as a plain dict)."""
        return {
            "nodes": self.nodes,
            "gpus_per_node": max(1, self.gpus_per_node),
            "runtime": self.trainjob_runtime,
            "namespace": self.trainjob_namespace,
            "image": image,
            "timeout_s": self.trainjob_timeout_s,
            "accelerator_type": self.accelerator_type,
            "cpu": self.train_cpu_request,
            "memory": self.train_memory_limit,
            "shm_size": self.shm_size,
            "node_selector": dict([self.gpu_node_selector]),
            "toleration_keys": [self.gpu_toleration_key],
            "secret_name": self.secret_name,
            "secret_keys": list(self.secret_keys),
            "optional_secret_keys": list(self.optional_secret_keys),
            "env": {**self.env, **({REQUIRE_CUDA_ENV: "1"} if self.require_cuda else {})},  # GPU pods
            "pvc_name": self.checkpoint_pvc,
            "mount_path": CHECKPOINT_MOUNT,
        }

    def replace(self, **changes: Any) -> ClusterSettings:
        """A copy with `changes`, ignoring None values (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# For kfp.local, which honours env vars and retries: no cluster endpoints (the caller's environment is
# inherited: MLFLOW_TRACKING_URI, or the local sqlite store), no retries (fail fast), no secrets.
LOCAL_SETTINGS = ClusterSettings(
    env={}, train_retries=0, secret_keys=(), optional_secret_keys=(), require_cuda=False
)


def pipeline_arguments(params_path: str | Path) -> dict[str, Any]:
    """Pipeline arguments from params.yaml (validated): `datasets` plus one dict per section."""
    return params_arguments(load_params(params_path))


def params_arguments(params: Params) -> dict[str, Any]:
    """`datasets` plus one plain dict per section of `params` (tuples as lists, as KFP passes them)."""
    args: dict[str, Any] = {"datasets": list(params.datasets)}
    for section in dataclasses.fields(params):
        value = getattr(params, section.name)
        if dataclasses.is_dataclass(value):
            args[section.name] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(value).items()
            }
    return args
