"""Evaluate stage: trained model + prepared query/gallery -> metrics.json, CMC curve, ranked lists.

    python -m spherereid.stages.evaluate --params params.yaml --prepared data/prepared/synthetic \
        --train outputs/synthetic/train --out outputs/synthetic/eval

A combined set (`market1501+msmt17`) is scored on each source's own query/gallery: metrics.json holds
one section per source ({"market1501": {...}, "msmt17": {...}}, each with the source's "version", its
manifest fingerprint, which the model card lists) and, at the top level, the headline
metrics, which are the FIRST listed source's (named by "headline_source"), so that the gate and the
registry compare like with like. cmc_<source>.csv per source; a single dataset's files are unchanged.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..config import EvaluateConfig, TransformConfig, load_params
from ..contracts import (
    CHAIN_FILE,
    CMC_FILE,
    CMC_PLOT,
    CMC_RERANK_FILE,
    FEATURES_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PRECISION_CHECK_FILE,
    RANKED_LISTS_PLOT,
    REPORT_JSON,
    REPORT_MD,
    RUN_FILE,
)
from ..data.image_chain import ImageChain
from ..data.manifest import PreparedSet, SplitData
from ..device import effective_precision, resolve_device
from ..entrypoint import run_cli
from ..evaluation import metrics
from ..evaluation.measure import ProtocolMetrics, measure
from ..inference import extract_splits
from ..reporting.plots import plot_cmc, plot_ranked_lists
from ..tracking import runs
from ..training import saved_model
from .precision_check import CheckedSet, precision_check, write_precision_check

log = logging.getLogger(__name__)

RANKED_QUERIES = 6
RANKED_TOP = 10


class EvaluationError(ValueError):
    """The prepared set cannot be evaluated (e.g. a train-only dataset)."""


@dataclass(frozen=True)
class EvaluateResult:
    """The reported metrics and where they were written."""

    metrics: dict[str, float]
    metrics_path: Path


def image_chain(
    prepared: PreparedSet, transform: TransformConfig, evaluate: EvaluateConfig, device: torch.device
) -> ImageChain:
    """The evaluated chain: stored size of the prepared arrays, network input size and normalisation,
    flip averaging and the extraction precision (evaluate.precision resolved on `device`)."""
    stored_size = (int(prepared.info["height"]), int(prepared.info["width"]))
    precision = effective_precision(evaluate.precision, device)
    return ImageChain.from_config(stored_size, transform, evaluate.flip, precision)


def run(
    *,
    prepared_dir: Path,
    train_dir: Path,
    out_dir: Path,
    evaluate: EvaluateConfig,
    transform: TransformConfig,
) -> EvaluateResult:
    """Extract query/gallery features, rank, and report CMC/mAP/mINP under the dataset's protocol."""
    prepared_dir, train_dir, out_dir = Path(prepared_dir), Path(train_dir), Path(out_dir)
    prepared = PreparedSet(prepared_dir)
    if prepared.protocol.get("name") == "train-only":
        raise EvaluationError(f"{prepared_dir}: this dataset has no query/gallery split (train-only)")
    ref = runs.read_run_ref(train_dir / RUN_FILE)  # fail before the slow work, not after it
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device("auto")
    chain = image_chain(prepared, transform, evaluate, device)  # the chain register ships with the model
    (out_dir / CHAIN_FILE).write_text(json.dumps(chain.to_dict(), indent=2) + "\n")
    query, gallery = prepared.split("query"), prepared.split("gallery")
    load = partial(saved_model.load_model, train_dir / MODEL_FILE)
    qf, gf = extract_splits(load, chain, query, gallery, evaluate.batch_size, device)
    _write_features(out_dir / FEATURES_FILE, qf, gf, query, gallery)
    # the headline rows' precision check, called once they are ranked (it reuses that ranking)
    check = partial(check_precision, out_dir, train_dir / MODEL_FILE, chain, evaluate=evaluate, device=device)
    if prepared.sources():
        return _run_combined(prepared, ref, out_dir, qf, gf, query, gallery, evaluate, check)
    measured = measure(prepared.protocol, qf, gf, query, gallery, evaluate)
    check(_headline(prepared, query, gallery, measured))
    reported = measured.reported()
    _write_metrics(out_dir, measured, reported)
    _plot(out_dir, measured, qf, gf, query, gallery, evaluate.metric, str(prepared.info.get("dataset", "")))
    _log_to_run(ref, out_dir, reported, measured.reranked is not None, prepared)
    return EvaluateResult(metrics=reported, metrics_path=out_dir / METRICS_FILE)


