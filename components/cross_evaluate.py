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
    import itertools
    import tempfile
    from pathlib import Path

    from spherereid.param_coercion import build_from_struct
    from spherereid.stages import cross_evaluate as stage
    from spherereid.stages.collected import by_dataset, link_datasets, pick
    from spherereid.tracking import xeval

    train_dir = pick([(a.path, a.metadata) for a in trained], model, "trained")
    eval_dir = pick([(a.path, a.metadata) for a in evaluations], model, "evaluation")
    with tempfile.TemporaryDirectory() as tmp:
        root = link_datasets(by_dataset([(a.path, a.metadata) for a in prepared], "prepared"), Path(tmp))
        res = stage.run(
            model=model, train_dir=train_dir, eval_dir=eval_dir,
            prepared_root=root, tests=[str(t) for t in tests], out_dir=Path(results.path),
            evaluate=build_from_struct("evaluate", evaluate),
        )  # fmt: skip
    found = {test: r["metrics"] for test, r in res.items()}
    for test, metric in itertools.product(found, xeval.TAGGED_METRICS):  # e.g. synthetic_b.rank1
        metrics.log_metric(f"{test}.{metric}", float(found[test][metric]))
    results.metadata.update(dataset=model, tests=sorted(found))
    return stage.record_for_training_run(train_dir, model, found)
