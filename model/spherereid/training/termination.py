"""SIGTERM during training: stop after the current step, keep a complete checkpoint, exit 143.

Policy (explicit): checkpoints are written at epoch boundaries only, so a SIGTERM in the middle of an
epoch finishes the current optimizer step, discards the rest of that epoch and keeps the last epoch
checkpoint (the pending background write is completed first); a SIGTERM that lands between epochs
checkpoints the epoch just finished, even off the `train.checkpoint_every` cadence. The next run resumes
from that checkpoint exactly (on the CPU, bit-identical final weights vs an uninterrupted run; on CUDA up
to the run-to-run noise of cudnn.benchmark's kernels, see `trainer`). Writing a mid-epoch
checkpoint would need the sampler's and prefetched augmentation's position inside the epoch; one
epoch of work is the most a SIGTERM loses.

A watchdog started by the signal ends the process with 143 after `SPHEREREID_TERM_GRACE_S` seconds
(default 25) if the orderly stop has not finished: a write cut short then leaves the previous complete
checkpoint (writes are atomic).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ..contracts import TERM_GRACE_ENV as GRACE_ENV

log = logging.getLogger(__name__)
EXIT_CODE = 143  # 128 + SIGTERM, what a container runtime expects
DEFAULT_GRACE_S = 25.0
_requested = threading.Event()


class Terminated(SystemExit):
    """Raised at a step boundary after SIGTERM; exits the process with 143 once `finally` blocks ran."""

    def __init__(self, where: str):
        super().__init__(EXIT_CODE)
        self.where = where


def should_stop() -> bool:
    """True once SIGTERM arrived (checked after each training step and each epoch)."""
    return _requested.is_set()


def stop_here(where: str) -> None:
    """Raise `Terminated` when SIGTERM arrived; `where` (e.g. "epoch 3, step 7") goes to the log."""
    if _requested.is_set():
        log.warning(
            "SIGTERM: stopped after %s; the last complete checkpoint is kept, exit %d", where, EXIT_CODE
        )
        raise Terminated(where)


def grace_seconds() -> float:
    """`SPHEREREID_TERM_GRACE_S` (seconds, > 0), default 25."""
    raw = os.environ.get(GRACE_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_GRACE_S
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(
            f"{GRACE_ENV}={raw!r}: expected a number of seconds > 0 (default {DEFAULT_GRACE_S:g})"
        )
    return value


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if _requested.is_set():
        return
    _requested.set()
    watchdog = threading.Timer(_grace, os._exit, args=(EXIT_CODE,))
    watchdog.daemon = True
    watchdog.start()


_grace = DEFAULT_GRACE_S


@contextmanager
def handling() -> Iterator[None]:
    """Catch SIGTERM while training (main thread only; elsewhere a no-op), restoring the old handler."""
    global _grace
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _grace = grace_seconds()
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
