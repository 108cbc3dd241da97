"""Cross-evaluate stage: one trained model on every dataset's query/gallery -> <out>/<test>.json.

    python -m spherereid.stages.cross_evaluate --params params.yaml --model synthetic \
        --train outputs/synthetic/train --eval outputs/synthetic/eval --prepared-root data/prepared \
        --out outputs/cross/runs/synthetic

The test images go through the model's own evaluated chain (`<eval>/chain.json`), under each test
set's protocol. The model's own set is not evaluated again: its row is the evaluate stage's
metrics.json. Test sets without a query/gallery (train-only) are skipped with a log line and left out.
With `--registration <register>/registration.json` the registered model version gets the results as
`xeval.<test>.<metric>` tags (tracking.registry); nothing else is logged to MLflow here.
The network code (torch, torchvision: seconds of imports) is loaded only when another test set is
evaluated: with one dataset (the quickstart) the stage only copies the evaluate stage's row.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from ..config import EvaluateConfig, load_params
from ..contracts import CHAIN_FILE, METRICS_FILE, MODEL_FILE, RUN_FILE
from ..data.manifest import PreparedSet
from ..entrypoint import run_cli
from ..reporting.cross_card import cross_section, with_cross_section
from ..tracking import registry, runs

log = logging.getLogger(__name__)


class CrossEvaluateError(ValueError):
    """A cross-evaluation input is missing or unreadable: the message names the file."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CrossEvaluateError(f"{path}: cannot read it ({e}); run the evaluate stage first") from None


def evaluate_on(train_dir: Path, chain: dict, prepared_dir: Path, evaluate: EvaluateConfig) -> dict:
    """The reported metrics of the model in `train_dir` on `prepared_dir`'s query (Q) / gallery (G), through
    `chain` (the evaluate stage's chain.json)."""
    from ..data.image_chain import ImageChain
    from ..device import resolve_device
    from ..evaluation.measure import measure
    from ..inference import extract_splits
    from ..training import saved_model

    prepared = PreparedSet(prepared_dir)
    query, gallery = prepared.split("query"), prepared.split("gallery")
    load = partial(saved_model.load_model, train_dir / MODEL_FILE)
    qf, gf = extract_splits(
        load, ImageChain.from_dict(chain), query, gallery, evaluate.batch_size, resolve_device("auto")
    )
    return measure(prepared.protocol, qf, gf, query, gallery, evaluate).reported()


def run(
    *,
    model: str,
    train_dir: Path,
    eval_dir: Path,
    prepared_root: Path,
    tests: Sequence[str],
    out_dir: Path,
    evaluate: EvaluateConfig,
) -> dict[str, dict]:
    """Evaluate dataset `model`'s trained model on each of `tests`; write <out_dir>/<test>.json."""
    train_dir, eval_dir, out_dir = Path(train_dir), Path(eval_dir), Path(out_dir)
    chain = _read_json(eval_dir / CHAIN_FILE)  # an ImageChain once another test set is evaluated
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):  # a dataset dropped from the list leaves no old result
        stale.unlink()
    results: dict[str, dict] = {}
    for test in tests:
        if test == model:
            found = _read_json(eval_dir / METRICS_FILE)
            found.pop("protocol", None)
        else:
            prepared = PreparedSet(Path(prepared_root) / test)
            if prepared.protocol.get("name") == "train-only":
                log.warning("cross-evaluation %s -> %s skipped: %s has no query/gallery", model, test, test)
                continue
            found = evaluate_on(train_dir, chain, Path(prepared_root) / test, evaluate)
        results[test] = {"train": model, "test": test, "metrics": found}
        (out_dir / f"{test}.json").write_text(json.dumps(results[test], indent=2) + "\n")
        log.info("cross-evaluation %s -> %s: rank1 %.4f mAP %.4f", model, test, found["rank1"], found["mAP"])
    return results


def record_on_version(name: str, version: int, model: str, results: dict[str, dict]) -> dict[str, str]:
    """Registered model `name` version `version` (trained on `model`) gets `xeval.<test>.<metric>` tags
    and a cross-dataset table in its model card (results: {test: metrics}); returns the tags. DVC finds
    the version in registration.json, KFP from the training run's tags (registry.registered_version)."""
    tags = registry.tag_version(name, version, results)
    section = cross_section(model, results)
    registry.rewrite_description(name, version, lambda card: with_cross_section(card, section))
    return tags


def record_for_training_run(train_dir: Path, model: str, results: dict[str, dict]) -> str:
    """KFP's way in: the version the training run in `train_dir` was registered as gets the tags and the
    card table (record_on_version); a run the quality gate refused has none. Returns what was done."""
    registered = registry.registered_version(runs.read_run_ref(Path(train_dir) / RUN_FILE))
    if registered is None:
        return "not registered (quality gate refused): no xeval tags"
    tags = record_on_version(*registered, model, results)
    return f"tagged {', '.join(tags)}; model card: cross-dataset table"


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.cross_evaluate") -> int:
    """CLI: one model against every dataset of the params file's `datasets` list."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="the dataset the model was trained on")
    ap.add_argument("--train", type=Path, required=True, help="its train stage folder")
    ap.add_argument("--eval", type=Path, required=True, help="its evaluate stage folder")
    ap.add_argument("--prepared-root", type=Path, default=Path("data/prepared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--registration",
        type=Path,
        default=None,
        help="the register stage's registration.json: tag its version xeval.<test>.<metric>",
    )
    args = ap.parse_args(argv)

    def body() -> int:
        params = load_params(args.params)
        res = run(
            model=args.model,
            train_dir=args.train,
            eval_dir=args.eval,
            prepared_root=args.prepared_root,
            tests=params.datasets,
            out_dir=args.out,
            evaluate=params.evaluate,
        )
        print(f"cross-evaluated {args.model} on {', '.join(res)} -> {args.out}")
        if args.registration is not None:
            reg = _read_json(args.registration)
            name, version = reg["name"], int(reg["version"])
            tags = record_on_version(name, version, args.model, {t: r["metrics"] for t, r in res.items()})
            print(f"tagged {name} version {version}: {', '.join(tags)}; model card: cross-dataset table")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    from spherereid.stages import cross_evaluate as stage

    sys.exit(stage.main())
