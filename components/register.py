"""KFP component: model + evaluation -> MLflow model version behind the quality gate (MLFLOW_TRACKING_URI)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def register(
    trained: Input[Model],
    evaluation: Input[Artifact],
    prepared: Input[Dataset],
    register: dict,
    registration: Output[Artifact],
):
    """Run spherereid.stages.register (same gate and aliases as DVC); keep registration.json."""
    import json
    from pathlib import Path

    from spherereid.contracts import REGISTRATION_FILE
    from spherereid.param_coercion import build_from_struct
    from spherereid.stages import register as stage

    out = Path(registration.path)
    stage.run(
        train_dir=Path(trained.path),
        eval_dir=Path(evaluation.path),
        out_dir=out,
        register=build_from_struct("register", register),
        prepared_dir=Path(prepared.path),
    )
    info = json.loads((out / REGISTRATION_FILE).read_text())
    registration.metadata.update(info)
