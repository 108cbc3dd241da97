"""Safe extraction of zip and tar archives (dataset releases).

`safe_extract` refuses, with an `ArchiveError` naming the member: absolute paths, `..` components,
symlinks / hard links whose target leaves the destination, device files and FIFOs, and archives whose
member count or total uncompressed size exceeds a cap (zip bombs). Sizes are enforced on the bytes
actually written, not only on the sizes declared in the archive headers.
`extract_once` extracts into a scratch folder once and reuses the result on later runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from .base import DatasetError

log = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 64 * 1024**3  # 64 GiB: the largest ReID release (CUHK-SYSU scenes) is ~8 GB
MAX_MEMBERS = 2_000_000
_CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_DONE = ".extracted"


class ArchiveError(DatasetError):
    """An archive is unsafe or unreadable: the message names the archive and the member."""


def is_archive(path: Path) -> bool:
    """True for a regular file whose name ends in a supported archive suffix."""
    name = path.name.lower()
    return path.is_file() and name.endswith(ARCHIVE_SUFFIXES)


def _safe_relpath(archive: Path, name: str) -> PurePosixPath:
    """The member name as a relative path, or ArchiveError if absolute or containing '..'."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise ArchiveError(f"{archive}: member '{name}' has an absolute path; refusing to extract")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: member '{name}' contains '..'; refusing to extract")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _inside(dest: Path, target: Path) -> bool:
    real = os.path.realpath(target)
    root = os.path.realpath(dest)
    return real == root or real.startswith(root + os.sep)


class _Budget:
    """Counts members and written bytes against the caps."""

    def __init__(self, archive: Path, max_total_bytes: int, max_members: int):
        self.archive, self.max_bytes, self.max_members = archive, max_total_bytes, max_members
        self.bytes = 0
        self.members = 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise ArchiveError(
                f"{self.archive}: more than {self.max_members} members (at '{name}'); refusing a "
                "possible archive bomb (raise max_members if the archive is genuine)"
            )

    def add(self, name: str, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise ArchiveError(
                f"{self.archive}: uncompressed size exceeds {self.max_bytes} bytes at member '{name}'; "
                "refusing a possible archive bomb (raise max_total_bytes if the archive is genuine)"
            )


def _write_file(src: IO[bytes], out: Path, name: str, budget: _Budget, dest: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(dest, out.parent) or out.is_symlink():
        raise ArchiveError(f"{budget.archive}: member '{name}' would be written outside {dest}")
    with open(out, "wb") as fh:
        while chunk := src.read(_CHUNK):
            budget.add(name, len(chunk))
            fh.write(chunk)


def _make_symlink(out: Path, target: str, name: str, budget: _Budget, dest: Path) -> None:
    if os.path.isabs(target) or not _inside(dest, out.parent / target):
        raise ArchiveError(
            f"{budget.archive}: member '{name}' is a link to '{target}', outside the destination; "
            "refusing to extract"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, out)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            budget.member(info.filename)
            rel = _safe_relpath(archive, info.filename)
            out = dest / rel
            mode = info.external_attr >> 16
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
            elif stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", errors="replace")
                _make_symlink(out, target, info.filename, budget, dest)
            else:
                with zf.open(info) as src:
                    _write_file(src, out, info.filename, budget, dest)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    with tarfile.open(archive) as tf:
        for m in _tar_members(tf):
            budget.member(m.name)
            rel = _safe_relpath(archive, m.name)
            out = dest / rel
            if m.isdir():
                out.mkdir(parents=True, exist_ok=True)
            elif m.issym():
                _make_symlink(out, m.linkname, m.name, budget, dest)
            elif m.islnk():
                try:
                    src = dest / _safe_relpath(archive, m.linkname)
                except ArchiveError:
                    src = dest.parent  # absolute or '..': outside, reported below
                if not _inside(dest, src) or not src.is_file():
                    raise ArchiveError(
                        f"{archive}: member '{m.name}' is a hard link to '{m.linkname}', which is not an "
                        "extracted file inside the destination; refusing to extract"
                    )
                with open(src, "rb") as fh:
                    _write_file(fh, out, m.name, budget, dest)
            elif m.isfile():
                member = tf.extractfile(m)
                assert member is not None
                with member:
                    _write_file(member, out, m.name, budget, dest)
            else:
                raise ArchiveError(f"{archive}: member '{m.name}' is a device or FIFO; refusing to extract")


def _tar_members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (m := tf.next()) is not None:
        yield m


def safe_extract(
    archive: Path, dest: Path, *, max_total_bytes: int = MAX_TOTAL_BYTES, max_members: int = MAX_MEMBERS
) -> Path:
    """Extract a zip or tar archive into `dest` (created), refusing unsafe members; returns `dest`."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, max_total_bytes, max_members)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest, budget)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest, budget)
        else:
            raise ArchiveError(f"{archive}: neither a zip nor a tar archive")
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        OSError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise ArchiveError(f"{archive}: corrupt or unreadable archive ({exc}); download it again") from None
    log.info("extracted %s: %d members, %d bytes", archive, budget.members, budget.bytes)
    return dest


def extract_once(archive: Path, work_dir: Path, **caps: int) -> Path:
    """Extract `archive` into `work_dir/<archive name>.d/` once; later calls reuse the folder.

    Extraction goes to a temporary folder renamed on success, so an interrupted run is never reused.
    """
    archive = Path(archive)
    out = Path(work_dir) / f"{archive.name}.d"
    st = archive.stat()
    stamp = f"{st.st_size} {int(st.st_mtime)}"
    done = out / _DONE
    if done.is_file() and done.read_text() == stamp:
        log.info("reusing extracted %s in %s", archive, out)
        return out
    tmp = Path(work_dir) / f"{archive.name}.partial"
    for stale in (tmp, out):
        if stale.exists():
            shutil.rmtree(stale)
    try:
        safe_extract(archive, tmp, **caps)
    except ArchiveError:
        shutil.rmtree(tmp, ignore_errors=True)  # a refused archive leaves nothing behind
        raise
    (tmp / _DONE).write_text(stamp)
    tmp.rename(out)
    return out
