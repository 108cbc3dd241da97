"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` (no pickled code).

Training does not wait for the disk: `snapshot` copies the state to host memory (one device sync), and a
`CheckpointWriter` writes it in a background thread with `save_atomic`, so a kill during the write leaves
the previous complete file in place. Cadence: the trainer's (`train.checkpoint_every`: epochs or a
duration; and after the last epoch). Each write is `torch.save` to a temporary path, fsync, rename, then
(for checkpoints) the sha256 sidecar `<name>.sha256`, written in full first and renamed right after, then the
directory fsynced. `load` checks the sidecar when present, so a truncated or overwritten file is
`CheckpointCorrupt`, never a silent resume. The checkpoint being replaced is kept as `previous(path)`
(`last.prev.pt`, with its sidecar; a hard link, no copy): when `last.pt` fails verification (damaged, or a
kill between its two renames) training resumes from that one (training/resume.py).
A full disk (ENOSPC / EFBIG / EDQUOT) is `CheckpointDiskFull`: one line with the path and the free space,
the temporary file removed and the previous file intact.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..contracts import CORRUPT_SUFFIX, PREVIOUS_MARK, SIDECAR_SUFFIX

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read: the message names the file and the fix."""


class CheckpointCorrupt(CheckpointError):
    """A checkpoint's bytes are damaged: truncated, garbage, or not matching its sha256 sidecar."""


class CheckpointDiskFull(OSError):
    """The disk filled during a checkpoint write; the previous file is intact."""


DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def save_atomic(
    obj: dict[str, Any], path: str | Path, checksum: bool = False, keep_previous: bool = False
) -> None:
    """torch.save to a temporary path beside `path`, fsync, then rename: a kill never leaves half a file.
    With `checksum`, `<path>.sha256` (hex digest of the file) too, renamed right after the file. With
    `keep_previous`, the file being replaced first becomes `previous(path)` (with its sidecar), so a kill
    between the two renames (the new file beside the old sidecar: it fails verification) leaves a verified
    previous checkpoint to resume. The directory is fsynced after the renames. A full disk raises
    `CheckpointDiskFull` naming `path` and the free space, after removing the temporary files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temps = (tmp, sidecar(tmp), _previous_temp(tmp), sidecar(_previous_temp(tmp)))
    try:
        _write_and_rename(obj, path, tmp, checksum, keep_previous)
    except OSError as exc:
        _unlink(temps)
        if exc.errno in DISK_FULL:
            raise _disk_full(path) from None
        raise
    except RuntimeError:  # torch.save's writer reports a failed write as an opaque RuntimeError
        full = _write_fails_for_space(tmp)
        _unlink(temps)
        if full:
            raise _disk_full(path) from None
        raise
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process killed while writing
        if stale not in temps and not _pid_alive(stale.name.rsplit("-", 1)[-1].split(".")[0]):
            stale.unlink(missing_ok=True)


def _write_and_rename(obj: Any, path: Path, tmp: Path, checksum: bool, keep_previous: bool) -> None:
    """The steps of `save_atomic`: the new file and its sidecar complete under temporary names (a full
    disk can only hit here), the current pair kept as the previous one, then one rename each."""
    if checksum:
        _write_text_synced(sidecar(tmp), f"{_save_hashed(obj, tmp)}  {path.name}\n")
    else:  # e.g. model.pt: torch's own file writer, the same bytes as ever
        torch.save(obj, tmp)
        _fsync(tmp)
    if keep_previous:
        _keep_as_previous(path, _previous_temp(tmp))
    os.replace(tmp, path)
    _fault_point("renamed", path)
    if checksum:
        os.replace(sidecar(tmp), sidecar(path))
    _fsync(path.parent)


def previous(path: str | Path) -> Path:
    """The checkpoint kept from before the last write: `last.pt` -> `last.prev.pt`."""
    path = Path(path)
    return path.with_name(f"{path.stem}{PREVIOUS_MARK}{path.suffix}")


def sidecar(path: str | Path) -> Path:
    """`last.pt` -> `last.pt.sha256`."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _keep_as_previous(path: Path, tmp: Path) -> None:
    """Make `path` and its sidecar `previous(path)` before `path` is replaced: the sidecar (rewritten to
    name the previous file) by one rename, then the file by one rename of a hard link (no copy where the
    file system links). `path` stays whole throughout; a kill in between leaves only the previous pair
    mismatched. A file without a sidecar is not kept (an unverifiable fallback is no fallback)."""
    prev = previous(path)
    digest = sidecar(path).read_text().split()[:1] if sidecar(path).is_file() else []
    if not path.is_file() or not digest:
        _unlink((prev, sidecar(prev)))
        return
    _write_text_synced(sidecar(tmp), f"{digest[0]}  {prev.name}\n")
    os.replace(sidecar(tmp), sidecar(prev))
    _fault_point("previous", path)
    _link_or_copy(path, tmp)
    os.replace(tmp, prev)
    _fsync(path.parent)


