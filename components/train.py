"""KFP component: prepared set -> trained model (resumes from checkpoint_dir/checkpoints/last.pt).

With checkpoint_dir (a PVC path) a retried task resumes there. `scale` (spherereid.launch.scaleout.ScaleOut
as JSON) asking for several GPUs on one node runs `torchrun --standalone` in this pod; with several nodes
the task submits a Kubeflow Trainer TrainJob named from `run_id` (a retried task finds its own job), waits
for it and reads the result rank 0 wrote to checkpoint_dir.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def train(
    prepared: Input[Dataset],
    model: dict,
    loss: dict,
    sampler: dict,
    optim: dict,
    schedule: dict,
    train: dict,
    transform: dict,
    trained: Output[Model],
    checkpoint_dir: str = "",
    scale: str = "",
    run_id: str = "",
):
    """Run spherereid.stages.train here, under torchrun or as a TrainJob (see the module docstring)."""
    inputs = dict(locals())  # first: the inputs by name (the train sections, checkpoint_dir, scale, run_id)
    from spherereid.stages import tasks

    trained.metadata.update(tasks.train(inputs, prepared, trained.path).metadata)
