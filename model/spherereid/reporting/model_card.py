"""The model card: the Markdown description of a registered model version (what the registry UI shows).

It covers the data and its version, a params summary, the metrics and the gate decision, lineage, the
preprocessing chain the embeddings were evaluated (and are served) with, intended use and limits, and how
to serve and call the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METRIC_COLUMNS = (
    ("rank1", "rank-1"),
    ("rank5", "rank-5"),
    ("rank10", "rank-10"),
    ("mAP", "mAP"),
    ("mAP_official", "mAP (official)"),
    ("mINP", "mINP"),
)
PARAM_ROWS = (
    ("model.backbone", "backbone"),
    ("model.head", "head"),
    ("model.embedding_dim", "embedding dim"),
    ("model.pretrained", "pretrained weights"),
    ("loss.type", "loss"),
    ("loss.scale", "loss scale"),
    ("loss.margin", "loss margin"),
    ("train.epochs", "epochs"),
    ("train.seed", "seed"),
    ("optim.lr", "learning rate"),
    ("sampler.p", "identities per batch (P)"),
    ("sampler.k", "images per identity (K)"),
)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "n/a"


def _intro(name: str, version: int, dataset: str, params: Mapping[str, str]) -> list[str]:
    return [
        f"# {name} version {version}",
        "",
        f"SphereReID person re-identification model trained on **{dataset}**: one unit-norm "
        f"{params.get('model.embedding_dim', '?')}-d embedding per person crop; rank a gallery by cosine "
        "similarity to a query.",
        "",
    ]


@dataclass(frozen=True)
class Lineage:
    """Where a version came from (the register stage reads it from the training run's tags)."""

    git_commit: str | None = None
    dvc_data_hash: str | None = None
    image: str | None = None  # the container image, None when run locally
    run_id: str | None = None


def _data(
    dataset: str,
    dataset_hash: str | None,
    lineage: Lineage,
    sources: Sequence[tuple[str, str]],
) -> list[str]:
    """The data table; a combined set adds one row per source with that source's own version."""
    rows = [(dataset, f"`{dataset_hash or 'unknown'}`", f"`{lineage.dvc_data_hash or 'unknown'}`")]
    rows += [(f"- source {name}", f"`{version}`", "(part of the above)") for name, version in sources]
    return ["## Data", "", *_table(("dataset", "version (manifest fingerprint)", "DVC data hash"), rows), ""]


def _training(params: Mapping[str, str]) -> list[str]:
    rows = [(label, params.get(key, "n/a")) for key, label in PARAM_ROWS]
    if "train.precision_used" in params:  # older runs did not record it
        rows.append(("training precision (used)", params["train.precision_used"]))
    return ["## Training (params summary)", "", *_table(("param", "value"), rows), ""]


def _evaluation(metrics: Mapping[str, Any], passed_gate: bool, gate_text: str) -> list[str]:
    verdict = "passed" if passed_gate else "failed"
    queries = f"{int(metrics.get('num_valid_queries', 0))}/{int(metrics.get('num_queries', 0))}"
    return [
        "## Evaluation",
        "",
        *_table(
            (*(label for _, label in METRIC_COLUMNS), "valid queries"),
            [(*(_fmt(metrics.get(key)) for key, _ in METRIC_COLUMNS), queries)],
        ),
        "",
        f"Quality gate: **{verdict}**{gate_text.removeprefix(f'quality gate {verdict}')}.",
        "",
    ]


def _extraction_precision(check: Mapping[str, Any] | None) -> list[str]:
    """rank-1/mAP at the served precision and at fp32 (evaluate's precision_check.json); none before it."""
    if not check:
        return []
    used = str(check["precision"])
    rows = [(f"{used} (served)", _fmt(check[used]["rank1"]), _fmt(check[used]["mAP"]))]
    if used != "fp32":
        diff = check["difference"]
        rows += [
            ("fp32 (reference)", _fmt(check["fp32"]["rank1"]), _fmt(check["fp32"]["mAP"])),
            (f"{used} - fp32 (points)", f"{100 * diff['rank1']:+.2f}", f"{100 * diff['mAP']:+.2f}"),
        ]
    table = _table(("extraction precision", "rank-1", "mAP"), rows)
    return ["Extraction precision (the same query and gallery, ranked the same way):", "", *table, ""]


def _lineage(dataset_hash: str | None, lineage: Lineage) -> list[str]:
    row = (
        f"`{lineage.git_commit or 'unknown'}`",
        f"`{dataset_hash or 'unknown'}`",
        f"`{lineage.image or 'local (no container image)'}`",
        f"`{lineage.run_id or 'unknown'}`",
    )
    return ["## Lineage", "", *_table(("git commit", "data hash", "image", "MLflow run"), [row]), ""]


def _preprocessing(chain: Mapping[str, Any]) -> list[str]:
    sh, sw = chain["stored_size"]
    ih, iw = chain["input_size"]
    flip = "averaged with the mirror image, " if chain.get("flip") else ""
    return [
        "## Preprocessing (served exactly as evaluated)",
        "",
        f"decode -> resize to the stored size {sh}x{sw} -> resize to the input size {ih}x{iw} -> normalise "
        f"(mean {list(chain['mean'])}, std {list(chain['std'])}) -> network, {flip}L2-normalised. The served "
        "embeddings equal the evaluation's features for the same image files.",
        "",
    ]


def _intended_use() -> list[str]:
    return [
        "## Intended use and limits",
        "",
        "- Intended: ranking gallery person crops by similarity to a query crop, for research and "
        "benchmarking on data like the training set (same kind of cameras, crops and resolution).",
        "- The metrics above hold for this dataset version only; on other cameras, lighting or crops the "
        "accuracy is unknown until measured there. A model trained on synthetic data says nothing about "
        "real people.",
        "- Not for identifying people by name or for decisions about individuals without human review; "
        "check the law and the data's licence before use on real people.",
        "- Embeddings are comparable only between images processed by this same version.",
        "",
    ]


def _serving(name: str, version: int) -> list[str]:
    return [
        "## Serve and call",
        "",
        "```bash",
        f"mlflow models serve -m models:/{name}/{version} --env-manager local --host 127.0.0.1 --port 5001",
        "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\",
        '  -d "{\\"dataframe_split\\": {\\"columns\\": [\\"image\\"], \\"data\\": '
        '[[\\"$(base64 -w0 query.jpg)\\"]]}}"',
        "```",
        "",
        "Each row of `image` holds the base64 bytes of one JPEG or PNG of any size; the answer is "
        '`{"predictions": [[...], ...]}`, one embedding per row. A bad row (not an image, empty, a wrong '
        "column) gets HTTP 400 naming the row.",
        "",
    ]


def model_card(
    *,
    name: str,
    version: int,
    dataset: str,
    dataset_hash: str | None,
    params: Mapping[str, str],
    metrics: Mapping[str, Any],
    passed_gate: bool,
    gate_text: str,
    lineage: Lineage,
    chain: Mapping[str, Any],
    sources: Sequence[tuple[str, str]] = (),
    precision_check: Mapping[str, Any] | None = None,
) -> str:
    """Markdown for version `version` of `name`. `params` are the run's flattened params, `lineage` where
    it came from, `chain` is the served ImageChain as a dict, `sources` the
    (name, version) of each source of a combined set (evaluate's metrics.json sections), `precision_check`
    evaluate's precision_check.json (None: no extraction precision table)."""
    lines = [
        *_intro(name, version, dataset, params),
        *_data(dataset, dataset_hash, lineage, sources),
        *_training(params),
        *_evaluation(metrics, passed_gate, gate_text),
        *_extraction_precision(precision_check),
        *_lineage(dataset_hash, lineage),
        *_preprocessing(chain),
        *_intended_use(),
        *_serving(name, version),
    ]
    return "\n".join(lines)
