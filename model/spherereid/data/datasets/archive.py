"""Safe extraction of zip and tar archives (dataset releases).

`safe_extract` refuses, with an `ArchiveError` naming the archive and the member: absolute paths, `..`
components, every link (symbolic or hard, zip symlinks included: dataset releases hold none, and a link
that is harmless when written can be redirected by a later member), device files and FIFOs, any member
(directories included) whose resolved path is outside the destination, and archives whose member count
or total uncompressed size exceeds a cap (zip bombs). Sizes are enforced on the bytes actually written,
not only on the sizes declared in the archive headers.
Every path is built and checked here (tarfile's and zipfile's `extract`/`extractall` are never called),
so the checks do not depend on the interpreter's own path filters, which differ between Python patch
releases.
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
_MAX_LINK_TARGET = 4096  # bytes of a zip symlink's target read for the message
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


def _destination(dest: Path, rel: PurePosixPath, name: str, budget: _Budget) -> Path:
    """dest/rel, or ArchiveError if it resolves outside `dest` (through a link already there) or is a link."""
    out = dest / rel
    if not _inside(dest, out) or (rel != PurePosixPath(".") and out.is_symlink()):
        raise ArchiveError(
            f"{budget.archive}: member '{name}' would be written outside {dest} (its path goes through a "
            "link); refusing to extract"
        )
    return out


def _refuse_link(archive: Path, name: str, kind: str, target: str) -> ArchiveError:
    return ArchiveError(
        f"{archive}: member '{name}' is a {kind} (to '{target}'); dataset releases hold no links, "
        "refusing to extract"
    )


def _make_dir(dest: Path, rel: PurePosixPath, name: str, budget: _Budget) -> None:
    _destination(dest, rel, name, budget).mkdir(parents=True, exist_ok=True)


def _write_file(src: IO[bytes], dest: Path, rel: PurePosixPath, name: str, budget: _Budget) -> None:
    out = _destination(dest, rel, name, budget)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with open(fd, "wb") as fh:
        while chunk := src.read(_CHUNK):
            budget.add(name, len(chunk))
            fh.write(chunk)


def _extract_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            budget.member(info.filename)
            rel = _safe_relpath(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                with zf.open(info) as link:  # the target, for the message (read capped: no bomb)
                    target = link.read(_MAX_LINK_TARGET).decode("utf-8", errors="replace")
                raise _refuse_link(archive, info.filename, "symbolic link", target)
            if info.is_dir():
                _make_dir(dest, rel, info.filename, budget)
            else:
                with zf.open(info) as src:
                    _write_file(src, dest, rel, info.filename, budget)


def _extract_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    with tarfile.open(archive) as tf:
        for m in _tar_members(tf):
            budget.member(m.name)
            rel = _safe_relpath(archive, m.name)
            if m.issym() or m.islnk():
                raise _refuse_link(archive, m.name, "symbolic link" if m.issym() else "hard link", m.linkname)
            if m.isdir():
                _make_dir(dest, rel, m.name, budget)
            elif m.isfile():
                member = tf.extractfile(m)
                assert member is not None
                with member:
                    _write_file(member, dest, rel, m.name, budget)
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
