"""CUHK-SYSU (Xiao et al., CVPR 2017) person-search release, read as ReID with ground-truth boxes.

Raw release (looked for in `<root>`, `<root>/CUHK-SYSU`, `<root>/cuhk_sysu`, `<root>/cuhksysu`,
`<root>/dataset`): scenes `Image/SSM/s<N>.jpg`, `annotation/Images.mat` (key `Img`: imname, nAppear,
box[idlocate (x, y, w, h), ishard]), `annotation/test/train_test/Train.mat` (key `Train`: idname,
nAppear, scene[imname, idlocate, ishard]) and `annotation/test/train_test/TestG<N>.mat` (key
`TestG<N>`: Query[imname, idlocate, ishard, idname], Gallery[imname, idlocate, ishard]).
Every item is a scene with `crop=(x, y, w, h)`, cut out by the preprocess stage. Boxes with w or h 0
are skipped (reported).

Pid convention: the number of the person's `idname` (`p1234` -> 1234; the ids of Person.mat and of the
cropped form's file names), so train (Train.mat) and test (TestG Query) identities are disjoint as in
the release; a gallery box of nobody labelled gets a unique pid 1_000_000 + k. Scenes have no
cameras: camid is 0 for train and query items and 1 for gallery items (a Market-style evaluator then
never drops a true match).
Test protocol: query q is the query person's box in its query scene; its gallery is every annotated
box of the N scenes TestG<N> lists for it; protocol = {"name": "cuhk-sysu", "gallery_size": N,
"galleries": [[gallery item indices] per query]}; positives are gallery items with the query's pid.

Pre-cropped form (`cropped_images/p<pid>_s<scene>_<k>.jpg`, as used by torchreid / fast-reid, also
under `cuhksysu/` or `cuhk_sysu/`): train only, pid = <pid>, camid 0, query and gallery empty,
protocol {"name": "train-only"}. It is used only when no raw annotation is found.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import DatasetError, Item, Skipped, Splits
from .matfile import load_v5, mat_str, reading
from .naming import IMAGE_SUFFIXES, inside_root, is_ignored, require_folder
from .registry import register

log = logging.getLogger(__name__)

SUBDIRS = ("", "CUHK-SYSU", "cuhk_sysu", "cuhksysu", "dataset")
UNLABELED_PID_BASE = 1_000_000
CROP_RE = re.compile(r"^p(\d+)_s(\d+)")
IDNAME_RE = re.compile(r"^p?(\d+)$")
Box = tuple[int, int, int, int]
EXPECTED = "CUHK-SYSU annotation file"


def _list(x: Any) -> list[Any]:
    """A MATLAB struct/cell array as a list (squeeze_me turns a 1-element array into a scalar)."""
    return list(np.asarray(x, dtype=object).ravel()) if isinstance(x, np.ndarray) else [x]


def _box(x: Any) -> Box | None:
    """(x, y, w, h) ints, or None for an empty / malformed idlocate."""
    a = np.asarray(x, dtype=np.float64).ravel()
    return tuple(int(round(v)) for v in a) if a.size == 4 else None  # type: ignore[return-value]


def _get(s: Any, name: str, path: Path) -> Any:
    try:
        return getattr(s, name)
    except AttributeError:
        raise DatasetError(
            f"{path}: struct field '{name}' missing; is this the original CUHK-SYSU file?"
        ) from None


def _load(path: Path, key: str) -> list[Any]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing; the CUHK-SYSU raw release has it under annotation/")
    mat = load_v5(path, EXPECTED, squeeze_me=True, struct_as_record=False)
    if key not in mat:
        raise DatasetError(f"{path}: key '{key}' missing; is this the original CUHK-SYSU file?")
    return _list(mat[key])


def _pid(struct: Any, path: Path) -> int:
    """The person id of a struct's `idname` ('p1234' -> 1234)."""
    idname = mat_str(_get(struct, "idname", path))
    m = IDNAME_RE.match(idname.strip())
    if m is None:
        raise DatasetError(
            f"{path}: idname '{idname}' is not p<number>; is this the original CUHK-SYSU file?"
        )
    return int(m.group(1))


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class _Builder:
    """Turns (scene, box) annotations into items, reporting empty boxes and missing scenes."""

    def __init__(self, base: Path, root: Path):
        self.scene_dir = base / "Image" / "SSM"
        if not self.scene_dir.is_dir():
            raise DatasetError(f"{self.scene_dir}: scene folder missing; expected the CUHK-SYSU Image/SSM/")
        self.root = root
        self.present = set(os.listdir(self.scene_dir))
        self.skipped: list[Skipped] = []
        self._missing: set[str] = set()

    def rel(self, imname: str) -> str:
        return (self.scene_dir / imname).relative_to(self.root).as_posix()

    def item(self, imname: str, box: Box | None, pid: int, camid: int, what: str) -> Item | None:
        path = self.scene_dir / imname
        if imname not in self.present or not inside_root(path, self.root):
            if imname not in self._missing:
                self._missing.add(imname)
                self.skipped.append(Skipped(self.rel(imname), f"scene missing or outside the root ({what})"))
            return None
        if box is None or box[2] <= 0 or box[3] <= 0:
            self.skipped.append(Skipped(self.rel(imname), f"empty box {box} ({what})"))
            return None
        src = f"{self.rel(imname)}#{','.join(map(str, box))}"
        return Item(path=path, pid=pid, camid=camid, source=src, crop=box)


