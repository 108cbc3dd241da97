"""CUHK03 (Li et al., CVPR 2014): 1,467 identities in 5 camera pairs, labeled and detected boxes.

Inputs, looked for in `<root>`, `<root>/cuhk03` and `<root>/CUHK03`:
- `cuhk03_release/cuhk-03.mat` (or `cuhk-03.mat`, or `cuhk03_release.zip`): the raw MATLAB v7.3 (HDF5)
  release. The requested image kind is extracted once to `work_dir/cuhk03/images_<labels>/` as PNG
  named `{campair}_{pid:03d}_{view}_{imgidx:02d}.png` (pid 1-based within the pair, view 1 for image
  01-05 and 2 for 06-10) and reused on later runs (until cuhk-03.mat changes).
- or an already extracted `images_labeled/` / `images_detected/` folder with those names (then only
  the new protocol file is needed).
- `cuhk03_new_protocol_config_{labeled,detected}.mat` (CUHK03-NP, Zhong et al. 2017), next to
  `cuhk03_release/` or inside it.

Protocols: "new" (767 train / 700 test ids; pids are the file's `labels` 1..1467, camid = view - 1 from
the file name; evaluated with the Market protocol) or "classic" (`testsets[split]` of the .mat: 100
test ids, query = gallery = their images, the rest is train; pid = global id 1..1467 counted over the
camera pairs in order, camid = view - 1; protocol {"name": "cuhk03-classic", "split", "repeats": 10}).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .archive import extract_once
from .base import DatasetError, Item, Skipped, Splits
from .matfile import load_v5, mat_str, open_v73, read_v73, reading, v73_bytes
from .naming import inside_root, require_folder
from .registry import register

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^([1-5])_(\d{3})_([12])_(\d{2})\.png$")
SUBDIRS = ("", "cuhk03", "CUHK03")
RELEASE_MAT = "cuhk-03.mat of the release"
NP_MAT = "cuhk03_new_protocol_config_*.mat (CUHK03-NP)"
_DONE = ".complete"
_SKIPPED = "skipped.json"
# Sizes checked before a dataset of cuhk-03.mat is read (a 1.4 kB dataset can declare gigabytes):
MAX_CELL_SIDE = 2048  # px per side of a stored image; the release's crops are a few hundred px at most
MAX_CELL_BYTES = 3 * MAX_CELL_SIDE**2
MAX_INDEX_BYTES = 16 * 1024**2  # a cell array of references or the testsets (release: (10, 843) refs)


def _parse_name(name: str) -> tuple[int, int, int, int] | None:
    """(campair, pid within pair, view, image index) of a CUHK03 PNG name, or None."""
    m = NAME_RE.match(name)
    return tuple(int(g) for g in m.groups()) if m else None  # type: ignore[return-value]


def _key(f: Any, key: str, path: Path) -> np.ndarray:
    """The (size-checked) contents of top-level dataset `key`."""
    if key not in f:
        raise DatasetError(f"{path}: key '{key}' missing; is this the original cuhk-03.mat?")
    return _index(f[key], path)


def _index(ds: Any, path: Path) -> np.ndarray:
    """A cell array of references (or the testsets), read after its size is checked."""
    return read_v73(ds, path, RELEASE_MAT, MAX_INDEX_BYTES)


def _cell_problem(ds: Any) -> str | None:
    """Why an image cell is not extracted (its shape, type or size, known before reading), or None."""
    shape, dtype = ds.shape, ds.dtype
    if len(shape) != 3 or shape[0] != 3 or dtype != np.uint8:
        return f"stored array {shape} {dtype} is not a (3, W, H) uint8 image"
    if max(shape[1:]) > MAX_CELL_SIDE:
        return (
            f"stored array {shape} {dtype} is larger than {MAX_CELL_SIDE} px per side (CUHK03 crops are a "
            "few hundred); not read"
        )
    if (need := v73_bytes(ds)) > MAX_CELL_BYTES:
        cap = MAX_CELL_BYTES
        return f"stored in HDF5 chunks of {ds.chunks} ({need} bytes), over the {cap}-byte cap; not read"
    return None


def pairs_sizes(mat: Path, kind: str) -> list[int]:
    """Number of persons in each camera pair of cuhk-03.mat (843, 440, 77, 58, 49 in the release)."""
    with open_v73(mat, RELEASE_MAT) as f, reading(mat, RELEASE_MAT):
        return [int(f[ref].shape[1]) for ref in _key(f, kind, mat)[0]]


def extract_images(mat: Path, kind: str, out_dir: Path) -> list[tuple[str, str]]:
    """Write each non-empty image of `mat[kind]` as PNG into out_dir (once); returns skipped (name, reason).

    Stored cells: `mat[kind]` is (1, 5) refs; each pair derefs to (10, n_pids) refs (transposed:
    columns 0-4 view 1, 5-9 view 2); an image is stored (3, W, H) uint8; an empty cell has < 3 dims.
    Every size is checked before a dataset is read: an image cell of the wrong shape or type, or over
    MAX_CELL_SIDE, is skipped (reported) unread; an oversized cell array is refused (DatasetError).
    """
    from PIL import Image

    st = mat.stat()
    stamp = f"{mat.name} {st.st_size} {int(st.st_mtime)}"
    done = out_dir / _DONE
    if done.is_file() and done.read_text() == stamp and (out_dir / _SKIPPED).is_file():
        return [tuple(s) for s in json.loads((out_dir / _SKIPPED).read_text())]
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    skipped: list[tuple[str, str]] = []
    count = 0
    with open_v73(mat, RELEASE_MAT) as f, reading(mat, RELEASE_MAT):
        for c, pair_ref in enumerate(_key(f, kind, mat)[0], start=1):
            cells = _index(f[pair_ref], mat).T  # (n_pids, 10)
            for p in range(cells.shape[0]):
                for k in range(cells.shape[1]):
                    ds = f[cells[p, k]]
                    if len(ds.shape or ()) < 3 or ds.size == 0:
                        continue  # empty cell: that person has fewer images
                    name = f"{c}_{p + 1:03d}_{1 if k < 5 else 2}_{k + 1:02d}.png"
                    if reason := _cell_problem(ds):
                        skipped.append((name, reason))
                        continue
                    Image.fromarray(np.ascontiguousarray(ds[()].T)).save(tmp / name)
                    count += 1
    (tmp / _SKIPPED).write_text(json.dumps(skipped))
    (tmp / _DONE).write_text(stamp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("extracted %d %s CUHK03 images from %s to %s", count, kind, mat, out_dir)
    return skipped


def _find_base(root: Path, work_dir: Path) -> tuple[Path, Path | None]:
    """(folder holding the release, path of cuhk-03.mat or None)."""
    require_folder(root, "cuhk03_release/ (or images_detected/ ...)")
    for sub in SUBDIRS:
        base = root / sub if sub else root
        for mat in (base / "cuhk03_release" / "cuhk-03.mat", base / "cuhk-03.mat"):
            if mat.is_file():
                return base, mat
        if any((base / f"images_{k}").is_dir() for k in ("labeled", "detected")):
            return base, None
        if (base / "cuhk03_release.zip").is_file():
            out = extract_once(base / "cuhk03_release.zip", work_dir)
            for mat in (out / "cuhk03_release" / "cuhk-03.mat", out / "cuhk-03.mat"):
                if mat.is_file():
                    return base, mat
            raise DatasetError(f"{base / 'cuhk03_release.zip'}: holds no cuhk-03.mat")
    raise DatasetError(
        f"{root}: found neither cuhk03_release/cuhk-03.mat nor images_labeled/ / images_detected/ "
        "(also looked in cuhk03/); point the raw data path at the CUHK03 release"
    )


def _rel(path: Path, root: Path, work_dir: Path) -> str:
    for base in (root, work_dir):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.name


def _mat_indices(cfg: dict[str, Any], key: str, n: int, path: Path) -> np.ndarray:
    if key not in cfg:
        raise DatasetError(f"{path}: key '{key}' missing; is this cuhk03_new_protocol_config_*.mat?")
    with reading(path, NP_MAT):
        idx = np.asarray(cfg[key]).astype(np.int64).ravel() - 1  # stored 1-based
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DatasetError(f"{path}: '{key}' has indices outside 1..{n} (the filelist length)")
    return idx


def _new_protocol(
    base: Path, labels: str, images: dict[str, Path], prefix: str, rejected: set[str]
) -> Splits:
    """CUHK03-NP splits; names in `rejected` are already reported as skipped."""
    name = f"cuhk03_new_protocol_config_{labels}.mat"
    cands = [base / name, base / "cuhk03_release" / name]
    path = next((p for p in cands if p.is_file()), None)
    if path is None:
        raise DatasetError(
            f"{cands[0]}: missing (also looked in {cands[1].parent}); the new protocol needs it "
            "(from the CUHK03-NP / person-re-ranking release), or set data.cuhk03_protocol: classic"
        )
    cfg = load_v5(path, NP_MAT)
    for key in ("filelist", "labels"):
        if key not in cfg:
            raise DatasetError(f"{path}: key '{key}' missing; is this cuhk03_new_protocol_config_*.mat?")
    with reading(path, NP_MAT):
        files = [mat_str(x) for x in np.asarray(cfg["filelist"]).ravel()]
        pids = np.asarray(cfg["labels"]).astype(np.int64).ravel()
    if pids.size != len(files):
        raise DatasetError(f"{path}: 'labels' has {pids.size} entries but 'filelist' {len(files)}")
    out: dict[str, list[Item]] = {}
    skipped: list[Skipped] = []
    for split in ("train", "query", "gallery"):
        items = []
        for i in _mat_indices(cfg, f"{split}_idx", len(files), path):
            fname = files[i]
            parsed = _parse_name(fname)
            if parsed is None:
                skipped.append(Skipped(f"{path.name}:{fname}", "name does not match C_PPP_V_II.png"))
            elif fname in rejected:
                continue
            elif fname not in images:
                skipped.append(Skipped(prefix + fname, f"listed in {path.name} but the image is missing"))
            else:
                items.append(Item(images[fname], int(pids[i]), parsed[2] - 1, prefix + fname))
        if not items:
            raise DatasetError(
                f"{path}: the {split} split has no usable images in the images_{labels} folder"
            )
        out[split] = items
    proto = {"name": "market", "variant": "cuhk03-new", "labels": labels}
    return Splits(out["train"], out["query"], out["gallery"], skipped, proto)


def _classic(mat: Path, labels: str, split: int, images: dict[str, Path], prefix: str) -> Splits:
    with open_v73(mat, RELEASE_MAT) as f, reading(mat, RELEASE_MAT):
        tests = _key(f, "testsets", mat)
        if split >= tests.shape[-1]:
            raise DatasetError(f"{mat}: testsets holds {tests.shape[-1]} splits, not split {split}")
        test = _index(f[tests[0][split]], mat).T.astype(np.int64)  # (100, 2): [campair, pid], 1-based
    sizes = pairs_sizes(mat, labels)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    test_ids = {(int(c), int(p)) for c, p in test}
    train: list[Item] = []
    query: list[Item] = []
    skipped: list[Skipped] = []
    for fname in sorted(images):
        parsed = _parse_name(fname)
        if parsed is None or parsed[0] > len(sizes) or parsed[1] > sizes[parsed[0] - 1]:
            skipped.append(Skipped(prefix + fname, "name is not C_PPP_V_II.png of a person in cuhk-03.mat"))
            continue
        c, p, view, _ = parsed
        item = Item(images[fname], int(offsets[c - 1] + p), view - 1, prefix + fname)
        (query if (c, p) in test_ids else train).append(item)
    if not train or not query:
        raise DatasetError(f"{mat}: classic split {split} leaves an empty train or test set")
    proto = {"name": "cuhk03-classic", "split": split, "repeats": 10, "labels": labels}
    return Splits(train, query, list(query), skipped, proto)


@dataclass(frozen=True)
class Cuhk03Options:
    """CUHK03's options (params.yaml: data.cuhk03_labels, data.cuhk03_protocol, data.cuhk03_split)."""

    labels: str = "detected"  # labeled | detected
    protocol: str = "new"  # new (767/700) | classic (20 splits of 1367/100)
    split: int = 0  # which classic split (0..19)


