"""The embedded synthetic ReID dataset: a deterministic generator writing the Market-1501 layout.

`generate(out_dir, seed=..., ...)` writes `bounding_box_train/`, `bounding_box_test/` and `query/`
with Market names `PPPP_cCsS_FFFFFF_BB.jpg` (junk `-1_c...`, distractors `0000_c...` in the gallery),
so `datasets.market1501.parse` reads it back. With `layout="msmt17"` the same identities and pixels
are written in MSMT17_V1's layout instead (`train/<pid>/`, `test/<pid>/`, `list_{train,val,query,
gallery}.txt`, names `PPPP_III_CC_0303morning_FFFF_K.jpg`; no distractors or junk, as in MSMT17), read
back by `datasets.msmt17.parse`. Identities are attribute combinations (clothes colours
and patterns, hair, bags, proportions; the coarse combination is unique); cameras differ in colour
cast, background, scale, blur and noise; images vary in view, pose, crop, occlusion and noise.

Determinism: the plan (which identity in which camera, file names, attributes) comes from one RNG
seeded with `seed`; each image's pixels come from an RNG seeded with (seed, kind, pid, cam, k), so
the bytes do not depend on the number of worker processes. JPEGs use quality 90 and no metadata.

Domains: `domain="b"` (the `synthetic_b` dataset) is a second camera network with its own identities
(other RNG streams for the same seed) and shifted looks (`synthetic_draw.DOMAINS`: tinted casts, dark
scenes, blur, noise, crop jitter), for cross-dataset tests; domain "a" is the original, byte for byte.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import pool_context
from . import market1501, msmt17
from .base import Splits
from .msmt17 import Msmt17Options
from .registry import register
from .synthetic_draw import DOMAINS, Camera, Person, person_key, random_camera, random_person, render

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


_DOMAIN_KEY = {"a": (), "b": (101,)}  # domain "a" keeps the original streams; others get their own


def _root(seed: int, domain: str) -> tuple[int, ...]:
    """The RNG key prefix of a domain: its own identities, cameras and pixels for the same seed."""
    if domain not in DOMAINS:
        raise ValueError(f"domain={domain!r} must be one of {', '.join(DOMAINS)} (synthetic.domain)")
    return (seed, *_DOMAIN_KEY[domain])


def _seq(root: int | tuple[int, ...], *keys: int) -> np.random.Generator:
    """The RNG of `keys` under `root` (a seed, or a domain's `_root`)."""
    return np.random.default_rng([*((root,) if isinstance(root, int) else root), *keys])


def _persons(root: int | tuple[int, ...], count: int) -> list[Person]:
    """`count` identities whose coarse attribute combinations are pairwise distinct."""
    out: list[Person] = []
    seen: set[tuple] = set()
    for i in range(count):
        for attempt in range(1000):
            p = random_person(_seq(root, _ATTR, i, attempt))
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
    layout: str = "market1501",
    domain: str = "a",
) -> list[Shot]:
    """Every image of the dataset, in a fixed order (depends only on the arguments).

    With layout "msmt17" the distractors and junk are left out and the shots are renamed into
    MSMT17's layout (`msmt17_shots`); identities, cameras and pixels stay those of the Market plan.
    """
    root = _root(seed, domain)
    planner = _MarketPlanner(_seq(root), root, cameras, min_cameras, images_per_camera)
    n = train_identities + test_identities
    pids = planner.rng.permutation(np.arange(1, n + 1))
    train = set(int(p) for p in pids[:train_identities])
    persons = _persons(root, n)
    shots: list[Shot] = []
    for pid in range(1, n + 1):
        shots += planner.identity_shots(pid, persons[pid - 1], in_train=pid in train)
    for kind, pid, count in ((_DISTRACTOR, 0, distractors), (_JUNK, -1, junk)):
        shots += planner.extra_shots(kind, pid, count)
    if layout == "msmt17":
        return msmt17_shots([s for s in shots if s.pid > 0])
    return shots