def promote_previous(path: str | Path) -> Path:
    """After `path` failed verification and `previous(path)` passed: keep the damaged pair as
    `<name>.corrupt` and make the previous checkpoint `path` again (hard links, one rename each; the file
    before its sidecar, so a kill in between still fails verification and falls back again). The next
    write keeps it as the previous one. Returns where the damaged file went."""
    path = Path(path)
    aside, prev = path.with_name(path.name + CORRUPT_SUFFIX), previous(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    for src, dst in ((path, aside), (sidecar(path), sidecar(aside)), (prev, path)):
        if src.is_file():
            _link_or_copy(src, tmp)
            os.replace(tmp, dst)
    digest = sidecar(prev).read_text().split()[0]
    _write_text_synced(sidecar(tmp), f"{digest}  {path.name}\n")
    os.replace(sidecar(tmp), sidecar(path))
    _fsync(path.parent)
    return aside


def set_aside(path: str | Path, suffix: str) -> list[Path]:
    """Move `path` and `previous(path)`, each with its sidecar, to `<name><suffix>` (e.g. `.stale`);
    returns the checkpoints moved."""
    moved = []
    for gen in (Path(path), previous(path)):
        dst = gen.with_name(gen.name + suffix)
        if sidecar(gen).is_file():
            sidecar(gen).replace(sidecar(dst))
        if gen.is_file():
            gen.replace(dst)
            moved.append(dst)
    return moved


# Test seam: called with (point, path) at "previous" (between the previous pair's two renames) and at
# "renamed" (between the new file's rename and its sidecar's); a fault test raises there.
fault_hook: Callable[[str, Path], None] | None = None


def _fault_point(point: str, path: Path) -> None:
    if fault_hook is not None:
        fault_hook(point, path)


def _previous_temp(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + PREVIOUS_MARK)


def _link_or_copy(src: Path, dst: Path) -> None:
    """`dst` = a hard link to `src` (replacing `dst`), or a synced copy where the file system has none."""
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise
        shutil.copyfile(src, dst)
        _fsync(dst)


def _fsync(path: Path) -> None:
    """fsync a file, or a folder (making the renames in it durable: a crash after this keeps them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(paths: Sequence[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class _HashingFile:
    """A binary file that feeds every byte written to it into a sha256 as well."""

    def __init__(self, fh: BinaryIO):
        self._fh, self.sha256 = fh, hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        written = self._fh.write(data)  # a buffered file writes it all or raises
        self.sha256.update(data)
        return written

    def flush(self) -> None:
        self._fh.flush()


def _save_hashed(obj: Any, tmp: Path) -> str:
    """torch.save `obj` to `tmp`, hashing the bytes on their way to the disk, then fsync; the sha256 hex
    digest costs no read of the file."""
    with open(tmp, "wb") as fh:
        out = _HashingFile(fh)
        torch.save(obj, out)  # type: ignore[arg-type]  # a file-like object: torch writes and flushes it
        fh.flush()
        os.fsync(fh.fileno())
    return out.sha256.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks (checkpoints, logged weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_text_synced(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _write_fails_for_space(tmp: Path) -> bool:
    """After torch.save failed on `tmp`: does appending 64 KiB to it fail with ENOSPC / EFBIG / EDQUOT?"""
    try:
        with open(tmp, "ab") as fh:
            fh.write(bytes(1 << 16))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc.errno in DISK_FULL
    return False


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return -1


def _disk_full(path: Path) -> CheckpointDiskFull:
    free = _free_bytes(path.parent)
    shown = f"{free / 2**20:.1f} MiB free" if free >= 0 else "free space unknown"
    err = CheckpointDiskFull(
        f"{path}: no space to write the checkpoint (disk full or file-size limit; {shown} on "
        f"{path.parent}); the previous file is intact - free space and rerun"
    )
    err.errno = errno.ENOSPC
    return err


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def snapshot(obj: Any, into: Any = None) -> Any:
    """A copy of `obj` (nested dicts / lists / tuples of tensors and plain values) whose tensors live in
    host memory and no longer alias the training state, with each tensor's layout (strides, e.g.
    channels_last) kept. Device tensors are copied into pinned memory with non-blocking copies and one
    synchronisation at the end. `into`: an earlier snapshot of the same structure, no longer in use,
    whose tensors are refilled where shape, dtype and strides still fit (no new allocation)."""
    synced: list[torch.device] = []

    def copy(value: Any, old: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return _copy_tensor(value.detach(), old, synced)
        if isinstance(value, dict):
            named = old if isinstance(old, dict) else {}
            return {k: copy(v, named.get(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            same = isinstance(old, list | tuple) and len(old) == len(value)
            items = old if same else [None] * len(value)
            return type(value)(copy(v, o) for v, o in zip(value, items, strict=True))
        return value

    out = copy(obj, into)
    for device in synced:
        torch.cuda.synchronize(device)
    return out


def _copy_tensor(value: torch.Tensor, old: Any, synced: list[torch.device]) -> torch.Tensor:
    """`value` copied to host memory: into `old` when it fits, else a new tensor of the same strides
    (pinned for a device tensor); device copies are asynchronous, their device noted in `synced`."""
    on_device = value.device.type != "cpu"
    fits = (
        isinstance(old, torch.Tensor)
        and old.device.type == "cpu"
        and (old.dtype, old.shape, old.stride()) == (value.dtype, value.shape, value.stride())
        and (old.is_pinned() or not on_device)
    )
    if not on_device and not fits:
        return value.clone(memory_format=torch.preserve_format)
    out = old if fits else torch.empty_like(value, device="cpu", pin_memory=True)  # same strides
    out.copy_(value, non_blocking=on_device)
    if on_device and value.device not in synced:
        synced.append(value.device)
    return out


class CheckpointWriter:
    """Writes checkpoints with `save_atomic` in one background thread, one at a time.

    `submit_snapshot` first waits for the previous write (and re-raises its error), then refills the one
    snapshot it holds (pinned host memory for device tensors, allocated once) from the live state and
    writes it: one snapshot at a time. `close` waits for the last write; use it in a `finally`, so a
    failing run still leaves its last good checkpoint complete.
    """

    def __init__(self, background: bool = True, checksum: bool = True, keep_previous: bool = True):
        self.background, self.checksum, self.keep_previous = background, checksum, keep_previous
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") if background else None
        )
        self._pending: Future | None = None
        self._snapshot: Any = None

    def submit_snapshot(self, state: dict[str, Any], path: str | Path) -> Any:
        """Snapshot the live `state` (once the previous write is done, into the buffers it used) and
        write it to `path`; returns the snapshot being written."""
        self.wait()
        self._snapshot = snapshot(state, into=self._snapshot)
        self.submit(self._snapshot, path)
        return self._snapshot

    def submit(self, state: dict[str, Any], path: str | Path) -> None:
        """Write `state` (already a `snapshot`: it must not change while written) to `path`."""
        self.wait()
        if self._pool is None:
            save_atomic(state, path, self.checksum, self.keep_previous)
        else:
            self._pending = self._pool.submit(save_atomic, state, path, self.checksum, self.keep_previous)

    def wait(self) -> None:
        """Block until the pending write is on disk; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._snapshot = None  # the pinned buffers go back
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or model file saved by this package (tensors and plain Python types only).
    Raises `CheckpointCorrupt` when the file does not match its `.sha256` sidecar or cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    _verify_checksum(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointCorrupt(
            f"{path}: cannot be loaded safely ({type(exc).__name__}: {reason}); delete it to start over"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


def _verify_checksum(path: Path) -> None:
    """Compare `path` with its `.sha256` sidecar, when there is one (files written without one pass)."""
    side = sidecar(path)
    if not side.is_file():
        return
    expected = side.read_text().split()[:1]
    actual = file_sha256(path)
    if expected != [actual]:
        raise CheckpointCorrupt(
            f"{path}: sha256 {actual[:12]}... does not match {side.name} "
            f"({expected[0][:12] if expected else 'empty'}...): truncated or overwritten"
        )
