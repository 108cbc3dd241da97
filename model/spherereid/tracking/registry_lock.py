"""A registry lock per registered model, so concurrent registers and promotions serialise their
find-or-create-version and read-compare-move of the aliases.

    with alias_lock(client, "spherereid-market1501"):
        ...find or create the version, decide...
        ensure_held(client, "spherereid-market1501")  # immediately before each alias move
        ...move `champion`, tag the move...

Why a lock. MLflow has no compare-and-set: aliases and tags are last-writer-wins, so an optimistic
"write, re-read, retry" can still end on the worse version (A and B both read champion 1; B writes,
re-reads B and stops; A, slower, then writes A, re-reads A and stops), and it cannot undo a duplicate
version made by two racing find-or-creates.

Why tickets. A lock that is one object found by its name (a registered model `<name>.lock`, created to
take it, deleted to release it) cannot be released safely: "read it, see my token, delete it by name"
deletes whatever holds that name by then, and a holder past its lease whose lock a waiter broke and
re-took in between deletes the waiter's lock and lets a third writer in. MLflow tags have no CAS either.
What MLflow does give is model-version numbers: the server assigns them inside a transaction (max + 1,
(name, version) a primary key, a deleted version kept as a row), so they are unique, never reused, and
a number is handed out only after every lower one exists. So the lock of `name` is a queue:

- every writer that wants the lock creates a ticket, a model version of the registered model
  `<name>.lock` (source `spherereid-lock:/ticket`, tags `lock.owner` and `lock.expires_ms`); the live
  ticket with the lowest number holds the lock. No ticket below ours can appear later, so once ours is
  the lowest it stays the lowest for as long as it lives. The others poll (with jitter) until theirs is
  the lowest, or delete it and raise AliasLockTimeout after `wait_s` (default: the ttl + 60 s, so a
  dead holder's ticket is broken within one wait), naming the holder.
- release deletes our own ticket by its number. A delete names one version, so it cannot remove
  another writer's ticket whatever happened in between: when our ticket was broken, the delete finds it
  gone and the new holder's ticket stays. The version's identity is the compare of compare-and-delete.
- a ticket whose `lock.expires_ms` has passed (its writer died or hung) is broken by the first waiter
  behind it that sees it: deleted by number (of several breakers one delete succeeds, the others find it
  gone) and recorded as the tag `lock.broken.<number>` on `<name>.lock`, the audit trail.
- the holder keeps its lease alive (`Lease`, `Heartbeat` below): a heartbeat thread renews it every ttl/5,
  and
  `ensure_held`, called immediately before each alias move, renews it once more with a write to the
  ticket itself: a broken ticket answers RESOURCE_DOES_NOT_EXIST, and a lease with less than its guard
  (0.4 ttl) left is over. Either raises AliasLockLost instead of moving.
- re-entrant within a thread (nested `alias_lock` calls on one name share the lease); the other threads
  of the process wait for it. A process deletes tickets left by its own failed attempts (same owner).

The argument. Two writers act under the lock at once only if a holder H acts after a waiter W broke H's
ticket. W breaks it only once its stored expiry E (the send time of H's last successful renewal + ttl)
has passed on W's clock. H renews only while at least the guard is left before E, and moves an alias
only right after such a renewal succeeded (which sets a new E a whole ttl away). So each call of H
starts at least guard - skew (real time) before W may read the ticket as stale, and has landed by then
if one call, retries included, takes less than guard - skew; after a break H's next renewal finds the
ticket gone. `default_ttl_s` makes the guard cover one call (a ~600 s ttl: a ~240 s guard
against a 120 s timeout with one retry). What no client-side lock rules out: a holder paused for about a
ttl between `ensure_held` and its move, or a request reaching the server after its client gave up on it
(stuck in a proxy beyond the guard); MLflow has no fencing token a server could check.

Limits: the writers' clocks must agree within the guard minus one call; a server that restricts model
version sources (MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX) must accept `spherereid-lock:/`;
never delete the registered model `<name>.lock` itself (its version numbers would start again), only a
dead writer's ticket (a version) if it cannot wait for its expiry; all writers must run this version.
`<name>.lock` stays in the registry once made; while the lock is free it lists no version.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .client import is_connection_error
from .tags import LOCK_BROKEN_PREFIX, LOCK_EXPIRES, LOCK_OWNER, lock_ticket_tags

__all__ = [
    "AliasLockError",
    "AliasLockLost",
    "AliasLockTimeout",
    "Lease",
    "Ticket",
    "acquire",
    "alias_lock",
    "current_holder",
    "ensure_held",
    "lock_name",
    "release",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- a ticket's lease
# The lease of one ticket: its expiry, its renewal and the heartbeat that renews it while the holder works.
# A ticket is a model version of `<name>.lock` whose tag `lock.expires_ms` says until when its lease runs
# (ms since the epoch, by the writer's clock). `Lease.renew` pushes that to now + ttl with one write to the
# ticket, so the write itself proves the ticket still exists (a broken ticket answers
# RESOURCE_DOES_NOT_EXIST). A lease with less than `guard_s` (0.4 ttl) left is over for its holder: it is
# never renewed (a waiter may already have read it as expired and be about to break it) and no alias is
# moved under it. `guard_s` must cover one registry call, retries included, plus the clock skew between
# writers; `default_ttl_s` sizes the ttl from MLflow's HTTP timeout and retries so that it does.

Clock = Callable[[], float]  # seconds since the epoch; tests inject one to expire a lease without sleeping

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
    (client.client: 120 s timeout, 1 retry)."""
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
                c.set_model_version_tag(self.lock, str(self.ticket), LOCK_EXPIRES, expires)
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