@register(
    "cuhk03",
    options=Cuhk03Options,
    data_keys={"cuhk03_labels": "labels", "cuhk03_protocol": "protocol", "cuhk03_split": "split"},
)
def parse(
    root: Path, work_dir: Path, *, labels: str = "detected", protocol: str = "new", split: int = 0
) -> Splits:
    """Parse CUHK03 (labeled or detected boxes; new or classic protocol) into raw-pid items."""
    if labels not in ("labeled", "detected"):
        raise DatasetError(f"cuhk03 labels '{labels}': use labeled or detected")
    if protocol not in ("new", "classic") or not 0 <= split < 20:
        raise DatasetError(
            f"cuhk03 protocol '{protocol}' split {split}: use new, or classic with split 0..19"
        )
    root, work_dir = Path(root), Path(work_dir)
    base, mat = _find_base(root, work_dir)
    folder = base / f"images_{labels}"
    skipped: list[Skipped] = []
    if folder.is_dir():
        prefix = f"{_rel(folder, root, work_dir)}/"
    elif mat is not None:
        folder = work_dir / "cuhk03" / f"images_{labels}"
        prefix = f"{_rel(mat, root, work_dir)}#{labels}/"
        bad = extract_images(mat, labels, folder)
        skipped += [Skipped(prefix + n, r) for n, r in bad]
    else:
        raise DatasetError(f"{folder}: missing, and no cuhk03_release/cuhk-03.mat to extract it from")
    images = {}
    for n in sorted(os.listdir(folder)):
        if not n.lower().endswith(".png"):
            continue
        if inside_root(folder / n, root) or folder.is_relative_to(work_dir):
            images[n] = folder / n
        else:
            skipped.append(Skipped(prefix + n, "symlink outside the dataset root"))
    if protocol == "classic":
        if mat is None:
            raise DatasetError(
                f"{base}: the classic protocol needs cuhk03_release/cuhk-03.mat (its testsets)"
            )
        splits = _classic(mat, labels, split, images, prefix)
    else:
        splits = _new_protocol(base, labels, images, prefix, {s.path[len(prefix) :] for s in skipped})
    splits.skipped = skipped + splits.skipped
    return splits
