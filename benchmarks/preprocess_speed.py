"""Preprocess decode + resize speed: the stage's process pool vs a single-process Pillow loop.

Generates a Market-format folder of synthetic JPEGs (default ~3,300 images at Market's 128x64; use
--height/--width for larger sources), then times on the same files:
  (a) the stage's decode+resize (`imageio.decode_many`, `--workers` processes, ordered chunked imap),
  (b) a plain loop in one process: Image.open -> convert("RGB") -> resize(bilinear) -> numpy,
  (c) the whole preprocess stage (parse, validate, decode, write arrays / manifest / report, baseline),
and prints images/s of each and the ratio (a)/(b). The pool's start-up cost is included in (a).

    python benchmarks/preprocess_speed.py [--ids 200] [--height 128 --width 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spherereid.config import DataConfig
from spherereid.data.datasets import market1501
from spherereid.data.datasets.synthetic import generate
from spherereid.data.imageio import DecodeTask, decode_many
from spherereid.stages import preprocess


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _pool(paths: list[Path], h: int, w: int, workers: int, out: Path) -> tuple[float, float]:
    """As the stage does it: workers write rows of an .npy memory map, only hashes come back."""
    t, c = time.perf_counter(), _cpu()
    np.lib.format.open_memmap(out, "w+", np.uint8, (len(paths), h, w, 3)).flush()
    tasks = [DecodeTask(str(p), None, h, w, out=str(out), row=r) for r, p in enumerate(paths)]
    n = sum(r.ok for r in decode_many(iter(tasks), workers=workers, total=len(tasks)))
    assert n == len(paths)
    return time.perf_counter() - t, _cpu() - c


def _loop(paths: list[Path], h: int, w: int) -> tuple[float, float]:
    t, c = time.perf_counter(), _cpu()
    for p in paths:
        with Image.open(p) as img:
            np.asarray(img.convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
    return time.perf_counter() - t, _cpu() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=200, help="train and test identities each")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--stored", default="144x72", help="stored size HxW (params.yaml data.stored_*)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sh, sw = (int(v) for v in args.stored.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t = time.perf_counter()
        generate(
            raw,
            seed=0,
            train_identities=args.ids,
            test_identities=args.ids,
            cameras=6,
            images_per_camera=2,
            min_cameras=2,
            distractors=100,
            junk=50,
            height=args.height,
            width=args.width,
            workers=args.workers,
        )
        gen = time.perf_counter() - t
        s = market1501.parse(raw, Path(tmp) / "work")
        paths = [i.path for i in s.train + s.query + s.gallery]
        n = len(paths)
        size = f"{args.height}x{args.width} -> {sh}x{sw}"
        print(f"{n} JPEGs {size}; generated in {gen:.1f} s ({n / gen:.0f} img/s)")
        _loop(paths[:200], sh, sw)  # warm the page cache and imports
        pool, pool_cpu = min(
            _pool(paths, sh, sw, args.workers, Path(tmp) / "a.npy") for _ in range(args.repeats)
        )
        loop, loop_cpu = min(_loop(paths, sh, sw) for _ in range(args.repeats))
        data = DataConfig(stored_height=sh, stored_width=sw, workers=args.workers)
        t = time.perf_counter()
        preprocess.run(dataset="synthetic", raw_dir=raw, out_dir=Path(tmp) / "prep", data=data)
        stage = time.perf_counter() - t
    best = f"best of {args.repeats}"
    rows = [
        (f"(a) stage decode+resize, {args.workers} processes", pool, f"{best}; {pool_cpu:.2f} CPU s"),
        ("(b) single-process Pillow loop", loop, f"{best}; {loop_cpu:.2f} CPU s"),
        ("(c) whole preprocess stage", stage, "one run"),
    ]
    for label, secs, note in rows:
        print(f"{label:40s} {n / secs:6.0f} img/s ({secs:.2f} s, {note})")
    print(f"ratio (a)/(b): {loop / pool:.2f}x in images/s; CPU per image (a)/(b): {pool_cpu / loop_cpu:.2f}")
    load = os.getloadavg()[0]
    print(
        f"load average at the end: {load:.1f} on {os.cpu_count()} cores (other work on the machine slows (a))"
    )


if __name__ == "__main__":
    main()
