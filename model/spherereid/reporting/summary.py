"""End-of-job summary: metrics, the registered version and its aliases, how to open the MLflow UI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..contracts import JobLayout
from ..evaluation.results import REPORTED_KEYS

# How the summary labels the reported metrics it shows (the others, e.g. rank10 and the counts, are left out).
LABELS = {"rank1": "rank-1", "rank5": "rank-5", "mAP": "mAP", "mAP_official": "mAP(official)", "mINP": "mINP"}
SHOWN = tuple((LABELS[key], key) for key in REPORTED_KEYS if key in LABELS)


def _read(path: Path) -> dict[str, Any] | str:
    """The JSON object in `path`, or the reason it cannot be used (a killed stage leaves a partial file)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"{path} unreadable ({type(exc).__name__}): run `dvc repro` again"
    return raw if isinstance(raw, dict) else f"{path} is not a JSON object: run `dvc repro` again"


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"


def summarize(outputs: Path, datasets: list[str], tracking_uri: str) -> str:
    """Human-readable lines for each dataset's evaluation and registration outputs, and how to open the
    MLflow UI on `tracking_uri`."""
    lines = []
    for name in datasets:
        layout = JobLayout(outputs, name)
        eval_path, reg_path = layout.eval.metrics, layout.registration
        if not eval_path.is_file():
            lines.append(f"[{name}] not evaluated yet ({eval_path} missing): run `dvc repro`")
            continue
        m = _read(eval_path)
        if isinstance(m, str):
            lines.append(f"[{name}] {m}")
            continue
        shown = "  ".join(f"{label} {_pct(m.get(key))}" for label, key in SHOWN)
        lines.append(f"[{name}] {shown}")
        if reg_path.is_file():
            r = _read(reg_path)
            if isinstance(r, str):
                lines.append(f"[{name}] {r}")
                continue
            aliases = ", ".join(r.get("aliases") or []) or "none"
            gate = "passed" if r.get("passed_gate") else f"FAILED ({r.get('reason', '')})"
            lines.append(
                f"[{name}] registered {r.get('name')} version {r.get('version')}; aliases: {aliases}; "
                f"quality gate {gate}"
            )
            pages = r.get("mlflow_ui") or {}
            lines += [f"[{name}] MLflow UI {page}: {url}" for page, url in pages.items()]
    if not tracking_uri.startswith(("http://", "https://")):
        lines.append(f"MLflow UI: mlflow ui --backend-store-uri {tracking_uri}, then open the pages above")
    return "\n".join(lines)
