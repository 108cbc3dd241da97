"""Register stage: log the trained model as an MLflow pyfunc, register it, apply the quality gate.

    python -m spherereid.stages.register --params params.yaml --train outputs/synthetic/train \
        --eval outputs/synthetic/eval --out outputs/synthetic/register

Writes <out>/registration.json. Failing the gate is reported (exit 0), not an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import RegisterConfig, load_params
from ..contracts import (
    CHAIN_FILE,
    IMAGE_ENV,
    LINEAGE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PRECISION_CHECK_FILE,
    REGISTRATION_FILE,
    RUN_FILE,
)
from ..data.image_chain import ImageChain
from ..deploy.onnx_flavor import OnnxExport, export_and_log, usage_markdown
from ..deploy.pyfunc_flavor import log_reid_model
from ..entrypoint import run_cli
from ..redaction import redact_uri
from ..reporting.model_card import Lineage, model_card
from ..tracking import logged_model, registry, runs, tags
from ..tracking.registry import RegistrationResult
from ..tracking.runs import RunRef
from .precision_check import read_precision_check

log = logging.getLogger(__name__)


class RegisterInputError(ValueError):
    """An input file of the register stage is missing or malformed."""


@dataclass(frozen=True)
class RegisterResult:
    """The registered version and the gate's verdict (as in registration.json)."""

    name: str
    version: int
    passed_gate: bool
    reason: str
    aliases: list[str]
    champion_version: int | None
    model_uri: str
    run_id: str
    tracking_uri: str  # without credentials (redact_uri)
    path: Path
    ui: dict[str, str]  # the MLflow UI pages of the run, the experiment's models and the version


