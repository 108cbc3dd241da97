"""KFP component: trained model + prepared query/gallery -> Metrics, HTML report, evaluation folder.

It also returns the quality gate's inputs and verdict as output parameters (rank1, mAP, gate
"passed"/"failed", gate_reason), decided by spherereid.stages.gate.verdict (registry.gate, the function
the register stage applies): the pipeline's dsl.If on `gate` runs register only for a passing model.
The evaluation artifact's metadata names the dataset, the training run and, in the ablation pipeline,
the grid cell (`cell`: its id and settings), by which the summary task matches the collected results.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def evaluate(
    prepared: Input[Dataset],
    trained: Input[Model],
    evaluate: dict,
    transform: dict,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
    register: dict,
    cell: dict = {},  # noqa: B006 - KFP passes a fresh value; the ablation cell (id, head, loss, ...)
) -> NamedTuple("GateOutputs", [("rank1", float), ("mAP", float), ("gate", str), ("gate_reason", str)]):
    """Run spherereid.stages.evaluate; log every metric, embed the figures; decide the quality gate."""
    from pathlib import Path

    from spherereid.stages import tasks

    structs = {"evaluate": evaluate, "transform": transform, "register": register}
    done = tasks.evaluate(prepared, trained, evaluation.path, structs=structs, cell=cell)
    for key, value in done.metrics.items():
        metrics.log_metric(key, value)
    Path(report.path).write_text(done.report)
    evaluation.metadata.update(done.metadata)
    return done.value
