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
    import tempfile
    from pathlib import Path

    from spherereid.contracts import REPORT_MD
    from spherereid.param_coercion import build_from_struct
    from spherereid.stages import preprocess as stage
    from spherereid.stages.raw_source import recorded_sources, resolve_raw

    sources = {"raw_root": raw_root, "data_repo": data_repo, "data_rev": data_rev, "data_path": data_path}
    out = Path(prepared.path)
    with tempfile.TemporaryDirectory() as tmp:
        synth = build_from_struct("synthetic", synthetic)
        raw = resolve_raw(dataset=dataset, work_dir=Path(tmp), synthetic=synth, **sources)
        stage.run(dataset=dataset, raw_dir=raw.path, out_dir=out, data=build_from_struct("data", data))
    Path(report.path).write_text((out / REPORT_MD).read_text())
    prepared.metadata.update(dataset=dataset, **recorded_sources(sources), **raw.lineage())
