"""The lease of one ticket of the registry lock (alias_lock): its expiry, its renewal and the heartbeat
that renews it while the holder works.

A ticket is a model version of `<name>.lock` whose tag `lock.expires_ms` says until when its lease runs
(ms since the epoch, by the writer's clock). `Lease.renew` pushes that to now + ttl with one write to the
ticket, so the write itself proves the ticket still exists (a broken ticket answers
RESOURCE_DOES_NOT_EXIST). A lease with less than `guard_s` (0.4 ttl) left is over for its holder: it is
never renewed (a waiter may already have read it as expired and be about to break it) and no alias is
moved under it. `guard_s` must cover one registry call, retries included, plus the clock skew between
writers; `default_ttl_s` sizes the ttl from MLflow's HTTP timeout and retries so that it does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds since the epoch; tests inject one to expire a lease without sleeping

OWNER_TAG, EXPIRES_TAG = "lock.owner", "lock.expires_ms"
LOCK_SUFFIX = ".lock"
MIN_TTL_S = 600.0
GUARD_SHARE = 0.4  # the part of the ttl kept back: no renewal and no alias move within it
RENEW_SHARE = 0.2  # the heartbeat renews every ttl * RENEW_SHARE (wall-clock seconds)
BACKOFF_MAX_S = 120.0  # urllib3's cap on one backoff sleep between MLflow's HTTP retries


class AliasLockError(RuntimeError):
    """The registry lock could not be taken or was lost."""


class AliasLockTimeout(AliasLockError):
    """Another writer held the registry lock for longer than we were willing to wait."""


class AliasLockLost(AliasLockError):
    """This writer's lease on the registry lock ended (expired or broken) before an alias move."""


def lock_name(name: str) -> str:
    """The registered model whose versions are the tickets of the lock of registered model `name`."""
    return f"{name}{LOCK_SUFFIX}"


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


def default_ttl_s() -> float:
    """max(600 s, 2.5 x the longest one MLflow HTTP call may take: its timeout times 1 + its retries, plus
    the backoff), so that `guard_s` (0.4 ttl) covers one call. ~600 s with this project's settings
    (connection.client: 120 s timeout, 1 retry)."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    retries = max(0, MLFLOW_HTTP_REQUEST_MAX_RETRIES.get())
    worst_call_s = MLFLOW_HTTP_REQUEST_TIMEOUT.get() * (1 + retries)
    factor = MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
    worst_call_s += sum(min(factor * 2**i, BACKOFF_MAX_S) for i in range(retries))
    return max(MIN_TTL_S, worst_call_s / GUARD_SHARE)


@dataclass(eq=False)
class Lease:
    """Ticket `ticket` of the lock of registered model `name`, renewed last at `renewed_at` (by `clock`)."""

    name: str
    ticket: int
    owner: str
    ttl_s: float
    clock: Clock
    renewed_at: float
    lost: str = ""  # why the lease ended, once this process knows it did
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lock(self) -> str:
        return lock_name(self.name)

    @property
    def guard_s(self) -> float:
        return GUARD_SHARE * self.ttl_s

    def left_s(self) -> float:
        return self.renewed_at + self.ttl_s - self.clock()

    def lost_error(self) -> AliasLockLost:
        return AliasLockLost(
            f"registry lock {self.lock!r}: the lease of ticket {self.ticket} ({self.owner}) {self.lost}; "
            "no alias moved - run the command again (a register reuses its version)"
        )

    def renew(self, c) -> None:
        """Push the lease to now + ttl; AliasLockLost when it ended (too little left, or broken)."""
        from mlflow.exceptions import MlflowException

        with self._mutex:
            if self.lost:
                raise self.lost_error()
            sent = self.clock()
            left = self.renewed_at + self.ttl_s - sent
            if left < self.guard_s:
                self.lost = (
                    f"had {left:.0f} s of its {self.ttl_s:.0f} s left, less than the {self.guard_s:.0f} s "
                    "kept back for one registry call (its renewals failed or hung)"
                )
                raise self.lost_error()
            expires = str(to_ms(sent + self.ttl_s))
            try:
                c.set_model_version_tag(self.lock, str(self.ticket), EXPIRES_TAG, expires)
            except MlflowException as exc:
                if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
                self.lost = "was broken by another writer after its lease ran out"
                raise self.lost_error() from None
            self.renewed_at = sent

    def renew_if_due(self, c) -> None:
        """Renew when a heartbeat's interval has passed since the last renewal (a waiter's poll loop)."""
        if self.clock() - self.renewed_at >= RENEW_SHARE * self.ttl_s:
            self.renew(c)


class Heartbeat:
    """A daemon thread renewing `lease` every ttl * RENEW_SHARE wall-clock seconds until `stop()`, so
    one slow call inside the critical section does not let the lease run out."""

    def __init__(self, c, lease: Lease) -> None:
        self.c, self.lease = c, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease {lease.lock}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)  # a renewal hung in a call ends on its own; its result is ignored

    def _run(self) -> None:
        while not self._stop.wait(RENEW_SHARE * self.lease.ttl_s):
            try:
                self.lease.renew(self.c)
            except AliasLockLost as exc:
                if not self._stop.is_set():
                    log.warning("%s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - retried at the next beat; the guard covers the gap
                if not self._stop.is_set():
                    log.warning("%s: renewing the lease failed (%s); retrying", self.lease.lock, exc)