def _train(b: _Builder, path: Path) -> list[Item]:
    items = []
    for person in _load(path, "Train"):
        pid = _pid(person, path)
        for app in _list(_get(person, "scene", path)):
            imname = mat_str(_get(app, "imname", path))
            it = b.item(imname, _box(_get(app, "idlocate", path)), pid, 0, f"train person {pid}")
            if it is not None:
                items.append(it)
    return items


def _best_label(todo: list, box: tuple[int, int, int, int] | None) -> Any:
    """The unmatched (box, pid) label overlapping `box` most, if it is the same box or IoU >= 0.5."""
    if box is None:
        return None
    best = max(todo, key=lambda lab: _iou(lab[0], box), default=None)
    return best if best is not None and (best[0] == box or _iou(best[0], box) >= 0.5) else None


Labels = dict[str, list[tuple[Box, int]]]  # scene -> the labelled (box, pid) pairs TestG gives it


def _test(b: _Builder, base: Path, gallery_size: int) -> tuple[list[Item], list[Item], list[list[int]]]:
    """Queries, gallery items and each query's gallery (item indices) of the TestG<gallery_size> protocol."""
    queries, query_scenes, labels = _test_queries(b, base, gallery_size)
    boxes = _scene_boxes(base)
    gallery, scene_items = _gallery(b, query_scenes, labels, boxes)
    galleries = [[i for s in scenes for i in scene_items[s]] for scenes in query_scenes]
    return queries, gallery, galleries


def _test_queries(b: _Builder, base: Path, gallery_size: int) -> tuple[list[Item], list[list[str]], Labels]:
    """TestG<N>.mat: the usable queries, the gallery scenes of each, and the labelled boxes per scene."""
    path = base / "annotation" / "test" / "train_test" / f"TestG{gallery_size}.mat"
    queries: list[Item] = []
    query_scenes: list[list[str]] = []
    labels: Labels = {}
    with reading(path, EXPECTED):
        for entry in _load(path, f"TestG{gallery_size}"):
            q = _get(entry, "Query", path)
            pid = _pid(q, path)
            qname, qbox = mat_str(_get(q, "imname", path)), _box(_get(q, "idlocate", path))
            qi = b.item(qname, qbox, pid, 0, f"query {pid}")
            if qi is not None:  # the query box also labels its scene when that scene is in some gallery
                labels.setdefault(qname, []).append((qbox, pid))  # type: ignore[arg-type]
            scenes = []
            for g in _list(_get(entry, "Gallery", path)):
                imname, box = mat_str(_get(g, "imname", path)), _box(_get(g, "idlocate", path))
                scenes.append(imname)
                if box is not None and box[2] > 0 and box[3] > 0:
                    labels.setdefault(imname, []).append((box, pid))
            if qi is not None:
                queries.append(qi)
                query_scenes.append(scenes)
    return queries, query_scenes, labels


def _scene_boxes(base: Path) -> dict[str, list[Box | None]]:
    """Images.mat: scene -> its annotated (x, y, w, h) boxes (None if malformed)."""
    images = _images_mat(base)
    with reading(images, EXPECTED):
        return {
            mat_str(_get(s, "imname", images)): [
                _box(_get(r, "idlocate", images)) for r in _list(_get(s, "box", images))
            ]
            for s in _load(images, "Img")
        }