@dataclass
class _MarketPlanner:
    """The Market plan's draws, all from one stream `rng` in plan order: pid permutation, each identity's
    cameras and query cameras, the distractors' and junk's cameras and persons, and each file name's
    frame step."""

    rng: np.random.Generator
    root: tuple[int, ...]
    cameras: int
    min_cameras: int
    images_per_camera: int
    frame: int = 0

    def name(self, pid: int, cam: int, k: int) -> str:
        """`PPPP_cCsS_FFFFFF_BB.jpg`; each name advances the frame by a random step."""
        self.frame += int(self.rng.integers(5, 40))
        ptxt = "-1" if pid < 0 else f"{pid:04d}"
        return f"{ptxt}_c{cam}s{1 + (self.frame // 20000) % 6}_{self.frame:06d}_{k + 1:02d}.jpg"

    def identity_shots(self, pid: int, person: Person, *, in_train: bool) -> list[Shot]:
        """The images of identity `pid` in min_cameras..cameras cameras; a test identity's first image in
        about half of its cameras is a query, the rest go to the gallery."""
        ncam = int(self.rng.integers(self.min_cameras, self.cameras + 1))
        cams = sorted(int(c) + 1 for c in self.rng.choice(self.cameras, ncam, replace=False))
        query_cams = (
            set() if in_train else {int(c) for c in self.rng.choice(cams, max(1, ncam // 2), replace=False)}
        )
        shots = []
        for cam in cams:
            for k in range(self.images_per_camera):
                folder = "bounding_box_train" if in_train else "bounding_box_test"
                if cam in query_cams and k == 0:
                    folder = "query"
                shots.append(Shot(folder, self.name(pid, cam, k), pid, cam, k, person))
        return shots

    def extra_shots(self, kind: int, pid: int, count: int) -> list[Shot]:
        """`count` gallery images of raw pid 0 (distractors) or -1 (junk): a random camera, and a random
        person in about 70% of them (background only otherwise)."""
        shots = []
        for k in range(count):
            cam = int(self.rng.integers(1, self.cameras + 1))
            person = random_person(_seq(self.root, kind, k)) if self.rng.random() < 0.7 else None
            shots.append(Shot("bounding_box_test", self.name(pid, cam, k), pid, cam, k, person))
        return shots


MSMT17_LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
VAL_EVERY = 14  # every 14th train image goes to list_val.txt (MSMT17: 2,373 of 32,621, about 1 in 14)


def msmt17_shots(shots: list[Shot]) -> list[Shot]:
    """Market-plan shots renamed into MSMT17_V1's layout; `folder` is `<list split>:<image folder>/<pid>`.

    List pids number train and test identities from 0 each, in ascending raw pid order.
    """
    train_pids = sorted({s.pid for s in shots if s.folder == "bounding_box_train"})
    test_pids = sorted({s.pid for s in shots if s.folder != "bounding_box_train"})
    label = {**{p: n for n, p in enumerate(train_pids)}, **{p: n for n, p in enumerate(test_pids)}}
    counter: dict[int, int] = {}
    out: list[Shot] = []
    n_train = 0
    for s in shots:
        idx = counter[s.pid] = counter.get(s.pid, -1) + 1
        lp = label[s.pid]
        name = f"{lp:04d}_{idx:03d}_{s.cam:02d}_0303morning_{(7 * idx + s.cam) % 10000:04d}_{s.k}.jpg"
        if s.folder == "bounding_box_train":
            split = "val" if n_train % VAL_EVERY == VAL_EVERY - 1 else "train"
            n_train += 1
            out.append(dataclasses.replace(s, folder=f"{split}:train/{lp:04d}", name=name))
        else:
            split = "query" if s.folder == "query" else "gallery"
            out.append(dataclasses.replace(s, folder=f"{split}:test/{lp:04d}", name=name))
    return out


def _msmt17_lists(out_dir: Path, shots: list[Shot]) -> dict[str, int]:
    """Write list_{train,val,query,gallery}.txt (`<pid folder>/<file> <pid>` lines); count per list."""
    lines: dict[str, list[str]] = {split: [] for split in MSMT17_LISTS}
    for s in shots:
        split, folder = s.folder.split(":")
        pid_folder = folder.split("/")[1]
        lines[split].append(f"{pid_folder}/{s.name} {int(pid_folder)}\n")
    for split, name in MSMT17_LISTS.items():
        (out_dir / name).write_text("".join(lines[split]))
    return {split: len(v) for split, v in lines.items()}


_CAMERAS: dict[tuple[int, str, int, int, int], Camera] = {}


def _camera(seed: int, domain: str, cam: int, height: int, width: int) -> Camera:
    key = (seed, domain, cam, height, width)
    if key not in _CAMERAS:
        _CAMERAS[key] = random_camera(_seq(_root(seed, domain), _CAM, cam), height, width, DOMAINS[domain])
    return _CAMERAS[key]


def draw_shot(shot: Shot, seed: int, height: int, width: int, domain: str = "a") -> bytes:
    """The JPEG bytes of one planned image (of the camera network `domain`)."""
    kind = _IDENTITY if shot.pid > 0 else (_DISTRACTOR if shot.pid == 0 else _JUNK)
    root = _root(seed, domain)
    rng = _seq(root, kind, max(shot.pid, 0), shot.cam, shot.k)
    occluder = (
        random_person(_seq(root, _OCCLUDER, max(shot.pid, 0), shot.cam, shot.k))
        if rng.random() < 0.1
        else None
    )
    arr = render(
        shot.person,
        _camera(seed, domain, shot.cam, height, width),
        rng,
        height,
        width,
        partial=shot.pid <= 0,
        occluder=occluder,
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _draw_task(args: tuple[list[Shot], int, int, int, str]) -> list[bytes]:
    shots, seed, height, width, domain = args
    return [draw_shot(s, seed, height, width, domain) for s in shots]


def generate(  # noqa: PLR0913 - the keywords are SyntheticConfig's fields: generate(out, **config)
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
    layout: str = "market1501",
    domain: str = "a",
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write the dataset into `out_dir` (created; must not hold a dataset yet); return a summary.

    The summary holds image counts per folder, identity counts, junk / distractor counts and the seed.
    `progress(n)` is called after each batch of n images is written.
    """
    out_dir = Path(out_dir)
    _check(seed=seed, cameras=cameras, min_cameras=min_cameras, layout=layout)
    shots = plan(
        seed=seed,
        train_identities=train_identities,
        test_identities=test_identities,
        cameras=cameras,
        images_per_camera=images_per_camera,
        min_cameras=min_cameras,
        distractors=distractors,
        junk=junk,
        layout=layout,
        domain=domain,
    )
    _make_folders(out_dir, shots, layout)
    batch = max(1, images_per_camera * (cameras + min_cameras) // 2)  # about one identity per task
    _draw_all(out_dir, shots, batch, (seed, height, width, domain), workers, progress)
    if layout == "msmt17":  # MSMT17 has no distractors or junk
        distractors = junk = 0
    counts = {"train_identities": train_identities, "test_identities": test_identities}
    counts |= {"distractors": distractors, "junk": junk, "cameras": cameras, "height": height, "width": width}
    return _summary(seed, _lists_and_counts(out_dir, shots, layout), counts, layout=layout, domain=domain)


def _summary(seed: int, images: dict[str, int], counts: dict[str, int], *, layout: str, domain: str) -> dict:
    """synthetic.json's record: the seed, the image counts per folder and the generator's counts; the
    default Market layout and domain a stay unrecorded (the same synthetic.json bytes as before)."""
    return {
        "seed": seed,
        "images": images,
        **counts,
        **({"layout": layout} if layout != "market1501" else {}),
        **({"domain": domain} if domain != "a" else {}),
    }


def _lists_and_counts(out_dir: Path, shots: list[Shot], layout: str) -> dict[str, int]:
    """Images per folder (Market); MSMT17 writes its list files and counts images per list."""
    if layout == "msmt17":
        return _msmt17_lists(out_dir, shots)
    return {f: sum(s.folder == f for s in shots) for f in FOLDERS}


def _draw_all(
    out_dir: Path,
    shots: list[Shot],
    batch: int,
    look: tuple[int, int, int, str],
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Draw and write `shots`, `batch` per task, in `workers` processes (the bytes do not depend on it);
    `look` is (seed, height, width, domain)."""
    batches = [shots[i : i + batch] for i in range(0, len(shots), batch)]
    tasks = ((b, *look) for b in batches)
    if workers > 1:
        with pool_context().Pool(workers) as pool:
            _write_all(out_dir, batches, pool.imap(_draw_task, tasks, chunksize=4), progress)
    else:
        _write_all(out_dir, batches, map(_draw_task, tasks), progress)


def _check(*, seed: int, cameras: int, min_cameras: int, layout: str) -> None:
    """Refuse settings the generator cannot honour, naming the synthetic.* key."""
    if not 2 <= min_cameras <= cameras:
        raise ValueError(f"min_cameras={min_cameras} must be in 2..cameras={cameras}")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0 (synthetic.seed)")
    if layout not in ("market1501", "msmt17"):
        raise ValueError(f"layout={layout!r} must be market1501 or msmt17 (synthetic.layout)")


def _make_folders(out_dir: Path, shots: list[Shot], layout: str) -> None:
    """Create the split folders (Market) or every `<image folder>/<pid>` folder (MSMT17); out_dir is new."""
    if layout == "msmt17":
        out_dir.mkdir(parents=True, exist_ok=False)
        for folder in sorted({_folder_of(s) for s in shots}):
            (out_dir / folder).mkdir(parents=True)
    else:
        for folder in FOLDERS:
            (out_dir / folder).mkdir(parents=True, exist_ok=False)


def _folder_of(shot: Shot) -> str:
    """The folder a shot is written to, relative to the dataset root (MSMT17 shots carry `split:`)."""
    return shot.folder.split(":", 1)[-1]


def _write_all(
    out_dir: Path,
    batches: list[list[Shot]],
    results: Iterator[list[bytes]],
    progress: Callable[[int], None] | None,
) -> None:
    for shots, data in zip(batches, results, strict=True):
        for shot, blob in zip(shots, data, strict=True):
            (out_dir / _folder_of(shot) / shot.name).write_bytes(blob)
        if progress is not None:
            progress(len(shots))


@register("synthetic", options=Msmt17Options, data_keys=msmt17.DATA_KEYS, generated=True)
@register("synthetic_b", options=Msmt17Options, data_keys=msmt17.DATA_KEYS, generated=True, domain="b")
def parse_generated(root: Path, work_dir: Path, *, train_with_val: bool = True) -> Splits:
    """Read what the synthesize stage wrote: MSMT17 layout if it holds list_train.txt, else Market-1501.

    'synthetic_b' is the synthesize stage with domain b (another camera network)."""
    if (Path(root) / "list_train.txt").is_file():
        return msmt17.parse(root, work_dir, train_with_val=train_with_val)
    return market1501.parse(root, work_dir)
