"""KFP component: the ExitHandler's final task; after a failed or cancelled run it marks the MLflow runs
left RUNNING FAILED, deletes TrainJobs and (unless kept) the run's checkpoint folder (stages.cleanup)."""

from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def cleanup(
    status: PipelineTaskFinalStatus,
    datasets: list,
    kfp_run: str,
    checkpoint_root: str = "",
    keep_checkpoints: bool = True,
    multi_node: bool = False,
    trainjob_namespace: str = "",
) -> str:
    """Run spherereid.stages.cleanup for this chain's final status; returns what it did, in words."""
    from spherereid.stages import cleanup as stage

    chain = stage.ChainStatus(
        state=status.state, task=status.pipeline_task_name or "", message=status.error_message or ""
    )
    res = stage.run(
        status=chain,
        kfp_run=kfp_run,
        datasets=[str(d) for d in datasets],
        checkpoint_root=checkpoint_root,
        keep_checkpoints=keep_checkpoints,
        multi_node=multi_node,
        trainjob_namespace=trainjob_namespace,
    )
    if not res.failed:
        return f"chain ended {status.state}: nothing to clean up"
    return (
        f"chain ended {status.state} ({chain.message or 'no message'}): runs marked FAILED "
        f"{res.runs_marked or 'none'}; TrainJobs deleted: {res.trainjobs_deleted or 'none'}; "
        f"checkpoints removed: {res.checkpoints_removed or 'none (kept or absent)'}"
    )
