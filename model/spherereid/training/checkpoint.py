"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` (no pickled code).

Training does not wait for the disk: `snapshot` copies the state to host memory (one device sync), and a
`CheckpointWriter` writes it in a background thread with `save_atomic`, so a kill during the write leaves
the previous complete file in place.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from ..modeling.net import ReIDNet

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read: the message names the file and the fix."""


def save_atomic(obj: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process killed while writing
        if stale != tmp and not _pid_alive(stale.name.rsplit("-", 1)[-1]):
            stale.unlink(missing_ok=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def snapshot(obj: Any) -> Any:
    """A copy of `obj` (nested dicts / lists / tuples of tensors and plain values) whose tensors live in
    host memory and no longer alias the training state. Device tensors are copied into pinned memory
    with non-blocking copies and one synchronisation at the end."""
    synced: list[torch.device] = []

    def copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.device.type == "cpu":
                return value.clone()
            out = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
            out.copy_(value, non_blocking=True)
            if value.device not in synced:
                synced.append(value.device)
            return out
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(copy(v) for v in value)
        return value

    out = copy(obj)
    for device in synced:
        torch.cuda.synchronize(device)
    return out


class CheckpointWriter:
    """Writes checkpoints with `save_atomic` in one background thread, one at a time.

    `submit` first waits for the previous write (and re-raises its error), so at most one snapshot is
    held besides the one being written. `close` waits for the last write; use it in a `finally`, so a
    failing run still leaves its last good checkpoint complete.
    """

    def __init__(self, background: bool = True):
        self.background = background
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") if background else None
        )
        self._pending: Future | None = None

    def submit(self, state: dict[str, Any], path: str | Path) -> None:
        """Write `state` (already a `snapshot`: it must not change while written) to `path`."""
        self.wait()
        if self._pool is None:
            save_atomic(state, path)
        else:
            self._pending = self._pool.submit(save_atomic, state, path)

    def wait(self) -> None:
        """Block until the pending write is on disk; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ReIDNet:
    """A train-stage model.pt (`{"constructor", "state_dict", "num_classes"}`) -> ReIDNet on `device`, in
    eval mode."""
    saved = load(path)
    missing = [key for key in ("constructor", "state_dict") if key not in saved]
    if missing:
        raise CheckpointError(f"{path}: not a train-stage model file (no {', '.join(missing)})")
    return ReIDNet.from_saved(saved["constructor"], saved["state_dict"]).to(device)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or model file saved by this package (tensors and plain Python types only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CheckpointError(
            f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc}); delete it to start over"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj
