"""KFP component: prepared set -> trained model (resumes from checkpoint_dir/checkpoints/last.pt)."""

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
):
    """Run spherereid.stages.train; with checkpoint_dir (a PVC path) a retried task resumes there."""
    import shutil
    from pathlib import Path

    from spherereid.param_coercion import build_from_struct
    from spherereid.stages import train as stage
    from spherereid.tracking import runs as tracking

    names = ("model", "loss", "sampler", "optim", "schedule", "train", "transform")
    given = (model, loss, sampler, optim, schedule, train, transform)
    sections = {name: build_from_struct(name, values) for name, values in zip(names, given, strict=True)}
    work = Path(checkpoint_dir or trained.path)
    res = stage.run(prepared_dir=Path(prepared.path), out_dir=work, **sections)
    if checkpoint_dir:
        shutil.copytree(work, trained.path, ignore=shutil.ignore_patterns("checkpoints"), dirs_exist_ok=True)
    lineage = {key: prepared.metadata.get(key, "") for key in ("dataset", "revision", "data_hash")}
    # No dvc.lock in the pod: the raw data's DVC hash and git revision come from preprocess's metadata.
    data_tags = {"dvc_data_hash": lineage["data_hash"], "data_revision": lineage["revision"]}
    tracking.set_tags(tracking.read_run_ref(work / stage.RUN_FILE), {k: v for k, v in data_tags.items() if v})
    trained.metadata.update(lineage, epochs=res.epochs, final_loss=res.final_loss, mlflow_run_id=res.run_id)
