"""KFP component: the ablation cells' evaluations (dsl.Collected) -> ablation.json, ablation.md and
ablation.png as `spherereid ablation` writes them (experiments.tables), plus the table as Markdown."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def ablation_summary(
    cells: list, evaluations: Input[list[Artifact]], ablation: Output[Artifact], report: Output[Markdown]
):
    """Match each evaluation to its cell by its "cell" metadata; write the grid's tables in grid order."""
    from pathlib import Path

    from spherereid.experiments.cells import records
    from spherereid.experiments.tables import write_ablation

    found = records([(a.path, a.metadata) for a in evaluations], cells)
    paths = write_ablation(found, Path(ablation.path))
    Path(report.path).write_text(paths["md"].read_text())
    ablation.metadata.update(cells=[r["cell"] for r in found])