def _read_json(path: Path, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise RegisterInputError(f"{path}: not found; {fix}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RegisterInputError(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(raw, dict):
        raise RegisterInputError(f"{path}: expected a JSON object; {fix}")
    return raw


def _lineage(train_dir: Path) -> dict[str, Any]:
    path = train_dir / LINEAGE_FILE
    raw = _read_json(path, "run the train stage first")
    for key in ("dataset", "height", "width"):
        if key not in raw:
            raise RegisterInputError(f"{path}: key '{key}' missing; run the train stage again")
    return raw


def _chain(eval_dir: Path) -> ImageChain:
    """The preprocessing chain the evaluate stage measured (served with the model)."""
    path = eval_dir / CHAIN_FILE
    raw = _read_json(path, "run the evaluate stage again")
    try:
        return ImageChain.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise RegisterInputError(
            f"{path}: not a valid image chain ({exc}); run the evaluate stage again"
        ) from None


@dataclass(frozen=True)
class _Inputs:
    """What the train and evaluate stages handed over, checked."""

    lineage: dict[str, Any]
    ref: RunRef
    metrics: dict[str, float]  # the numeric entries of metrics.json
    model_pt: Path
    sources: tuple[tuple[str, str], ...] = ()  # (name, version) per source of a combined set
    precision_check: dict[str, Any] | None = None  # evaluate's precision_check.json (None before it)

    @property
    def dataset(self) -> str:
        return str(self.lineage["dataset"])


def _inputs(train_dir: Path, eval_dir: Path) -> _Inputs:
    """Read lineage.json, mlflow_run.json and metrics.json and check model.pt (RegisterInputError)."""
    lineage = _lineage(train_dir)
    ref = runs.read_run_ref(train_dir / RUN_FILE)
    metrics = _read_json(eval_dir / METRICS_FILE, "run the evaluate stage first")
    model_pt = train_dir / MODEL_FILE
    if not model_pt.is_file():
        raise RegisterInputError(f"{model_pt}: not found; run the train stage first")
    numeric = {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    sources = tuple(
        (k, str(v["version"])) for k, v in metrics.items() if isinstance(v, dict) and "version" in v
    )
    check = read_precision_check(eval_dir / PRECISION_CHECK_FILE)
    return _Inputs(lineage, ref, numeric, model_pt, sources, check)


def _export_onnx(
    given: _Inputs, chain: ImageChain, register: RegisterConfig, prepared_dir: Path | None, out_dir: Path
) -> OnnxExport | None:
    """With register.export_onnx: the ONNX model, its parity shown on prepared_dir and logged; else None."""
    if not register.export_onnx:
        return None
    if prepared_dir is None:
        raise RegisterInputError(
            "register.export_onnx is true but no prepared dataset was given: pass --prepared "
            "(parity with PyTorch is shown on its query and gallery)"
        )
    return export_and_log(
        given.ref,
        given.model_pt,
        chain=chain,
        prepared_dir=Path(prepared_dir),
        out_dir=out_dir,
        dataset=given.dataset,
        quantize=register.onnx_quantize,
        int8_budget=register.onnx_int8_budget,
    )


def _describe(
    given: _Inputs,
    *,
    name: str,
    dataset_hash: str | None,
    gate: tuple[bool, str],
    chain: ImageChain,
    run_tags: dict[str, str],
    onnx: OnnxExport | None,
) -> Callable[[int], str]:
    """The model card of a version number (with the ONNX section when there is one)."""
    ref = given.ref
    lineage = Lineage(
        git_commit=run_tags.get(tags.GIT_COMMIT),
        dvc_data_hash=run_tags.get(tags.DVC_DATA_HASH),
        image=os.environ.get(IMAGE_ENV),
        run_id=ref.run_id,
    )

    def card(version: int) -> str:
        text = model_card(
            name=name,
            version=version,
            dataset=given.dataset,
            dataset_hash=dataset_hash,
            params=runs.get_run_params(ref),
            metrics=given.metrics,
            passed_gate=gate[0],
            gate_text=gate[1],
            lineage=lineage,
            chain=chain.to_dict(),
            sources=given.sources,
            precision_check=given.precision_check,
        )
        return text + ("" if onnx is None else "\n" + usage_markdown(onnx))

    return card


@dataclass(frozen=True)
class _Logged:
    """The pyfunc model logged into the train run, the run's tags and the version of its training data."""

    model_uri: str
    run_tags: dict[str, str]
    dataset_hash: str | None


def _ui_links(ref: runs.RunRef, name: str, version: int) -> dict[str, str]:
    """The UI pages a person opens next, in MLflow's training layout."""
    return {
        "runs": runs.ui_url(ref.tracking_uri, ref.experiment_id, "runs"),
        "models": runs.ui_url(ref.tracking_uri, ref.experiment_id, "models"),
        "version": runs.version_ui_url(ref.tracking_uri, name, version),
    }


def _write_record(
    out_dir: Path,
    reg: RegistrationResult,
    given: _Inputs,
    logged: _Logged,
    *,
    register: RegisterConfig,
    onnx: OnnxExport | None,
) -> Path:
    """Write <out_dir>/registration.json: the registry's answer, where the model is, the gate's inputs
    and the metrics; return its path."""
    record = {
        **asdict(reg),
        "model_uri": logged.model_uri,
        "run_id": given.ref.run_id,
        "tracking_uri": redact_uri(given.ref.tracking_uri),
        "dataset_hash": logged.dataset_hash,
        "min_rank1": register.min_rank1,
        "min_map": register.min_map,
        "metrics": {k: v for k, v in given.metrics.items() if not math.isnan(v)},
        "mlflow_ui": _ui_links(given.ref, reg.name, reg.version),
    }
    if onnx is not None:
        record["onnx"] = onnx.record()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REGISTRATION_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _log_model_metrics(given: Any, model_uri: str, evaluated: Path, dataset_hash: str | None) -> None:
    """The evaluation metrics on the LoggedModel, with the evaluated set as its dataset (ranks versions)."""
    logged_model.log_model_metrics(
        given.ref,
        model_uri,
        given.metrics,
        dataset_name=f"{given.dataset}-evaluation",
        dataset_source=str(Path(evaluated).resolve()),
        dataset_digest=dataset_hash or "unknown",
    )


def run(
    *,
    train_dir: Path,
    eval_dir: Path,
    out_dir: Path,
    register: RegisterConfig,
    prepared_dir: Path | None = None,
) -> RegisterResult:
    """Log the pyfunc model into the train run (once), register and gate it, write registration.json.

    With register.export_onnx the ONNX export's parity is proven on prepared_dir's query/gallery first and
    the ONNX model is logged next to the pyfunc; a failed export or check stops before registration.
    The MLflow run the train stage opened ends here, finished, once the version is registered."""
    train_dir, eval_dir, out_dir = Path(train_dir), Path(eval_dir), Path(out_dir)
    given = _inputs(train_dir, eval_dir)
    gate = registry.gate(given.metrics, min_rank1=register.min_rank1, min_map=register.min_map)  # early
    chain = _chain(eval_dir)
    onnx = _export_onnx(given, chain, register, prepared_dir, out_dir)
    logged = _log_model(given, chain, evaluated=prepared_dir or eval_dir)
    reg = _register_version(given, register, logged, gate=gate, chain=chain, onnx=onnx)
    registry.mark_registered(given.ref, reg)
    runs.finish_run(given.ref)
    path = _write_record(out_dir, reg, given, logged, register=register, onnx=onnx)
    return _result(reg, given.ref, logged.model_uri, path)


def _result(reg: RegistrationResult, ref: RunRef, model_uri: str, path: Path) -> RegisterResult:
    """The stage's answer: the registered version, the gate's verdict and where to look."""
    return RegisterResult(
        reg.name,
        reg.version,
        reg.passed_gate,
        reg.reason,
        reg.aliases,
        reg.champion_version,
        model_uri,
        ref.run_id,
        redact_uri(ref.tracking_uri),
        path,
        _ui_links(ref, reg.name, reg.version),
    )


def _log_model(given: _Inputs, chain: ImageChain, *, evaluated: Path) -> _Logged:
    """Log the pyfunc model (once per model file + chain) with the evaluation metrics on it."""
    model_uri = log_reid_model(given.ref, given.model_pt, chain=chain, dataset=given.dataset)
    run_tags = runs.get_run_tags(given.ref)
    dataset_hash = given.lineage.get("dataset_hash") or run_tags.get(tags.DATASET_HASH)
    _log_model_metrics(given, model_uri, evaluated, dataset_hash)
    return _Logged(model_uri, run_tags, dataset_hash)


def _register_version(
    given: _Inputs,
    register: RegisterConfig,
    logged: _Logged,
    *,
    gate: tuple[bool, str],
    chain: ImageChain,
    onnx: OnnxExport | None,
) -> RegistrationResult:
    """Register the logged model as a version of `<model_prefix>-<dataset>` with its lineage (and ONNX)
    tags and model card, and apply the quality gate and promotion policy."""
    name, ref = f"{register.model_prefix}-{given.dataset}", given.ref
    dataset_hash, run_tags = logged.dataset_hash, logged.run_tags
    version_tags = tags.version_lineage(
        run_tags, dataset=given.dataset, extra=None if onnx is None else onnx.version_tags()
    )
    return registry.register_and_gate(
        name=name,
        model_uri=logged.model_uri,
        run_id=ref.run_id,
        metrics=given.metrics,
        dataset_hash=dataset_hash,
        min_rank1=register.min_rank1,
        min_map=register.min_map,
        promotion=register.promotion,
        tags=version_tags,
        describe=_describe(
            given, name=name, dataset_hash=dataset_hash, gate=gate, chain=chain, run_tags=run_tags, onnx=onnx
        ),
        tracking_uri=ref.tracking_uri,
    )


def summary(res: RegisterResult) -> str:
    """Human-readable lines: name, version, aliases, gate verdict, and how to look at it."""
    aliases = ", ".join(res.aliases) or "none"
    gate = "passed" if res.passed_gate else "FAILED"
    lines = [
        f"registered {res.name} version {res.version}; aliases: {aliases}; quality gate {gate}",
        f"  {res.reason}",
        f"  champion: version {res.champion_version}"
        if res.champion_version is not None
        else "  no champion",
    ]
    if not res.tracking_uri.startswith(("http://", "https://")):
        lines.append(f"  MLflow UI: mlflow ui --backend-store-uri {res.tracking_uri}, then open:")
    lines += [f"    {page}: {res.ui[page]}" for page in ("runs", "models", "version")]
    lines.append(f"  serve: mlflow models serve -m models:/{res.name}@champion --env-manager local")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.register") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)"
    )
    parser.add_argument("--train", type=Path, required=True, help="train stage output directory")
    parser.add_argument("--eval", type=Path, required=True, help="evaluate stage output directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--prepared",
        type=Path,
        help="prepared dataset directory; needed with register.export_onnx (ONNX parity is shown on its "
        "query and gallery)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        p = load_params(args.params)
        res = run(
            train_dir=args.train,
            eval_dir=args.eval,
            out_dir=args.out,
            register=p.register,
            prepared_dir=args.prepared,
        )
        print(summary(res))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
