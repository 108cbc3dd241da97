"""Preprocess a generated MSMT17-size release (real counts and naming, tiny JPEGs) and print the time.

Counts: 1,041 train identities (30,248 list_train + 2,373 list_val images), 3,060 test identities
(11,659 query + 82,161 gallery images), 15 cameras: 126,441 images in MSMT17_V1's layout with its
four list files. Usage: python benchmarks/msmt17_scale.py [--dir /tmp/msmt17_scale] [--workers 2] [--keep]
The folder is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from spherereid.config import DataConfig, load_params
from spherereid.stages import preprocess

COUNTS = {"train": 30_248, "val": 2_373, "query": 11_659, "gallery": 82_161}
IDS = {"train": 1_041, "test": 3_060}
LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}


def _entries() -> dict[str, list[tuple[str, str, int]]]:
    """(image folder, `<pid folder>/<name>`, list pid) per list, in the real counts and naming."""
    out: dict[str, list[tuple[str, str, int]]] = {}
    for split, n in COUNTS.items():
        test = split in ("query", "gallery")
        ids, shift = IDS["test" if test else "train"], {"train": 0, "val": 4, "query": 0, "gallery": 7}[split]
        rows = []
        for j in range(n):
            pid, cam = j % ids, (j // ids + shift) % 15 + 1
            name = f"{pid:04d}_{split[0]}{j // ids:02d}_{cam:02d}_0303morning_{j % 10000:04d}_0.jpg"
            rows.append(("test" if test else "train", f"{pid:04d}/{name}", pid))
        out[split] = rows
    return out


def _write_chunk(args: tuple[Path, list[tuple[str, str]], int]) -> int:
    folder, rows, seed = args
    rng = np.random.default_rng(seed)
    for image_dir, rel in rows:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(buf, "JPEG", quality=75)
        (folder / image_dir / rel).write_bytes(buf.getvalue())
    return len(rows)


def generate(folder: Path, workers: int) -> int:
    """Write the release into `folder` (MSMT17_V1 layout); return the number of images."""
    entries = _entries()
    rows = [(d, rel) for split in LISTS for d, rel, _ in entries[split]]
    for d in sorted({f"{d}/{rel.split('/')[0]}" for d, rel in rows}):
        (folder / d).mkdir(parents=True, exist_ok=True)
    for split, name in LISTS.items():
        (folder / name).write_text("".join(f"{rel} {pid}\n" for _, rel, pid in entries[split]))
    chunks = [(folder, rows[a : a + 2000], a) for a in range(0, len(rows), 2000)]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_write_chunk, chunks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/msmt17_scale"))
    ap.add_argument("--params", default="params.yaml", help="params file whose data section is used")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    raw, out = args.dir / "MSMT17_V1", args.dir / "prepared"
    shutil.rmtree(args.dir, ignore_errors=True)
    try:
        t0 = time.perf_counter()
        n = generate(raw, args.workers)
        t1 = time.perf_counter()
        print(f"generated {n} images in {t1 - t0:.1f} s")
        base = load_params(args.params).data if Path(args.params).is_file() else DataConfig()
        data = dataclasses.replace(base, workers=args.workers)
        res = preprocess.run(dataset="msmt17", raw_dir=raw, out_dir=out, data=data)
        t2 = time.perf_counter()
        print(
            f"preprocess (stored {data.stored_height}x{data.stored_width}, {args.workers} workers): "
            f"{t2 - t1:.1f} s, {n / (t2 - t1):.0f} images/s; {res.num_images}, {res.num_classes} classes, "
            f"{res.skipped} skipped"
        )
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
