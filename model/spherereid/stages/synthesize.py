"""Synthesize stage: write the embedded synthetic ReID dataset (Market-1501 layout) to `out_dir`.

The dataset is generated into a sibling temporary folder `.tmp-<name>-<pid>` and renamed into place,
so a killed run never leaves a half dataset at `out_dir` (the next run removes its temporary folder).
`out_dir/synthetic.json` records the configuration and the counts; a folder whose record matches the
requested configuration is reused as it is.

The main job (DVC) calls `run_needed` (`--root data/raw`): every generated dataset of the registry is one
output of the stage, `<root>/<name>`, but only those the `datasets` entries use (a part of an 'a+b' union
counts) are drawn; each other one is a placeholder folder holding only its synthetic.json, which says so.
So the quickstart (`datasets: [synthetic]`) does not draw synthetic_b, and a changed `datasets` list draws
what it needs at the next `dvc repro` (a dataset already drawn with this configuration is reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SyntheticConfig, load_params
from ..data import datasets as registry
from ..data.datasets.synthetic import generate, plan
from ..entrypoint import run_cli
from ..progress import tqdm

log = logging.getLogger(__name__)
RECORD = "synthetic.json"


class SynthesizeError(ValueError):
    """The output folder cannot be written (e.g. it exists and is not a synthetic dataset)."""


@dataclass(frozen=True)
class SynthesizeResult:
    """Where the dataset is, its image counts per folder and whether an existing one was reused."""

    out_dir: Path
    images: dict[str, int]
    reused: bool


def _record(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None


def _refuse_a_foreign_folder(out_dir: Path, record: dict[str, Any] | None, fix: str) -> None:
    """A non-empty `out_dir` without a synthetic.json (`record` None) is not ours: never replaced."""
    if out_dir.exists() and record is None and any(out_dir.iterdir()):
        raise SynthesizeError(
            f"{out_dir}: exists, is not empty and holds no {RECORD}; refusing to replace it{fix}"
        )


def run(*, synthetic: SyntheticConfig, out_dir: Path, workers: int = 2) -> SynthesizeResult:
    """Generate the dataset described by `synthetic` into `out_dir` (replacing an older synthetic one)."""
    out_dir = Path(out_dir)
    if synthetic.seed < 0:
        raise SynthesizeError(f"synthetic.seed must be >= 0, got {synthetic.seed}")
    config = _recorded_config(synthetic)
    old = _record(out_dir)
    if old is not None and old.get("config") == config:
        log.info("%s already holds the synthetic dataset for this configuration; reusing it", out_dir)
        return SynthesizeResult(out_dir, dict(old["summary"]["images"]), True)
    _refuse_a_foreign_folder(out_dir, old, " (choose another --out)")
    summary = _generate_into(out_dir, config, workers)
    log.info("synthetic dataset written to %s: %s", out_dir, summary["images"])
    return SynthesizeResult(out_dir, dict(summary["images"]), False)


def _recorded_config(synthetic: SyntheticConfig) -> dict[str, Any]:
    """The configuration as synthetic.json records it: the default layout and domain are left out, as
    before those options existed (the same synthetic.json, so an existing dataset is reused)."""
    config = dataclasses.asdict(synthetic)
    if config["layout"] == "market1501":
        del config["layout"]
    if config["domain"] == "a":
        del config["domain"]
    return config


def _generate_into(out_dir: Path, config: dict[str, Any], workers: int) -> dict[str, Any]:
    """Generate into a temporary sibling of `out_dir`, record synthetic.json, then swap it in for
    `out_dir`; return the generator's summary."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.iterdir():  # left by killed runs (kill -9 skips the finally below)
        if stale.is_dir() and re.fullmatch(rf"\.tmp-{re.escape(out_dir.name)}-\d+", stale.name):
            shutil.rmtree(stale)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{os.getpid()}"
    total = len(plan(**{k: v for k, v in config.items() if k not in ("height", "width")}))
    try:
        with tqdm(desc="synthesize", unit="img", total=total) as bar:
            summary = generate(tmp, **config, workers=workers, progress=bar.update)
        (tmp / RECORD).write_text(json.dumps({"config": config, "summary": summary}, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return summary


def generated_datasets() -> dict[str, str]:
    """`name -> domain` of every dataset the registry marks as generated ("" = synthetic.domain)."""
    specs = (registry.get(name) for name in registry.names())
    return {spec.name: spec.domain for spec in specs if spec.generated}


def needed(datasets: Sequence[str]) -> set[str]:
    """The generated datasets that the `datasets` entries use, each part of an 'a+b' union included."""
    parts = {part for entry in datasets for part in entry.split("+")}
    return parts & set(generated_datasets())


def run_needed(
    *, synthetic: SyntheticConfig, datasets: Sequence[str], root: Path, workers: int = 2
) -> dict[str, SynthesizeResult | None]:
    """Each generated dataset into `root/<name>`: drawn (`run`) when `datasets` uses it, else a placeholder
    (None in the result)."""
    root, wanted = Path(root), needed(datasets)
    results: dict[str, SynthesizeResult | None] = {}
    for name, domain in generated_datasets().items():
        if name in wanted:
            config = dataclasses.replace(synthetic, domain=domain) if domain else synthetic
            results[name] = run(synthetic=config, out_dir=root / name, workers=workers)
        else:
            write_placeholder(root / name, name)
            results[name] = None
    return results


def write_placeholder(out_dir: Path, name: str) -> None:
    """`out_dir` holding only a synthetic.json that says why `name` is not drawn (DVC declares every
    generated dataset as an output of the stage); an older synthetic dataset there is replaced."""
    note = (
        f"{name} is not drawn: no entry of the params file's `datasets` uses it (list it there and rerun "
        "to draw it)"
    )
    record = {"placeholder": True, "dataset": name, "note": note}
    old = _record(out_dir)
    if old == record:
        return
    _refuse_a_foreign_folder(out_dir, old, f" with the placeholder of {name} (move it away)")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s: placeholder (%s)", out_dir, note)


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.synthesize") -> int:
    """CLI: python -m spherereid.stages.synthesize --params params.yaml --out data/raw/synthetic, or
    --root data/raw: every generated dataset the params file's `datasets` uses (the others: placeholders)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (section 'synthetic' is used)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=Path("data/raw/synthetic"), help="output folder")
    where.add_argument(
        "--root",
        type=Path,
        default=None,
        help="write each generated dataset to ROOT/<name>: drawn when the params file's `datasets` uses it, "
        "else a placeholder (the main job's DVC stage)",
    )
    ap.add_argument(
        "--domain",
        choices=("a", "b"),
        default=None,
        help="camera network, overriding synthetic.domain (b: the synthetic_b dataset; not with --root)",
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="drawing processes (the bytes do not depend on it)"
    )
    args = ap.parse_args(argv)
    if args.root is not None and args.domain is not None:
        ap.error("--domain: each dataset under --root has its own camera network; drop --domain")

    def body() -> int:
        params = load_params(args.params)
        synthetic, workers = params.synthetic, max(1, args.workers)
        if args.root is not None:
            made = run_needed(synthetic=synthetic, datasets=params.datasets, root=args.root, workers=workers)
            for name, res in made.items():
                said = _said(res) if res is not None else "placeholder (no entry of datasets uses it)"
                print(f"{args.root / name}: {said}")
            return 0
        if args.domain is not None:
            synthetic = dataclasses.replace(synthetic, domain=args.domain)
        res = run(synthetic=synthetic, out_dir=args.out, workers=workers)
        print(f"synthetic dataset in {res.out_dir}: {_said(res)}")
        return 0

    return run_cli(body)


def _said(res: SynthesizeResult) -> str:
    return f"{res.images}" + (" (reused)" if res.reused else "")


if __name__ == "__main__":
    # `python -m` runs this file as __main__: call the main() of the imported package module instead,
    # so that errors raised are the spherereid.stages.synthesize classes run_cli reports in one line
    from spherereid.stages import synthesize as stage

    sys.exit(stage.main())
