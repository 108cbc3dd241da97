"""KFP component: the quality gate's refusal branch (dsl.Else): a Markdown artifact saying why nothing was
registered, and the training run closed (spherereid.stages.gate.record_refusal)."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from components import image


@dsl.component(base_image=image(), install_kfp_package=False)
def gate_report(
    trained: Input[Model],
    rank1: float,
    mAP: float,  # noqa: N803 - the metric's name everywhere else
    reason: str,
    register: dict,
    report: Output[Markdown],
):
    """Write why the model was not registered; tag the training run quality_gate=failed and close it."""
    from pathlib import Path

    from spherereid.param_coercion import build_from_struct
    from spherereid.stages import gate as stage

    stage.record_refusal(
        train_dir=Path(trained.path),
        report=Path(report.path),
        rank1=rank1,
        m_ap=mAP,
        reason=reason,
        register=build_from_struct("register", register),
    )
