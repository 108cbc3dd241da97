"""The @dsl.pipeline: for each dataset (ParallelFor) preprocess -> train (GPU) -> evaluate -> register,
then the cross-dataset matrix: each model on every dataset (a second ParallelFor) and a summary task.

The quality gate is in the graph: evaluate returns rank1, mAP, gate ("passed"/"failed") and gate_reason;
a dsl.If runs register only when the gate passed, the dsl.Else branch writes a Markdown artifact saying
why nothing was registered (and closes the training run). An ExitHandler around the whole loop (KFP
allows it only at the outermost scope) runs the cleanup task at the end: after a failure or cancellation
it marks the MLflow runs left RUNNING FAILED, deletes TrainJobs and, unless keep_checkpoints_on_failure,
the run's checkpoint folder. Every task has a display name, the image pull secrets and a pod deadline;
the run has a TTL and an active deadline (ClusterSettings).

Cross-dataset matrix (the DVC stages cross_evaluate and matrix run the same code): after every
chain, a cross_evaluate task per dataset gets dsl.Collected lists of all prepared sets, trained models
and evaluations, picks its own by the artifacts' "dataset" metadata, evaluates its model on every
dataset and tags the version the training run was registered as (none when the gate refused it); the
matrix task gathers them (dsl.Collected) into matrix.json/md/png and a Markdown artifact.

Hyper-parameters are dict parameters, one per params.yaml section, with no defaults here: compile,
submit and run-local fill them from params.yaml. Cluster settings (GPU, secrets, retries) are
ClusterSettings, fixed at compile time. kfp.local ignores resources and kubernetes settings with a
warning but honours env vars and retries, so run-local builds the same function with LOCAL_SETTINGS.

Retries and resume: train.run resumes from <out_dir>/checkpoints/last.pt. A task's output directory is
new on every attempt, so with `--checkpoint-pvc NAME` train works in /checkpoints/<run id>/<dataset> on
that PVC (stable across retries of one run) and copies the result, without checkpoints, to its Model
artifact. Without a PVC a retried train starts over. The run id in that path also means train is never
served from the KFP cache when a PVC is used; preprocess and evaluate still are.

Scale-out (ClusterSettings.gpus_per_node, nodes): with one node the train task asks for gpus_per_node GPUs
and runs `torchrun --standalone` in its pod; with several it submits a Kubeflow Trainer TrainJob (named
from the run id) on the torch-distributed runtime and follows it; the job's pods share the checkpoint PVC.
"""

import json
from collections.abc import Callable
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Input, Model

from components.cleanup import cleanup as cleanup_component
from components.cross_evaluate import cross_evaluate as cross_evaluate_component
from components.evaluate import evaluate as evaluate_component
from components.gate_report import gate_report as gate_report_component
from components.matrix import matrix as matrix_component
from components.preprocess import preprocess as preprocess_component
from components.register import register as register_component
from components.train import train as train_component
from spherereid.config import TRAIN_SECTIONS
from spherereid.contracts import CHECKPOINT_MOUNT, KFP_RUN_ENV, REQUIRE_CUDA_ENV

from .settings import ClusterSettings

PIPELINE_NAME = "spherereid"


# What the KFP UI shows for each task (the graph's node labels).
DISPLAY_NAMES = {
    "preprocess": "Preprocess dataset",
    "train": "Train model",
    "evaluate": "Evaluate (rank-1, mAP, quality gate)",
    "register": "Register model version",
    "gate_report": "Quality gate refused: report",
    "cleanup": "Clean up after failure",
    "cross_matrix": "Cross-dataset evaluation",
    "cross_evaluate": "Cross-evaluate on every dataset",
    "matrix": "Cross-dataset matrix (summary)",
    "ablation_summary": "Ablation table (summary)",
}
# The pod's pipeline run id (a label KFP puts on every task pod) as KFP_RUN_ID: the training run's
# kfp_run_id tag, by which the cleanup task finds it.
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"


def _cluster_basics(
    task: dsl.PipelineTask, settings: ClusterSettings, role: str, timeout_s: int
) -> dsl.PipelineTask:
    """Display name, image pull secrets, the pod deadline and KFP_RUN_ID for every task."""
    task.set_display_name(DISPLAY_NAMES[role])
    if settings.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(settings.image_pull_secrets))
    if timeout_s > 0:
        kubernetes.set_timeout(task, timeout_s)
    kubernetes.use_field_path_as_env(task, env_name=KFP_RUN_ENV, field_path=RUN_ID_FIELD)
    return task


