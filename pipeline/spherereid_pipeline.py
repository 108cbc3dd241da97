"""The @dsl.pipeline: for each dataset (ParallelFor) preprocess -> train (GPU) -> evaluate -> register.

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

from kfp import dsl, kubernetes

from components.evaluate import evaluate as evaluate_component
from components.preprocess import preprocess as preprocess_component
from components.register import register as register_component
from components.train import train as train_component

from .settings import CHECKPOINT_MOUNT, REQUIRE_CUDA_ENV, ClusterSettings

PIPELINE_NAME = "spherereid"


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


def _small(task: dsl.PipelineTask, settings: ClusterSettings) -> dsl.PipelineTask:
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


def _train(prep: dsl.PipelineTask, dataset, sections: dict, settings: ClusterSettings) -> dsl.PipelineTask:
    """The train task on preprocess's output: GPUs, retries, the checkpoint dir (PVC) and scale-out."""
    ckpt = (
        f"{CHECKPOINT_MOUNT}/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}/{dataset}" if settings.checkpoint_pvc else ""
    )
    fit = train_component(
        prepared=prep.outputs["prepared"],
        model=sections["model"],
        loss=sections["loss"],
        sampler=sections["sampler"],
        optim=sections["optim"],
        schedule=sections["schedule"],
        train=sections["train"],
        transform=sections["transform"],
        checkpoint_dir=ckpt,
        scale=json.dumps(settings.scale_out(_train_image())),
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER if settings.nodes > 1 else "",
    )
    return _gpu_train(fit, settings)


def _stages_for(dataset, settings: ClusterSettings, *, sections: dict, sources: dict) -> None:
    """preprocess -> train -> evaluate -> register for one dataset, each with its cluster settings."""
    prep = preprocess_component(
        dataset=dataset, data=sections["data"], synthetic=sections["synthetic"], **sources
    )
    _small(prep, settings).set_caching_options(True)
    fit = _train(prep, dataset, sections, settings)
    ev = evaluate_component(
        prepared=prep.outputs["prepared"],
        trained=fit.outputs["trained"],
        evaluate=sections["evaluate"],
        transform=sections["transform"],
    )
    _small(ev, settings)
    if settings.evaluate_gpus > 0:
        _on_gpus(ev, settings, settings.evaluate_gpus)
    reg = register_component(
        trained=fit.outputs["trained"],
        evaluation=ev.outputs["evaluation"],
        prepared=prep.outputs["prepared"],  # ONNX parity (register.export_onnx) is shown on it
        register=sections["register"],
    )
    _small(reg, settings).set_caching_options(False)


def build_pipeline(settings: ClusterSettings | None = None) -> Callable:
    """The pipeline function for these cluster settings (the same function compiles and runs locally)."""
    settings = settings or ClusterSettings()

    @dsl.pipeline(name=PIPELINE_NAME, description="SphereReID: preprocess, train, evaluate, register")
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
        sections = dict(
            data=data, synthetic=synthetic, transform=transform, model=model, loss=loss, sampler=sampler,
            optim=optim, schedule=schedule, train=train, evaluate=evaluate, register=register,
        )  # fmt: skip
        sources = dict(raw_root=raw_root, data_repo=data_repo, data_rev=data_rev, data_path=data_path)
        with dsl.ParallelFor(datasets, parallelism=settings.parallelism) as dataset:
            _stages_for(dataset, settings, sections=sections, sources=sources)

    return spherereid_pipeline


spherereid_pipeline = build_pipeline()