def _rows(split: SplitData, start: int, stop: int) -> SplitData:
    """Rows [start, stop) of a split (one source of a combined set)."""
    return SplitData(
        split.images[start:stop],
        split.pids[start:stop],
        split.camids[start:stop],
        split.labels[start:stop],
        split.sources[start:stop],
    )


def _headline(
    prepared: PreparedSet, query: SplitData, gallery: SplitData, measured: ProtocolMetrics
) -> CheckedSet:
    """The rows the headline metrics come from (the whole set, or a combined set's first source) and
    `measured`, their ranking."""
    if not prepared.sources():
        name = str(prepared.info.get("dataset", prepared.root.name))
        return CheckedSet(prepared.protocol, query, gallery, name, measured.plain)
    src = prepared.sources()[0]
    (qa, qb), (ga, gb) = src["ranges"]["query"], src["ranges"]["gallery"]
    return CheckedSet(
        src["protocol"], _rows(query, qa, qb), _rows(gallery, ga, gb), str(src["name"]), measured.plain
    )


def check_precision(
    out_dir: Path,
    model_path: Path,
    chain: ImageChain,
    checked: CheckedSet,
    evaluate: EvaluateConfig,
    device: torch.device,
) -> None:
    """precision_check.json: rank-1/mAP of the chain's precision (`checked.ranked`, evaluate's ranking)
    against fp32 features of the same rows (a second extraction only when the chain is not fp32)."""

    def extract(fp32: ImageChain) -> tuple[np.ndarray, np.ndarray]:
        log.info("precision check: extracting the headline query/gallery again in fp32")
        load = partial(saved_model.load_model, model_path)
        return extract_splits(load, fp32, checked.query, checked.gallery, evaluate.batch_size, device)

    result = precision_check(checked, chain, evaluate, extract)
    write_precision_check(out_dir / PRECISION_CHECK_FILE, result)
    diff = result["difference"]
    log.info(
        "precision check (%s - fp32): rank-1 %+.2f, mAP %+.2f points",
        chain.precision,
        100 * diff["rank1"],
        100 * diff["mAP"],
    )


def _run_combined(
    prepared: PreparedSet,
    ref: runs.RunRef,
    out_dir: Path,
    qf: np.ndarray,
    gf: np.ndarray,
    query: SplitData,
    gallery: SplitData,
    evaluate: EvaluateConfig,
    check: Callable[[CheckedSet], None],
) -> EvaluateResult:
    """Score each source on its own rows; the first source's metrics are the headline (`check`: the
    precision check of its rows)."""
    per_source: dict[str, tuple[ProtocolMetrics, dict[str, float]]] = {}
    for src in prepared.sources():
        (qa, qb), (ga, gb) = src["ranges"]["query"], src["ranges"]["gallery"]
        if qb <= qa or gb <= ga:
            raise EvaluationError(f"{prepared.root}: source '{src['name']}' has no query or gallery images")
        m = measure(
            src["protocol"], qf[qa:qb], gf[ga:gb], _rows(query, qa, qb), _rows(gallery, ga, gb), evaluate
        )
        per_source[src["name"]] = (m, m.reported())
        _write_cmc(m.plain["cmc"], out_dir / f"cmc_{src['name']}.csv")
    first = next(iter(per_source))
    measured, reported = per_source[first]
    check(_headline(prepared, query, gallery, measured))
    versions = {src["name"]: src["fingerprint"] for src in prepared.sources()}
    sections = {n: {**r, "protocol": m.protocol, "version": versions[n]} for n, (m, r) in per_source.items()}
    _write_metrics(out_dir, measured, reported, {"headline_source": first, **sections})
    others = {n: m.plain["cmc"] for n, (m, _) in per_source.items() if n != first}
    plot_cmc(measured.plain["cmc"], out_dir / CMC_PLOT, title=f"CMC: {first} (headline)", others=others)
    (qa, qb), (ga, gb) = prepared.sources()[0]["ranges"]["query"], prepared.sources()[0]["ranges"]["gallery"]
    _ranked_lists(
        qf[qa:qb],
        gf[ga:gb],
        _rows(query, qa, qb),
        _rows(gallery, ga, gb),
        evaluate.metric,
        out_dir / RANKED_LISTS_PLOT,
    )
    logged = {**reported, **{f"{n}_{k}": v for n, (_, r) in per_source.items() for k, v in r.items()}}
    _log_to_run(ref, out_dir, logged, measured.reranked is not None, prepared)
    for name in per_source:
        runs.log_artifact(ref, out_dir / f"cmc_{name}.csv", artifact_path="evaluation")
    return EvaluateResult(metrics=reported, metrics_path=out_dir / METRICS_FILE)


