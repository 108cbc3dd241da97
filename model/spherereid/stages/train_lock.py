"""One training per output folder: an exclusive flock on `<out>/.train.lock`, held for the whole run.

A second training started on a folder another one holds is refused with one line naming the folder and
the holder (pid and host, written in the lock file), before it writes anything there: the first one's
mlflow_run.json, lineage.json, checkpoints and model stay its own. The kernel releases a flock when its
process dies, so the rerun of a killed training takes the lock and resumes. The file is removed on
release (while still locked; a process that opened the old file finds it unlinked and opens a new one).
Under torchrun rank 0 holds it and every rank learns whether it got it (one collective), so all refuse
together.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..contracts import TRAIN_LOCK_FILE
from ..training import distributed


class TrainOutputBusy(RuntimeError):
    """Another training is writing to this output folder."""


@contextmanager
def holding(out_dir: Path, ctx: distributed.DistContext | None = None) -> Iterator[None]:
    """Hold `<out_dir>/.train.lock` for the block (rank 0 of `ctx`); `TrainOutputBusy` on every rank when
    another process holds it."""
    ctx = ctx or distributed.DistContext()
    path = Path(out_dir) / TRAIN_LOCK_FILE
    fd, refusal = _try_lock(path) if ctx.is_main else (-1, "")
    refusal = distributed.all_gather(refusal, ctx)[0]  # rank 0's answer, on every rank
    if refusal:
        raise TrainOutputBusy(refusal)
    try:
        yield
    finally:
        if fd >= 0:
            path.unlink(missing_ok=True)  # still locked: nobody can take this file in between
            os.close(fd)


def _try_lock(path: Path) -> tuple[int, str]:
    """(fd of the locked file with this process written in it, "") or (-1, the one-line refusal)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "holder not yet recorded"
            os.close(fd)
            return -1, (
                f"{path.parent}: another training ({holder}) is writing to this output folder ({path.name} "
                "is locked); wait for it to finish, or train into another --out"
            )
        if _is_current(fd, path):
            break
        os.close(fd)  # its previous holder removed it after we opened it: lock the new file
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd, ""


def _is_current(fd: int, path: Path) -> bool:
    """Is the open file `fd` still the one at `path` (not unlinked by a releasing holder)?"""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
