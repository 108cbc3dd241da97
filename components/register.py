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
    from spherereid.stages import tasks

    done = tasks.register(trained, evaluation, prepared, register=register, out_dir=registration.path)
    registration.metadata.update(done.metadata)