def _with_env(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
    """Credentials from the Kubernetes Secret (never literals) plus the non-secret endpoints."""
    if settings.secret_keys:
        kubernetes.use_secret_as_env(task, settings.secret_name, {k: k for k in settings.secret_keys})
    if settings.optional_secret_keys:
        kubernetes.use_secret_as_env(
            task, settings.secret_name, {k: k for k in settings.optional_secret_keys}, optional=True
        )
    for name, value in settings.env.items():
        task.set_env_variable(name, value)
    return task


def _small(task: dsl.PipelineTask, settings: ClusterSettings, role: str) -> dsl.PipelineTask:
    _cluster_basics(task, settings, role, settings.task_timeout_s)
    return (
        _with_env(task, settings)
        .set_cpu_request(settings.task_cpu_request)
        .set_memory_request(settings.task_memory_request)
    )


def _train_image() -> str:
    """The image the train component was compiled with: the TrainJob runs the same one."""
    return train_component.component_spec.implementation.container.image


def _on_gpus(task: dsl.PipelineTask, settings: ClusterSettings, count: int) -> dsl.PipelineTask:
    """`count` GPUs on a GPU node (train in one pod, evaluate's extraction); with settings.require_cuda
    CUDA is then required, not optional."""
    task.set_accelerator_type(settings.accelerator_type).set_accelerator_limit(count)
    kubernetes.add_node_selector(task, *settings.gpu_node_selector)
    kubernetes.add_toleration(task, key=settings.gpu_toleration_key, operator="Exists", effect="NoSchedule")
    if settings.require_cuda:
        task.set_env_variable(REQUIRE_CUDA_ENV, "1")
    return task


def _gpu_train(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
    """GPU request, GPU-node placement, retries with backoff and (optionally) the checkpoint PVC.

    With several nodes the task only submits and follows a TrainJob (which asks for the GPUs): it stays a
    small CPU task. With several GPUs in one pod, NCCL gets a memory-backed /dev/shm."""
    _cluster_basics(task, settings, "train", settings.train_timeout_s)
    _with_env(task, settings)
    if settings.nodes > 1:
        task.set_cpu_request(settings.task_cpu_request).set_memory_request(settings.task_memory_request)
    else:
        task.set_cpu_request(settings.train_cpu_request)
        task.set_memory_request(settings.train_memory_request).set_memory_limit(settings.train_memory_limit)
    if settings.nodes == 1 and settings.gpus_per_node > 0:
        _on_gpus(task, settings, settings.gpus_per_node)
    if settings.nodes == 1 and settings.gpus_per_node > 1:
        kubernetes.empty_dir_mount(
            task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=settings.shm_size
        )
    if settings.train_retries > 0:
        task.set_retry(
            num_retries=settings.train_retries,
            backoff_duration=settings.retry_backoff,
            backoff_factor=settings.retry_backoff_factor,
        )
    if settings.checkpoint_pvc:
        kubernetes.mount_pvc(task, pvc_name=settings.checkpoint_pvc, mount_path=CHECKPOINT_MOUNT)
    return task


def _pipeline_config(settings: ClusterSettings) -> dsl.PipelineConfig:
    """The run's TTL and deadline (0 = unset)."""
    return dsl.PipelineConfig(
        ttl_seconds_after_finished=settings.ttl_seconds_after_finished or None,
        active_deadline_seconds=settings.active_deadline_s or None,
    )


def _cleanup_task(settings: ClusterSettings, datasets: Any) -> dsl.PipelineTask:
    """The ExitHandler's final task (mounts the checkpoint PVC when there is one)."""
    task = cleanup_component(
        datasets=datasets,
        kfp_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        checkpoint_root=CHECKPOINT_MOUNT if settings.checkpoint_pvc else "",
        keep_checkpoints=settings.keep_checkpoints_on_failure,
        multi_node=settings.nodes > 1,
        trainjob_namespace=settings.trainjob_namespace,
    )
    _small(task, settings, "cleanup").set_caching_options(False)
    if settings.checkpoint_pvc:
        kubernetes.mount_pvc(task, pvc_name=settings.checkpoint_pvc, mount_path=CHECKPOINT_MOUNT)
    return task


def _chain(settings: ClusterSettings, dataset: Any, a: dict[str, Any]) -> dict[str, Any]:
    """preprocess -> train -> evaluate -> (gate passed) register | (failed) gate report, for one dataset."""
    sources = {k: a[k] for k in ("raw_root", "data_repo", "data_rev", "data_path")}
    prep = preprocess_component(dataset=dataset, data=a["data"], synthetic=a["synthetic"], **sources)
    _small(prep, settings, "preprocess").set_caching_options(True)
    ckpt = (
        f"{CHECKPOINT_MOUNT}/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}/{dataset}" if settings.checkpoint_pvc else ""
    )
    sections = {name: a[name] for name in TRAIN_SECTIONS}
    fit = train_component(
        prepared=prep.outputs["prepared"],
        checkpoint_dir=ckpt,
        scale=json.dumps(settings.scale_out(_train_image())),
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER if settings.nodes > 1 else "",
        **sections,
    )
    _gpu_train(fit, settings)
    ev = evaluate_component(
        prepared=prep.outputs["prepared"],
        trained=fit.outputs["trained"],
        evaluate=a["evaluate"],
        transform=a["transform"],
        register=a["register"],
    )
    _small(ev, settings, "evaluate")
    if settings.evaluate_gpus > 0:
        _on_gpus(ev, settings, settings.evaluate_gpus)
    with dsl.If(ev.outputs["gate"] == "passed", name="quality-gate-passed"):
        reg = register_component(
            trained=fit.outputs["trained"],
            evaluation=ev.outputs["evaluation"],
            prepared=prep.outputs["prepared"],  # ONNX parity (register.export_onnx) is shown on it
            register=a["register"],
        )
        _small(reg, settings, "register").set_caching_options(False)
    with dsl.Else(name="quality-gate-failed"):
        refused = gate_report_component(
            trained=fit.outputs["trained"],
            rank1=ev.outputs["rank1"],
            mAP=ev.outputs["mAP"],
            reason=ev.outputs["gate_reason"],
            register=a["register"],
        )
        _small(refused, settings, "gate_report").set_caching_options(False)
    return {
        "prepared": prep.outputs["prepared"],
        "trained": fit.outputs["trained"],
        "evaluation": ev.outputs["evaluation"],
    }


def _cross_pipeline(settings: ClusterSettings) -> Callable:
    """The cross-dataset matrix as a sub-pipeline: per dataset (ParallelFor) its model on every dataset's
    query/gallery, then one task gathering the results (dsl.Collected) into the matrix.

    A sub-pipeline because KFP 2.17 cannot compile a dsl.Collected artifact list consumed inside another
    ParallelFor; handed to a sub-pipeline as list inputs, the lists reach its loop. Its inputs come from
    the whole per-dataset loop, so it starts after every chain, register and gate report included."""

    @dsl.pipeline(name="cross-dataset-matrix", description="Each model on every dataset; the matrix")
    def cross_matrix(
        datasets: list,
        prepared: Input[list[Dataset]],
        trained: Input[list[Model]],
        evaluations: Input[list[Artifact]],
        evaluate: dict,
    ):
        with dsl.ParallelFor(datasets, parallelism=settings.parallelism) as dataset:
            xev = cross_evaluate_component(
                model=dataset,
                tests=datasets,
                prepared=prepared,
                trained=trained,
                evaluations=evaluations,
                evaluate=evaluate,
            )
            _small(xev, settings, "cross_evaluate").set_caching_options(False)  # tags the registry
            if settings.evaluate_gpus > 0:
                _on_gpus(xev, settings, settings.evaluate_gpus)
        summary = matrix_component(results=dsl.Collected(xev.outputs["results"]))
        _small(summary, settings, "matrix")

    return cross_matrix


def build_pipeline(settings: ClusterSettings | None = None) -> Callable:
    """The pipeline function for these cluster settings (the same function compiles and runs locally)."""
    settings = settings or ClusterSettings()
    cross_matrix = _cross_pipeline(settings)  # defined out here: KFP allows no pipeline definition inside

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="SphereReID: preprocess, train, evaluate, register",
        pipeline_config=_pipeline_config(settings),
    )
    def spherereid_pipeline(
        datasets: list,
        data: dict,
        synthetic: dict,
        transform: dict,
        model: dict,
        loss: dict,
        sampler: dict,
        optim: dict,
        schedule: dict,
        train: dict,
        evaluate: dict,
        register: dict,
        data_repo: str = "",
        data_rev: str = "",
        data_path: str = "data/raw/{dataset}",
        raw_root: str = "",
    ):
        args = dict(locals())
        # KFP allows an ExitHandler only at the outermost scope: one cleanup task covers every dataset
        with dsl.ExitHandler(_cleanup_task(settings, datasets), name="cleanup-on-failure"):
            with dsl.ParallelFor(datasets, parallelism=settings.parallelism) as dataset:
                chain = _chain(settings, dataset, args)
            # every model on every dataset (a 1x1 matrix with one dataset: its own evaluation)
            cross = cross_matrix(
                datasets=datasets,
                prepared=dsl.Collected(chain["prepared"]),
                trained=dsl.Collected(chain["trained"]),
                evaluations=dsl.Collected(chain["evaluation"]),
                evaluate=evaluate,
            )
            cross.set_display_name(DISPLAY_NAMES["cross_matrix"])

    return spherereid_pipeline


spherereid_pipeline = build_pipeline()