def _write_metrics(
    out_dir: Path, measured: ProtocolMetrics, reported: dict[str, float], extra: dict | None = None
) -> None:
    """metrics.json (the reported metrics, the protocol and, for a combined set, `extra`: the per-source
    sections), cmc.csv and, when re-ranked, cmc_rerank.csv."""
    if measured.reranked is not None:
        _write_cmc(measured.reranked["cmc"], out_dir / CMC_RERANK_FILE)
    (out_dir / METRICS_FILE).write_text(
        json.dumps({**reported, "protocol": measured.protocol, **(extra or {})}, indent=2) + "\n"
    )
    _write_cmc(measured.plain["cmc"], out_dir / CMC_FILE)


def _write_features(path: Path, qf: np.ndarray, gf: np.ndarray, query: SplitData, gallery: SplitData) -> None:
    """features.npz: the arrays ``spherereid evaluate-features`` reads back."""
    np.savez_compressed(
        path,
        qf=qf,
        gf=gf,
        q_pids=query.pids,
        g_pids=gallery.pids,
        q_camids=query.camids,
        g_camids=gallery.camids,
    )


def _plot(
    out_dir: Path,
    measured: ProtocolMetrics,
    qf: np.ndarray,
    gf: np.ndarray,
    query: SplitData,
    gallery: SplitData,
    metric: str,
    dataset: str,
) -> None:
    """cmc.png (with the re-ranked curve when there is one) and ranked_lists.png."""
    reranked = measured.reranked
    others = {"re-ranked": reranked["cmc"]} if reranked is not None else None
    plot_cmc(measured.plain["cmc"], out_dir / CMC_PLOT, title=f"CMC: {dataset}", others=others)
    _ranked_lists(qf, gf, query, gallery, metric, out_dir / RANKED_LISTS_PLOT)


def _log_to_run(
    ref: runs.RunRef, out_dir: Path, reported: dict[str, float], reranked: bool, prepared: PreparedSet
) -> None:
    """The metrics, the query and gallery datasets and the evaluation (and preprocess) files, on the run."""
    prepared_dir = prepared.root
    runs.log_metrics(ref, {k: float(v) for k, v in reported.items()})
    for split_name in ("query", "gallery"):
        runs.log_dataset(
            ref,
            name=f"{prepared.info.get('dataset', prepared_dir.name)}-{split_name}",
            source=str(prepared_dir.resolve()),
            digest=prepared.fingerprint(),
            context=split_name,
        )
    rerank_files = (CMC_RERANK_FILE,) if reranked else ()
    evaluation_files = (CMC_PLOT, RANKED_LISTS_PLOT, CMC_FILE, METRICS_FILE, PRECISION_CHECK_FILE)
    for name in (*evaluation_files, *rerank_files):
        runs.log_artifact(ref, out_dir / name, artifact_path="evaluation")
    for name in (REPORT_JSON, REPORT_MD):
        if (prepared_dir / name).is_file():
            runs.log_artifact(ref, prepared_dir / name, artifact_path="preprocess")


def _write_cmc(cmc: Sequence[float], path: Path) -> None:
    """CMC curve as CSV: rank (1-based), accuracy."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "accuracy"])
        for rank, acc in enumerate(cmc, start=1):
            writer.writerow([rank, f"{acc:.6f}"])


def _ranked_lists(
    qf: np.ndarray, gf: np.ndarray, query: SplitData, gallery: SplitData, metric: str, path: Path
) -> None:
    """Top-10 gallery images for a few evenly spaced queries. The figure shows the raw ranking: same-
    identity images from the query's own camera, which the protocol ignores, are shown (framed green)."""
    picks = np.linspace(0, len(qf) - 1, num=min(RANKED_QUERIES, len(qf))).astype(int)
    top = min(RANKED_TOP, len(gf))
    indices, _ = metrics.top_k(qf[picks], gf, top, metric=metric)
    indices = np.asarray(indices)
    correct = gallery.pids[indices] == query.pids[picks][:, None]
    plot_ranked_lists(np.asarray(query.images[picks]), gallery.images, indices, correct, path)


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.evaluate") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)"
    )
    parser.add_argument("--prepared", type=Path, required=True, help="prepared dataset directory")
    parser.add_argument("--train", type=Path, required=True, help="train stage output directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)

    def body() -> int:
        p = load_params(args.params)
        res = run(
            prepared_dir=args.prepared,
            train_dir=args.train,
            out_dir=args.out,
            evaluate=p.evaluate,
            transform=p.transform,
        )
        m = res.metrics
        print(
            f"rank-1 {m['rank1']:.2%}  rank-5 {m['rank5']:.2%}  mAP {m['mAP']:.2%}  "
            f"mAP (official) {m['mAP_official']:.2%}  mINP {m['mINP']:.2%}  "
            f"({int(m['num_valid_queries'])}/{int(m['num_queries'])} queries)"
        )
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
