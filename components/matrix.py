"""KFP component: every cross-evaluation (dsl.Collected) -> the cross-dataset matrix, as the DVC matrix
stage writes it (experiments.matrix: matrix.json, matrix.md, matrix.png), plus matrix.md as Markdown."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def matrix(results: Input[list[Artifact]], cross: Output[Artifact], report: Output[Markdown]):
    """Assemble <train>/<test> results into matrix.json ({train: {test: {rank1, mAP, ...}}}) and tables."""
    from pathlib import Path

    from spherereid.experiments.matrix import write_matrix
    from spherereid.experiments.matrix_cli import collect_dirs

    found = collect_dirs([Path(a.path) for a in results], "the collected cross-evaluations")
    paths = write_matrix(found, Path(cross.path))
    Path(report.path).write_text(paths["md"].read_text())
    cross.metadata.update(trains=sorted({train for train, _ in found}), pairs=len(found))
