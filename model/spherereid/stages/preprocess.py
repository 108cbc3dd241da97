"""Preprocess stage: parse a raw dataset, validate it, decode + resize once, write the prepared set.

Writes into `out_dir`: images_{train,query,gallery}.npy (N, H, W, 3) uint8 at the stored size,
manifest.csv, report.json, report.md and, last, dataset.json (a prepared dir without it is
incomplete: a killed run never looks finished). Files are first written to `out_dir/.tmp-<pid>/`.
Scratch files of the parser (extracted archives) go to `out_dir/work/`; nothing is written elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig, load_params
from ..data import datasets
from ..data.datasets.base import Item, Skipped, Splits
from ..data.imageio import MAX_PIXELS, DecodeTask, decode_many
from ..data.manifest import (
    INFO,
    SPLITS,
    Entry,
    PreparedSet,
    create_image_array,
    describe_sources,
    image_array_path,
    write_manifest,
)
from ..entrypoint import run_cli
from ..evaluation.baseline import raw_pixel_baseline
from ..progress import tqdm
from ..reporting.report import (
    FIRST,
    duplicate_images,
    identity_overlap,
    queries_without_match,
    single_image_identities,
    skipped_files_paths,
    skipped_summary,
    split_stats,
    write_report,
    write_skipped_files,
)

log = logging.getLogger(__name__)


class PreprocessError(ValueError):
    """The dataset cannot be prepared (too many bad files, empty split, overlapping identities, ...)."""


@dataclass(frozen=True)
class PreprocessResult:
    """What preprocess wrote: image counts per split, classes, skipped files and the baseline."""

    out_dir: Path
    num_images: dict[str, int]
    num_classes: int
    skipped: int
    baseline: dict[str, Any]


def _folder(items: list[Item]) -> str:
    return os.path.commonpath([str(Path(i.path).parent) for i in items]) if items else "?"


def _check_bad_fraction(skipped: list[Skipped], candidates: int, limit: float, out_dir: Path) -> float:
    """The skipped fraction; above `limit`, write every skipped file with its reason (markdown and JSON)
    to out_dir and raise PreprocessError naming that report, so all bad files can be fixed in one go."""
    fraction = len(skipped) / candidates if candidates else 0.0
    if fraction > limit:
        md, js = write_skipped_files(out_dir, skipped, candidates, limit)
        first = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        raise PreprocessError(
            f"{len(skipped)} of {candidates} files skipped ({100 * fraction:.1f}%), above "
            f"data.max_bad_fraction={limit}; first: {first}. Every skipped file with its reason: {md} "
            f"(JSON: {js.name}). Fix or remove these files, or raise the limit"
        )
    for stale in skipped_files_paths(out_dir):  # from an earlier refused run
        stale.unlink(missing_ok=True)
    return fraction


def _decode(splits: Splits, tmp: Path, height: int, width: int, workers: int) -> tuple[dict, list[Skipped]]:
    """Decode every split into tmp/images_<split>.npy; return kept (item, sha256, row) per split, failures.

    Workers write each image straight into tmp/all_<split>.npy (one row per parsed item); when some
    items fail, the decoded rows are copied into a smaller array.
    """
    full = {s: tmp / f"all_{s}.npy" for s in SPLITS}
    for s in SPLITS:
        if n := len(getattr(splits, s)):
            # created at full size (zeros); the workers fill it row by row
            np.lib.format.open_memmap(full[s], "w+", np.uint8, (n, height, width, 3)).flush()
    order = [(s, row, item) for s in SPLITS for row, item in enumerate(getattr(splits, s))]
    tasks = (DecodeTask(str(i.path), i.crop, height, width, MAX_PIXELS, str(full[s]), r) for s, r, i in order)
    kept: dict[str, list[tuple[Item, str, int]]] = {s: [] for s in SPLITS}
    bad: list[Skipped] = []
    with tqdm(total=len(order), desc="decode+resize", unit="img") as bar:
        results = decode_many(tasks, workers=workers, total=len(order), progress=bar.update)
        for (split, row, item), res in zip(order, results, strict=True):
            if res.ok:
                kept[split].append((item, res.sha256, row))
            else:
                bad.append(Skipped(item.source or str(item.path), res.reason or "unreadable"))
    for split in SPLITS:
        final, n = image_array_path(tmp, split), len(getattr(splits, split))
        rows = [r for _, _, r in kept[split]]
        if n and len(rows) == n:
            os.replace(full[split], final)
        elif rows:  # some images failed: keep the decoded rows only
            src = np.load(full[split], mmap_mode="r")
            out = create_image_array(tmp, split, len(rows), height, width)
            for a in range(0, len(rows), 1024):
                out[a : a + 1024] = src[rows[a : a + 1024]]
            out.flush()
            del out, src
        else:
            np.save(final, np.zeros((0, height, width, 3), np.uint8))
        full[split].unlink(missing_ok=True)
    return kept, bad


def _unmatched_queries(
    query: list[Item], gallery: list[Item], galleries: list[list[int]] | None
) -> list[int]:
    """Indices of queries without a gallery match; PreprocessError if no query has one."""
    nomatch = queries_without_match(query, gallery, galleries)
    if query and len(nomatch) == len(query):
        raise PreprocessError(
            f"{_folder(query)}: none of the {len(query)} queries has a gallery image of its identity "
            f"(from another camera) in {_folder(gallery)}, so nothing can be evaluated; add gallery "
            "images of the query identities"
        )
    return nomatch


def _remap_protocol(protocol: dict[str, Any], splits: Splits, kept: dict) -> dict[str, Any]:
    """Per-query gallery index lists (CUHK-SYSU) re-indexed after dropped images."""
    if "galleries" not in protocol:
        return dict(protocol)
    new_g = {id(item): n for n, (item, _, _) in enumerate(kept["gallery"])}
    old_to_new = {k: new_g[id(item)] for k, item in enumerate(splits.gallery) if id(item) in new_g}
    kept_q = {id(item) for item, _, _ in kept["query"]}
    galleries = [
        [old_to_new[g] for g in gal if g in old_to_new]
        for q, gal in zip(splits.query, protocol["galleries"], strict=True)
        if id(q) in kept_q
    ]
    return {**protocol, "galleries": galleries}


def run(*, dataset: str, raw_dir: Path, out_dir: Path, data: DataConfig) -> PreprocessResult:
    """Parse -> validate -> decode/resize -> write manifest, arrays, report; dataset.json last."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if raw_dir.resolve() == out_dir.resolve() or raw_dir.resolve().is_relative_to(out_dir.resolve()):
        raise PreprocessError(f"{out_dir}: the output folder must not be (or contain) the raw data {raw_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    try:
        return _prepare(dataset, raw_dir, out_dir, work, data)
    finally:  # scratch space left empty (nothing extracted, or a failed run) is not kept
        if work.is_dir() and not any(work.iterdir()):
            work.rmdir()


def _prepare(dataset: str, raw_dir: Path, out_dir: Path, work: Path, data: DataConfig) -> PreprocessResult:
    splits = datasets.parse(dataset, raw_dir, work, data)
    train_only = splits.protocol.get("name") == "train-only"
    candidates = sum(len(getattr(splits, s)) for s in SPLITS) + len(splits.skipped)
    # The bad-file limit is checked after decoding, so that a refusal lists the files the parser
    # skipped and the ones that fail to decode together.
    overlap = identity_overlap(splits.train, splits.query + splits.gallery)
    if overlap:
        raise PreprocessError(
            f"{raw_dir}: {len(overlap)} identities are in both train and query/gallery (first: "
            f"{', '.join(map(str, overlap[:FIRST]))}); train and test identities must be disjoint"
        )
    _unmatched_queries(splits.query, splits.gallery, splits.protocol.get("galleries"))
    (out_dir / INFO).unlink(missing_ok=True)  # from here on the folder does not look complete
    for stale in out_dir.glob(".tmp-*"):
        shutil.rmtree(stale)
    tmp = out_dir / f".tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        kept, bad = _decode(splits, tmp, data.stored_height, data.stored_width, data.workers)
        skipped = list(splits.skipped) + bad
        fraction = _check_bad_fraction(skipped, candidates, data.max_bad_fraction, out_dir)
        for split in SPLITS:
            if not kept[split] and not (train_only and split != "train"):
                raise PreprocessError(
                    f"{_folder(getattr(splits, split))}: no usable images left for the {split} split "
                    f"({len(getattr(splits, split))} found, all unreadable)"
                )
        report, entries, info = _summarise(dataset, raw_dir, data, splits, kept, skipped, fraction, tmp)
        write_manifest(tmp, entries, info)
        (tmp / INFO).unlink()
        write_report(tmp, report)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
        _write_info_last(out_dir, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s in %s: %s", dataset, out_dir, info["num_images"])
    return PreprocessResult(
        out_dir, info["num_images"], info["num_classes"], len(skipped), report["baseline"]
    )


def _write_info_last(out_dir: Path, info: dict[str, Any]) -> None:
    part = out_dir / (INFO + ".partial")
    part.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(part, out_dir / INFO)


def _summarise(
    dataset: str,
    raw_dir: Path,
    data: DataConfig,
    splits: Splits,
    kept: dict,
    skipped: list[Skipped],
    fraction: float,
    tmp: Path,
) -> tuple[dict[str, Any], list[Entry], dict[str, Any]]:
    """Validation figures, manifest rows and dataset.json contents of the decoded set."""
    items = {s: [it for it, _, _ in kept[s]] for s in SPLITS}
    labels = datasets.relabel(i.pid for i in items["train"])
    entries = [
        Entry(
            s, n, it.pid, it.camid, labels[it.pid] if s == "train" else -1, it.source or it.path.name, digest
        )
        for s in SPLITS
        for n, (it, digest, _) in enumerate(kept[s])
    ]
    protocol = _remap_protocol(splits.protocol, splits, kept)
    if "sources" in protocol:  # combined set: each source's rows and version
        protocol["sources"] = describe_sources(entries, protocol["sources"])
    num_images = {s: len(items[s]) for s in SPLITS}
    info = {
        "dataset": dataset,
        "height": data.stored_height,
        "width": data.stored_width,
        "num_classes": len(labels),
        "protocol": protocol,
        "num_images": num_images,
    }
    warnings = _warnings(items, entries, protocol)
    report = {
        "dataset": dataset,
        "raw_dir": str(raw_dir),
        "height": data.stored_height,
        "width": data.stored_width,
        "num_classes": len(labels),
        "protocol_name": protocol.get("name", "market"),
        "junk_dropped": int(protocol.get("junk_dropped", 0)),
        "notes": list(protocol.get("notes", [])),
        "splits": {s: {**split_stats(items[s]), "folder": _folder(items[s])} for s in SPLITS},
        "skipped": _skipped_report(skipped, sum(num_images.values()), fraction, data.max_bad_fraction),
        "warnings": warnings,
        "baseline": _baseline(tmp, protocol, items),
    }
    return report, entries, info


def _warnings(items: dict[str, list[Item]], entries: list[Entry], protocol: dict[str, Any]) -> dict[str, Any]:
    """The report's warnings (queries without a cross-camera match, single-image training identities,
    duplicate images), each logged too; PreprocessError if no query has a match."""
    nomatch = _unmatched_queries(items["query"], items["gallery"], protocol.get("galleries"))
    singles = single_image_identities(items["train"])
    dups = duplicate_images([(e.split, e.source, e.sha256) for e in entries])
    if nomatch:
        log.warning(
            "%d queries have no cross-camera gallery match (first: %s)",
            len(nomatch),
            items["query"][nomatch[0]].source,
        )
    if singles:
        log.warning(
            "%d training identities have a single image (first pids: %s)", len(singles), singles[:FIRST]
        )
    if dups:
        log.warning("%d images duplicate an earlier one (first: %s = %s)", len(dups), *dups[0])
    return {
        "queries_without_match": {
            "count": len(nomatch),
            "first": [items["query"][q].source for q in nomatch[:FIRST]],
        },
        "single_image_identities": {"count": len(singles), "first": singles[:FIRST]},
        "duplicate_images": {"count": len(dups), "first": [list(d) for d in dups[:FIRST]]},
    }


def _skipped_report(skipped: list[Skipped], kept: int, fraction: float, limit: float) -> dict[str, Any]:
    """The report's skipped files: counts (out of the `kept` + skipped candidates), reasons, each file."""
    return {
        "count": len(skipped),
        "candidates": len(skipped) + kept,
        "fraction": fraction,
        "limit": limit,
        "by_reason": skipped_summary(skipped),
        "files": [{"path": s.path, "reason": s.reason} for s in skipped],
    }


def _baseline(tmp: Path, protocol: dict[str, Any], items: dict[str, list[Item]]) -> dict[str, Any]:
    name = protocol.get("name", "market")
    if name != "market":
        return {"note": f"raw-pixel baseline computed only for the standard (market) protocol, not '{name}'"}
    q = np.load(image_array_path(tmp, "query"), mmap_mode="r")
    g = np.load(image_array_path(tmp, "gallery"), mmap_mode="r")
    pid = {s: np.array([i.pid for i in items[s]], dtype=np.int64) for s in ("query", "gallery")}
    cam = {s: np.array([i.camid for i in items[s]], dtype=np.int64) for s in ("query", "gallery")}
    return raw_pixel_baseline(q, g, pid["query"], pid["gallery"], cam["query"], cam["gallery"])


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.preprocess") -> int:
    """CLI: python -m spherereid.stages.preprocess --params params.yaml --dataset NAME --raw DIR --out DIR.

    Errors of this package (DatasetError, ManifestError, ConfigError, PreprocessError) and OS errors
    become one line on stderr and exit code 2 (entrypoint.run_cli).
    """
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (section 'data' is used)")
    ap.add_argument(
        "--dataset", required=True, help=f"one of {', '.join(datasets.names())}, or several joined by '+'"
    )
    ap.add_argument("--raw", required=True, type=Path, help="raw dataset folder (or archive)")
    ap.add_argument("--out", required=True, type=Path, help="prepared output folder")
    args = ap.parse_args(argv)

    def body() -> int:
        res = run(
            dataset=args.dataset, raw_dir=args.raw, out_dir=args.out, data=load_params(args.params).data
        )
        PreparedSet(res.out_dir)  # the written set reads back
        b = res.baseline
        figure = f"rank-1 {100 * b['rank1']:.1f}%, mAP {100 * b['mAP']:.1f}%" if "rank1" in b else b["note"]
        print(f"prepared {args.dataset}: {res.num_images}, {res.num_classes} classes, {res.skipped} skipped")
        print(f"raw-pixel baseline: {figure}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    # `python -m` runs this file as __main__: call the main() of the imported package module instead,
    # so that errors raised are the spherereid.stages.preprocess classes run_cli reports in one line
    from spherereid.stages import preprocess as stage

    sys.exit(stage.main())