# ---------------------------------------------------------------- the queue of tickets

TICKET_SOURCE = "spherereid-lock:/ticket"
WAIT_BEYOND_TTL_S = 60.0  # the default wait outlasts a dead holder's lease
LOCK_DESCRIPTION = (
    "The registry lock of `{name}` (spherereid.tracking.registry_lock): each version is a writer's ticket, "
    "the lowest live one holds the lock. Do not delete this model; a dead writer's ticket (version) may "
    "be deleted, or is broken after its `lock.expires_ms`."
)
_HELD: dict[str, tuple[Lease, Heartbeat, int]] = {}  # lock name -> (lease, its heartbeat, depth)
_THREADS: dict[str, threading.RLock] = {}  # lock name -> the lock the threads of this process share
_THREADS_GUARD = threading.Lock()
_OWNER: tuple[int, str] = (-1, "")  # (pid, owner) of this process, made on first use


def _no_pause() -> None:
    """The default of the test hook `_between_read_and_delete`: release runs straight through."""


_between_read_and_delete: Callable[[], None] = _no_pause  # tests only: a pause inside release


@dataclass(frozen=True)
class Ticket:
    """A live ticket: its number, its writer and when its lease ends (ms since the epoch)."""

    number: int
    owner: str
    expires_ms: int


