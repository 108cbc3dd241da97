"""KFP component: one dataset's trained model on every dataset's query/gallery (stages.cross_evaluate).

The prepared sets, trained models and evaluations arrive as dsl.Collected lists from the per-dataset
chains and are matched by their "dataset" metadata (stages.collected), never by list position. When the
training run was registered (its `registered_version` tag), that version gets `xeval.<test>.<metric>`
tags and a cross-dataset table in its model card; a model the quality gate refused gets none.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def cross_evaluate(
    model: str,
    tests: list,
    prepared: Input[list[Dataset]],
    trained: Input[list[Model]],
    evaluations: Input[list[Artifact]],
    evaluate: dict,
    results: Output[Artifact],
    metrics: Output[Metrics],
) -> str:
    """Run spherereid.stages.cross_evaluate for `model` against `tests`; tag its registered version."""
    from spherereid.stages import tasks

    collected = {"prepared": prepared, "trained": trained, "evaluations": evaluations}
    done = tasks.cross_evaluate(model, tests, collected, evaluate=evaluate, out_dir=results.path)
    for key, value in done.metrics.items():  # e.g. synthetic_b.rank1
        metrics.log_metric(key, value)
    results.metadata.update(done.metadata)
    return done.value
