"""The quality gate as a pipeline decision: evaluate's output parameters and the refusal branch.

The verdict comes from spherereid.tracking.registry.gate, the function the register stage applies, so
the graph's dsl.If and the registry cannot disagree. DVC does not use this module: its register stage
still registers a failing version and records the refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RegisterConfig
from ..contracts import RUN_FILE
from ..tracking import registry, runs, tags


def verdict(metrics: dict[str, Any], register: RegisterConfig) -> tuple[float, float, str, str]:
    """(rank1, mAP, tags.PASSED | tags.FAILED, reason) under register's thresholds."""
    passed, reason = registry.gate(metrics, min_rank1=register.min_rank1, min_map=register.min_map)
    return float(metrics["rank1"]), float(metrics["mAP"]), tags.gate_verdict(passed), reason


def refusal_markdown(*, name: str, rank1: float, m_ap: float, reason: str, register: RegisterConfig) -> str:
    """The Markdown the refusal branch shows in the KFP UI: metrics, thresholds, reason, what to do."""
    return (
        f"# Not registered: {name}\n\n{reason}\n\n"
        "| metric | value | threshold |\n|---|---|---|\n"
        f"| rank-1 | {rank1:.4f} | {register.min_rank1:.4f} |\n"
        f"| mAP | {m_ap:.4f} | {register.min_map:.4f} |\n\n"
        "The register task did not run: no model version was created and no alias moved. Lower "
        "register.min_rank1 / register.min_map, or improve the model, and run again.\n"
    )


def record_refusal(
    *, train_dir: Path, report: Path, rank1: float, m_ap: float, reason: str, register: RegisterConfig
) -> str:
    """Write the refusal Markdown to `report`, tag the training run's quality gate failed (and why) and
    close it (register, which would close it, does not run). Returns the Markdown."""
    ref = runs.read_run_ref(Path(train_dir) / RUN_FILE)
    dataset = runs.get_run_tags(ref).get(tags.DATASET, "")
    text = refusal_markdown(
        name=f"{register.model_prefix}-{dataset}", rank1=rank1, m_ap=m_ap, reason=reason, register=register
    )
    Path(report).write_text(text)
    runs.set_tags(ref, tags.gate_tags(False, reason))
    runs.finish_run(ref)
    return text
