"""The embedded synthetic ReID dataset: a deterministic generator writing the Market-1501 layout.

`generate(out_dir, seed=..., ...)` writes `bounding_box_train/`, `bounding_box_test/` and `query/`
with Market names `PPPP_cCsS_FFFFFF_BB.jpg` (junk `-1_c...`, distractors `0000_c...` in the gallery),
so `datasets.market1501.parse` reads it back. Identities are attribute combinations (clothes colours
and patterns, hair, bags, proportions; the coarse combination is unique); cameras differ in colour
cast, background, scale, blur and noise; images vary in view, pose, crop, occlusion and noise.

Determinism: the plan (which identity in which camera, file names, attributes) comes from one RNG
seeded with `seed`; each image's pixels come from an RNG seeded with (seed, kind, pid, cam, k), so
the bytes do not depend on the number of worker processes. JPEGs use quality 90 and no metadata.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import pool_context
from .synthetic_draw import Camera, Person, person_key, random_camera, random_person, render

log = logging.getLogger(__name__)

JPEG_QUALITY = 90
FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
_IDENTITY, _DISTRACTOR, _JUNK, _ATTR, _CAM, _OCCLUDER = range(6)


@dataclass(frozen=True)
class Shot:
    """One image to draw: folder, file name, raw pid (0 distractor, -1 junk), 1-based camera, index."""

    folder: str
    name: str
    pid: int
    cam: int
    k: int
    person: Person | None


def _seq(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _persons(seed: int, count: int) -> list[Person]:
    """`count` identities whose coarse attribute combinations are pairwise distinct."""
    out: list[Person] = []
    seen: set[tuple] = set()
    for i in range(count):
        for attempt in range(1000):
            p = random_person(_seq(seed, _ATTR, i, attempt))
            if person_key(p) not in seen:
                break
        seen.add(person_key(p))
        out.append(p)
    return out


def plan(
    *,
    seed: int,
    train_identities: int,
    test_identities: int,
    cameras: int,
    images_per_camera: int,
    min_cameras: int,
    distractors: int,
    junk: int,
) -> list[Shot]:
    """Every image of the dataset, in a fixed order (depends only on the arguments)."""
    rng = _seq(seed)
    n = train_identities + test_identities
    pids = rng.permutation(np.arange(1, n + 1))
    train = set(int(p) for p in pids[:train_identities])
    persons = _persons(seed, n)
    shots: list[Shot] = []
    frame = 0

    def name(pid: int, cam: int, k: int) -> str:
        nonlocal frame
        frame += int(rng.integers(5, 40))
        ptxt = "-1" if pid < 0 else f"{pid:04d}"
        return f"{ptxt}_c{cam}s{1 + (frame // 20000) % 6}_{frame:06d}_{k + 1:02d}.jpg"

    for pid in range(1, n + 1):
        ncam = int(rng.integers(min_cameras, cameras + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(cameras, ncam, replace=False))
        query_cams = (
            set() if pid in train else {int(c) for c in rng.choice(cams, max(1, ncam // 2), replace=False)}
        )
        for cam in cams:
            for k in range(images_per_camera):
                folder = "bounding_box_train" if pid in train else "bounding_box_test"
                if cam in query_cams and k == 0:
                    folder = "query"
                shots.append(Shot(folder, name(pid, cam, k), pid, cam, k, persons[pid - 1]))
    for kind, pid, count in ((_DISTRACTOR, 0, distractors), (_JUNK, -1, junk)):
        for k in range(count):
            cam = int(rng.integers(1, cameras + 1))
            person = random_person(_seq(seed, kind, k)) if rng.random() < 0.7 else None
            shots.append(Shot("bounding_box_test", name(pid, cam, k), pid, cam, k, person))
    return shots


_CAMERAS: dict[tuple[int, int, int, int], Camera] = {}


def _camera(seed: int, cam: int, height: int, width: int) -> Camera:
    key = (seed, cam, height, width)
    if key not in _CAMERAS:
        _CAMERAS[key] = random_camera(_seq(seed, _CAM, cam), height, width)
    return _CAMERAS[key]


def draw_shot(shot: Shot, seed: int, height: int, width: int) -> bytes:
    """The JPEG bytes of one planned image."""
    kind = _IDENTITY if shot.pid > 0 else (_DISTRACTOR if shot.pid == 0 else _JUNK)
    rng = _seq(seed, kind, max(shot.pid, 0), shot.cam, shot.k)
    occluder = (
        random_person(_seq(seed, _OCCLUDER, max(shot.pid, 0), shot.cam, shot.k))
        if rng.random() < 0.1
        else None
    )
    arr = render(shot.person, _camera(seed, shot.cam, height, width), rng, height, width,
                 partial=shot.pid <= 0, occluder=occluder)  # fmt: skip
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _draw_task(args: tuple[list[Shot], int, int, int]) -> list[bytes]:
    shots, seed, height, width = args
    return [draw_shot(s, seed, height, width) for s in shots]


def generate(
    out_dir: Path,
    *,
    seed: int = 0,
    train_identities: int = 150,
    test_identities: int = 150,
    cameras: int = 6,
    images_per_camera: int = 2,
    min_cameras: int = 2,
    distractors: int = 100,
    junk: int = 50,
    height: int = 128,
    width: int = 64,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the dataset into `out_dir` (created; must not hold a dataset yet); return a summary.

    The summary holds image counts per folder, identity counts, junk / distractor counts and the seed.
    `progress(n)` is called after each batch of n images is written.
    """
    out_dir = Path(out_dir)
    if not 2 <= min_cameras <= cameras:
        raise ValueError(f"min_cameras={min_cameras} must be in 2..cameras={cameras}")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0 (synthetic.seed)")
    shots = plan(
        seed=seed, train_identities=train_identities, test_identities=test_identities, cameras=cameras,
        images_per_camera=images_per_camera, min_cameras=min_cameras, distractors=distractors, junk=junk,
    )  # fmt: skip
    for folder in FOLDERS:
        (out_dir / folder).mkdir(parents=True, exist_ok=False)
    batch = max(1, images_per_camera * (cameras + min_cameras) // 2)  # about one identity per task
    batches = [shots[i : i + batch] for i in range(0, len(shots), batch)]
    tasks = ((b, seed, height, width) for b in batches)
    if workers > 1:
        with pool_context().Pool(workers) as pool:
            _write_all(out_dir, batches, pool.imap(_draw_task, tasks, chunksize=4), progress)
    else:
        _write_all(out_dir, batches, map(_draw_task, tasks), progress)
    counts = {f: sum(s.folder == f for s in shots) for f in FOLDERS}
    return {
        "seed": seed,
        "images": counts,
        "train_identities": train_identities,
        "test_identities": test_identities,
        "distractors": distractors,
        "junk": junk,
        "cameras": cameras,
        "height": height,
        "width": width,
    }


def _write_all(
    out_dir: Path,
    batches: list[list[Shot]],
    results: Iterator[list[bytes]],
    progress: Callable[[int], None] | None,
) -> None:
    for shots, data in zip(batches, results, strict=True):
        for shot, blob in zip(shots, data, strict=True):
            (out_dir / shot.folder / shot.name).write_bytes(blob)
        if progress is not None:
            progress(len(shots))
