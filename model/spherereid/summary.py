"""End-of-job summary: metrics, the registered version and its aliases, how to open the MLflow UI."""

from __future__ import annotations

import json
from pathlib import Path

from .tracking import tracking_uri


def summarize(outputs: Path, datasets: list[str]) -> str:
    """Human-readable lines for each dataset's evaluation and registration outputs."""
    lines = []
    for name in datasets:
        eval_path = outputs / name / "eval" / "metrics.json"
        reg_path = outputs / name / "register" / "registration.json"
        if not eval_path.is_file():
            lines.append(f"[{name}] not evaluated yet ({eval_path} missing): run `dvc repro`")
            continue
        m = json.loads(eval_path.read_text())
        lines.append(
            f"[{name}] rank-1 {m['rank1']:.1%}  rank-5 {m['rank5']:.1%}  mAP {m['mAP']:.1%}  "
            f"mAP(official) {m['mAP_official']:.1%}  mINP {m['mINP']:.1%}"
        )
        if reg_path.is_file():
            r = json.loads(reg_path.read_text())
            aliases = ", ".join(r.get("aliases") or []) or "none"
            gate = "passed" if r.get("passed_gate") else f"FAILED ({r.get('reason', '')})"
            lines.append(
                f"[{name}] registered {r.get('name')} version {r.get('version')}; aliases: {aliases}; "
                f"quality gate {gate}"
            )
    uri = tracking_uri()
    lines.append(f"MLflow UI: mlflow ui --backend-store-uri {uri}  (then open http://127.0.0.1:5000)")
    return "\n".join(lines)