def _gallery(
    b: _Builder, query_scenes: list[list[str]], labels: Labels, boxes: dict[str, list[Box | None]]
) -> tuple[list[Item], dict[str, list[int]]]:
    """Every box of the scenes some query searches, once, and scene -> its gallery item indices.

    A box of Images.mat takes the pid of the TestG label it matches (`_best_label`), else a new unlabelled
    pid; a TestG label that matches no Images.mat box is kept as a box of its own."""
    gallery: list[Item] = []
    scene_items: dict[str, list[int]] = {}
    unlabeled = 0
    for imname in dict.fromkeys(s for scenes in query_scenes for s in scenes):
        idx = scene_items.setdefault(imname, [])
        todo = list(labels.get(imname, []))
        for box in boxes.get(imname, []):
            best = _best_label(todo, box)
            if best is not None:
                todo.remove(best)
                pid = best[1]
            else:
                pid = UNLABELED_PID_BASE + unlabeled
            it = b.item(imname, box, pid, 1, "gallery box of Images.mat")
            if it is not None:
                unlabeled += pid >= UNLABELED_PID_BASE
                idx.append(len(gallery))
                gallery.append(it)
        for box, pid in todo:  # labelled in TestG but absent from Images.mat: keep the labelled box
            it = b.item(imname, box, pid, 1, "gallery box of TestG")
            if it is not None:
                idx.append(len(gallery))
                gallery.append(it)
    return gallery, scene_items


def _images_mat(base: Path) -> Path:
    return base / "annotation" / "Images.mat"


def _cropped(folder: Path, root: Path) -> Splits:
    train: list[Item] = []
    skipped: list[Skipped] = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        rel = path.relative_to(root).as_posix()
        if is_ignored(name):
            continue
        m = CROP_RE.match(name)
        if not inside_root(path, root):
            skipped.append(Skipped(rel, "symlink outside the dataset root"))
        elif path.suffix.lower() not in IMAGE_SUFFIXES or m is None:
            skipped.append(Skipped(rel, "not an image named p<pid>_s<scene>_<k>.jpg"))
        else:
            train.append(Item(path=path, pid=int(m.group(1)), camid=0, source=rel))
    if not train:
        raise DatasetError(f"{folder}: no images named p<pid>_s<scene>_<k>.jpg")
    return Splits(train, [], [], skipped, {"name": "train-only"})


@dataclass(frozen=True)
class CuhkSysuOptions:
    """CUHK-SYSU's options (params.yaml: data.cuhksysu_gallery_size)."""

    gallery_size: int = 100  # TestG<N>: 50, 100, 500, 1000, 2000, 4000


@register("cuhk_sysu", options=CuhkSysuOptions, data_keys={"cuhksysu_gallery_size": "gallery_size"})
def parse(root: Path, work_dir: Path, *, gallery_size: int = 100) -> Splits:
    """Parse CUHK-SYSU (raw release with TestG<gallery_size>, or the train-only cropped form)."""
    root = Path(root)
    require_folder(root, "Image/ and annotation/ (or cropped_images/)")
    for sub in SUBDIRS:
        base = root / sub if sub else root
        if _images_mat(base).is_file():
            b = _Builder(base, root)
            train_mat = base / "annotation" / "test" / "train_test" / "Train.mat"
            with reading(train_mat, EXPECTED):
                train = _train(b, train_mat)
            query, gallery, galleries = _test(b, base, gallery_size)
            for split, items in (("train", train), ("query", query), ("gallery", gallery)):
                if not items:
                    raise DatasetError(f"{b.scene_dir}: the {split} split has no usable person boxes")
            proto = {"name": "cuhk-sysu", "gallery_size": gallery_size, "galleries": galleries}
            return Splits(train, query, gallery, b.skipped, proto)
    for sub in SUBDIRS:
        folder = (root / sub if sub else root) / "cropped_images"
        if folder.is_dir():
            log.info("%s: pre-cropped CUHK-SYSU form, train only", folder)
            return _cropped(folder, root)
    raise DatasetError(
        f"{root}: neither annotation/Images.mat (raw CUHK-SYSU release) nor cropped_images/ found "
        f"(also looked in {', '.join(s for s in SUBDIRS if s)}); point the raw data path at the release"
    )
