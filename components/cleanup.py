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
    inputs = dict(locals())  # first: the inputs by name
    from spherereid.stages import tasks

    return tasks.cleanup(inputs)
