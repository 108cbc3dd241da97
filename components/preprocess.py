"""KFP component: raw dataset (local folder, DVC repo at a revision, or generated) -> prepared set."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def preprocess(
    dataset: str,
    data: dict,
    synthetic: dict,
    prepared: Output[Dataset],
    report: Output[Markdown],
    raw_root: str = "",
    data_repo: str = "",
    data_rev: str = "",
    data_path: str = "data/raw/{dataset}",
):
    """Fetch or generate the raw data, then run spherereid.stages.preprocess; record its version."""
    from pathlib import Path

    from spherereid.stages import tasks

    sources = {"raw_root": raw_root, "data_repo": data_repo, "data_rev": data_rev, "data_path": data_path}
    done = tasks.preprocess(
        dataset=dataset, data=data, synthetic=synthetic, sources=sources, out_dir=prepared.path
    )
    Path(report.path).write_text(done.report)
    prepared.metadata.update(done.metadata)