def default_owner() -> str:
    """user@host:pid:nonce, unique per process (a forked child makes its own)."""
    global _OWNER
    if _OWNER[0] != os.getpid():
        _OWNER = (
            os.getpid(),
            f"{getpass.getuser()}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
    return _OWNER[1]


def _tickets(c, lock: str) -> list[Ticket]:
    """The live tickets of `lock`, lowest number first."""
    found = c.search_model_versions(f"name = '{lock}'")
    tickets = [
        Ticket(int(v.version), v.tags.get(LOCK_OWNER, "?"), int(v.tags.get(LOCK_EXPIRES, "0") or 0))
        for v in found
    ]
    return sorted(tickets, key=lambda t: t.number)


def current_holder(c, name: str) -> Ticket | None:
    """The ticket holding the lock of registered model `name` (lowest live), or None when it is free."""
    tickets = _tickets(c, lock_name(name))
    return tickets[0] if tickets else None


def _take_ticket(c, name: str, *, owner: str, ttl_s: float, clock: Clock) -> Lease:
    """Queue up: a new ticket (model version) of `<name>.lock`, creating that model the first time."""
    from mlflow.exceptions import MlflowException

    lock, now = lock_name(name), clock()
    tags = lock_ticket_tags(owner, to_ms(now + ttl_s))
    for attempt in range(5):
        try:
            mv = c.create_model_version(lock, source=TICKET_SOURCE, tags=tags, await_creation_for=0)
            return Lease(name, int(mv.version), owner, ttl_s, clock, renewed_at=now)
        except MlflowException as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST" and attempt == 0:
                _create_lock_model(c, lock, name)  # the first ticket ever of this name
            elif "Giving up after" in str(exc) and attempt < 4:  # the store's retries on racing numbers
                time.sleep(0.05 * (1 + random.random()))
            else:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _create_lock_model(c, lock: str, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.create_registered_model(lock, description=LOCK_DESCRIPTION.format(name=name))
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _delete_ticket(c, lock: str, number: int) -> bool:
    """Delete ticket `number`; False when it was gone already."""
    from mlflow.exceptions import MlflowException

    try:
        c.delete_model_version(lock, str(number))
        return True
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _break(c, lease: Lease, stale: Ticket) -> None:
    """Delete a ticket whose lease ran out, by number, and record the break on the lock model."""
    if not _delete_ticket(c, lease.lock, stale.number):
        return  # another waiter broke it first, or its writer released it
    now = to_ms(lease.clock())
    record = f"{stale.owner}, expired at {_stamp(stale.expires_ms)}, broken by {lease.owner} at {_stamp(now)}"
    c.set_registered_model_tag(lease.lock, f"{LOCK_BROKEN_PREFIX}{stale.number}", record)
    log.warning("%s: broke the stale ticket %d of %s", lease.lock, stale.number, record)


def _ahead(c, lease: Lease) -> list[Ticket] | None:
    """The live tickets ahead of ours after breaking stale ones and our own leftovers; None when ours
    is gone (broken while we waited)."""
    tickets = _tickets(c, lease.lock)
    if lease.ticket not in {t.number for t in tickets}:
        return None
    ahead = []
    for t in (t for t in tickets if t.number < lease.ticket):
        if t.owner == lease.owner:  # left by a failed attempt of this process (its threads take turns)
            _delete_ticket(c, lease.lock, t.number)
        elif t.expires_ms < to_ms(lease.clock()):
            _break(c, lease, t)
        else:
            ahead.append(t)
    return ahead


def acquire(
    c,
    name: str,
    *,
    owner: str,
    ttl_s: float | None = None,
    wait_s: float | None = None,
    poll_s: float = 0.2,
    clock: Clock = time.time,
) -> Lease:
    """Take the lock of registered model `name` (no heartbeat: `alias_lock` adds one). Raises
    AliasLockTimeout after `wait_s` s (default: the ttl + 60 s) behind a live holder, naming it."""
    ttl_s = default_ttl_s() if ttl_s is None else ttl_s
    if ttl_s <= 0:
        raise AliasLockError(f"registry lock of {name!r}: ttl_s must be > 0, got {ttl_s}")
    wait_s = ttl_s + WAIT_BEYOND_TTL_S if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    lease = _take_ticket(c, name, owner=owner, ttl_s=ttl_s, clock=clock)
    while True:
        ahead = _ahead(c, lease)
        if ahead == [] and lease.left_s() > lease.guard_s:
            return lease
        if ahead is None or ahead == []:  # ours was broken, or its lease is over: queue up again
            _delete_ticket(c, lease.lock, lease.ticket)
            lease = _take_ticket(c, name, owner=owner, ttl_s=ttl_s, clock=clock)
            continue
        if time.monotonic() > deadline:
            _delete_ticket(c, lease.lock, lease.ticket)
            raise _timeout(lease.lock, ahead[0], wait_s)
        try:
            lease.renew_if_due(c)
        except AliasLockLost:
            continue  # broken while we waited: the next round queues up again
        time.sleep(poll_s * (0.5 + random.random()))


def _timeout(lock: str, holder: Ticket, wait_s: float) -> AliasLockTimeout:
    return AliasLockTimeout(
        f"registry lock {lock!r} is held by {holder.owner} (ticket {holder.number}, its lease ends at "
        f"{_stamp(holder.expires_ms)}); waited {wait_s:.0f} s: try again later, or delete version "
        f"{holder.number} of registered model {lock!r} if its owner is gone"
    )


def release(c, lease: Lease) -> None:
    """Delete our ticket, by number: a ticket broken meanwhile (our lease ran out) is found gone, and
    whoever holds the lock now keeps it."""
    if lease.lost:  # the read: the heartbeat or ensure_held already found the lease over
        log.warning("%s: released after the lease ended (%s)", lease.lock, lease.lost)
    _between_read_and_delete()
    if not _delete_ticket(c, lease.lock, lease.ticket):
        log.warning("%s: ticket %d was broken while held (its lease ran out)", lease.lock, lease.ticket)


def ensure_held(c, name: str) -> None:
    """Call immediately before an alias move of `name`: renews the lease once more, and raises
    AliasLockLost (so the caller moves nothing) when this process's lease ended or was broken."""
    held = _HELD.get(lock_name(name))
    if held is None:
        raise AliasLockLost(f"registry lock {lock_name(name)!r} is not held by this process; no alias moved")
    held[0].renew(c)


def _thread_lock(lock: str) -> threading.RLock:
    with _THREADS_GUARD:
        return _THREADS.setdefault(lock, threading.RLock())


@contextmanager
def alias_lock(
    c,
    name: str,
    *,
    owner: str | None = None,
    ttl_s: float | None = None,
    wait_s: float | None = None,
    clock: Clock = time.time,
) -> Iterator[Lease]:
    """Hold the registry lock of `name` for the block, its lease renewed by a heartbeat (re-entrant
    within a thread; the other threads of this process wait)."""
    lock, ttl_s = lock_name(name), default_ttl_s() if ttl_s is None else ttl_s
    wait_s = ttl_s + WAIT_BEYOND_TTL_S if wait_s is None else wait_s
    turn = _thread_lock(lock)
    if not turn.acquire(timeout=max(wait_s, 0.0)):
        raise AliasLockTimeout(f"registry lock {lock!r} is held by another thread of this process")
    try:
        if lock in _HELD:
            lease, beat, depth = _HELD[lock]
            _HELD[lock] = (lease, beat, depth + 1)
        else:
            lease = acquire(c, name, owner=owner or default_owner(), ttl_s=ttl_s, wait_s=wait_s, clock=clock)
            _HELD[lock] = (lease, Heartbeat(c, lease).start(), 1)
        try:
            yield lease
        finally:
            lease, beat, depth = _HELD.pop(lock)
            if depth > 1:
                _HELD[lock] = (lease, beat, depth - 1)
            else:
                beat.stop()
                _release_quietly(c, lease)
    finally:
        turn.release()


def _release_quietly(c, lease: Lease) -> None:
    try:
        release(c, lease)
    except Exception as exc:  # noqa: BLE001 - a lost connection must not hide the block's own outcome
        if not is_connection_error(exc):
            raise
        log.warning("%s: server unreachable while releasing; the ticket expires by itself", lease.lock)
