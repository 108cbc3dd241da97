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
    inputs = dict(locals())  # first: the inputs by name (the train sections are read by their one list)
    import json
    from pathlib import Path

    from spherereid.launch.scaleout import ScaleOut, train_scaled
    from spherereid.param_coercion import fit_config_from_structs
    from spherereid.stages import train as stage
    from spherereid.stages.artifacts import RUN_FILE, copy_train_output
    from spherereid.tracking import runs as tracking

    config = fit_config_from_structs(inputs)
    work, plan = Path(checkpoint_dir or trained.path), ScaleOut.from_dict(json.loads(scale or "{}"))
    lineage = {key: prepared.metadata.get(key, "") for key in ("dataset", "revision", "data_hash")}
    if plan.processes > 1:
        train_scaled(plan, prepared_dir=Path(prepared.path), out_dir=work, sections=config.sections(),
                     dataset=lineage["dataset"] or "data", run_id=run_id)  # fmt: skip
        res = stage.read_result(work)
    else:
        res = stage.run(prepared_dir=Path(prepared.path), out_dir=work, config=config)
    if checkpoint_dir:
        copy_train_output(work, Path(trained.path))
    # No dvc.lock in the pod: the raw data's DVC hash and git revision come from preprocess's metadata.
    data_tags = {"dvc_data_hash": lineage["data_hash"], "data_revision": lineage["revision"]}
    tracking.set_tags(tracking.read_run_ref(work / RUN_FILE), {k: v for k, v in data_tags.items() if v})
    trained.metadata.update(lineage, epochs=res.epochs, final_loss=res.final_loss, mlflow_run_id=res.run_id)
