"""A folder of gallery images -> cached embeddings, rebuilt when the model changes, extended incrementally.

Any names, nested folders, JPEG or PNG. The index file (.npz) holds the model key (weights + chain),
each image's relative path and sha256, and its embedding. On the next call rows whose (path, sha256)
and model key match are reused; new or changed files are embedded; files that are gone are dropped;
another model key rebuilds everything. Unreadable and non-image files are reported and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.datasets.base import Skipped
from ..data.datasets.naming import IMAGE_SUFFIXES
from ..data.image_chain import ImageChain
from ..data.imageio import BadImage
from ..inference import extract_features
from ..progress import tqdm
from .model_source import ResolvedModel

log = logging.getLogger(__name__)

INDEX_FORMAT = 1


class GalleryError(ValueError):
    """The gallery cannot be searched (missing folder, no usable image, unreadable index)."""


@dataclass
class GalleryIndex:
    """Embeddings (N, D) of the usable gallery images, their relative paths and sha256s."""

    root: Path
    paths: list[str]
    hashes: list[str]
    embeddings: np.ndarray
    model_key: str
    skipped: list[Skipped] = field(default_factory=list)
    reused: int = 0
    embedded: int = 0
    removed: int = 0
    rebuilt: bool = False

    def summary(self) -> str:
        how = "built" if self.rebuilt else "updated"
        return (
            f"gallery index {how}: {len(self.paths)} images ({self.reused} reused, {self.embedded} embedded, "
            f"{self.removed} removed, {len(self.skipped)} skipped)"
        )


def scan_gallery(root: Path, exclude: Path | None = None) -> tuple[list[Path], list[Skipped]]:
    """Image files under `root` (recursively, sorted by relative path) and the non-image files skipped."""
    root = Path(root)
    if not root.is_dir():
        raise GalleryError(f"--gallery {root}: not a folder; give the folder holding the gallery images")
    excluded = exclude.resolve() if exclude is not None else None
    images, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # dotfiles (.DS_Store, an index kept in the folder) are not data
        if excluded is not None and path.resolve() == excluded:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(rel, "not an image file (expected .jpg, .jpeg or .png)"))
            continue
        images.append(path)
    return images, skipped


def read_file(path: Path) -> bytes:
    """The bytes of `path`; BadImage with the reason when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read the file ({exc.strerror or exc})") from None


def _load_index(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return {
                "meta": meta,
                "paths": [str(p) for p in data["paths"]],
                "hashes": [str(h) for h in data["hashes"]],
                "embeddings": np.asarray(data["embeddings"], dtype=np.float32),
            }
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable gallery index (%s); rebuilding it", path, exc)
        return None


def _save_index(path: Path, index: GalleryIndex, chain: ImageChain) -> None:
    meta = {"format": INDEX_FORMAT, "model_key": index.model_key, "chain": chain.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(
            fh,
            meta=np.array(json.dumps(meta)),
            paths=np.array(index.paths, dtype=str),
            hashes=np.array(index.hashes, dtype=str),
            embeddings=index.embeddings,
        )
    os.replace(tmp, path)


def embed_files(
    model: ResolvedModel, files: list[tuple[str, bytes]], *, batch_size: int = 64, desc: str = "embedding"
) -> tuple[list[str], np.ndarray, list[Skipped]]:
    """(name, image bytes) pairs -> (names embedded, float32 (n, D) embeddings, skipped), through the chain
    (decode -> stored size -> eval transform -> network with flip -> L2), `batch_size` at a time."""
    chain = model.chain
    names, chunks, skipped = [], [], []
    bar = tqdm(total=len(files), desc=desc, unit="img", disable=None, leave=False)
    for start in range(0, len(files), batch_size):
        rows, ok = [], []
        for name, data in files[start : start + batch_size]:
            try:
                rows.append(chain.stored(data))
                ok.append(name)
            except BadImage as exc:
                skipped.append(Skipped(name, str(exc)))
        if rows:
            feats = extract_features(
                model.net,
                np.stack(rows),
                chain.eval_transform(),
                batch_size=batch_size,
                flip=chain.flip,
                precision=chain.precision,
                progress=False,
            )
            chunks.append(feats)
            names += ok
        bar.update(len(files[start : start + batch_size]))
    bar.close()
    dim = model.net.embedding_dim
    return names, (np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)), skipped


def build_index(root: Path, model: ResolvedModel, index_path: Path, *, batch_size: int = 64) -> GalleryIndex:
    """Bring the index of gallery `root` up to date for `model` and save it; raise on an empty gallery."""
    root, index_path = Path(root), Path(index_path)
    files, skipped = scan_gallery(root, exclude=index_path)
    known, rebuilt = _reusable_rows(_load_index(index_path), model.key)
    current, new = _hash_files(root, files, known, skipped)
    names, feats, bad = embed_files(model, new, batch_size=batch_size, desc="embedding gallery")
    skipped += bad
    fresh = dict(zip(names, feats))
    # each readable file's embedding, saved or new (a file that failed to decode has neither)
    rows = {
        key: known[key] if key in known else fresh[key[0]]
        for key in current
        if key in known or key[0] in fresh
    }
    for item in skipped:
        log.warning("skipped %s: %s", item.path, item.reason)
    if not rows:
        first = f"; first skipped: {skipped[0].path} ({skipped[0].reason})" if skipped else ""
        raise GalleryError(
            f"--gallery {root}: no usable image (.jpg, .jpeg, .png) found "
            f"({len(skipped)} files skipped{first})"
        )
    reused = sum(1 for key in rows if key in known)
    index = GalleryIndex(
        root=root,
        paths=[rel for rel, _ in rows],
        hashes=[sha for _, sha in rows],
        embeddings=np.stack(list(rows.values())).astype(np.float32),
        model_key=model.key,
        skipped=sorted(skipped, key=lambda s: s.path),
        reused=reused,
        embedded=len(rows) - reused,
        removed=0 if rebuilt else len(set(known) - set(rows)),
        rebuilt=rebuilt,
    )
    _save_index(index_path, index, model.chain)
    log.info("%s", index.summary())
    return index


def _reusable_rows(old: dict | None, model_key: str) -> tuple[dict[tuple[str, str], np.ndarray], bool]:
    """The saved embeddings by (path, sha256) when the saved index is of `model_key`, and whether the index
    is rebuilt instead (none saved, unreadable, or of another model)."""
    if old is None or old["meta"].get("model_key") != model_key:
        return {}, True
    return {(p, h): old["embeddings"][i] for i, (p, h) in enumerate(zip(old["paths"], old["hashes"]))}, False


def _hash_files(
    root: Path, files: list[Path], known: dict[tuple[str, str], np.ndarray], skipped: list[Skipped]
) -> tuple[list[tuple[str, str]], list[tuple[str, bytes]]]:
    """(path, sha256) of each readable file in order, and (path, bytes) of those not in `known`; an
    unreadable file is added to `skipped`."""
    current: list[tuple[str, str]] = []
    new: list[tuple[str, bytes]] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            data = read_file(path)
        except BadImage as exc:
            skipped.append(Skipped(rel, str(exc)))
            continue
        sha = hashlib.sha256(data).hexdigest()
        current.append((rel, sha))
        if (rel, sha) not in known:
            new.append((rel, data))
    return current, new
