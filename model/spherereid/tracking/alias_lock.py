"""A registry lock per registered model, so concurrent registers and promotions serialise their
find-or-create-version and read-compare-move of the aliases.

    with alias_lock(client, "spherereid-market1501"):
        ...find or create the version, decide, move `champion`, tag the move...

Why a lock, and why this one. MLflow has no compare-and-set: aliases and tags are last-writer-wins,
so an optimistic "write, re-read, retry" can still end on the worse version (A and B both read
champion 1; B writes, re-reads B and stops; A, slower, then writes A, re-reads A and stops), and it
cannot undo a duplicate version made by two racing find-or-creates. What MLflow does guarantee is a
unique registered-model name (a primary key: create and rename fail with RESOURCE_ALREADY_EXISTS on
every backend, sqlite or a server). So:

- the lock is the registered model `<name>.lock`, created with tags owner, token and expiry: whoever
  creates it holds it; the others poll (with jitter) until it is gone or `wait_s` runs out;
- release deletes it, after checking the token is still ours;
- a holder that died leaves a lock whose expiry (`ttl_s` after it was taken) passes; a waiter then
  breaks it by renaming it to `<name>.lock.broken-<its token>`. That name is unique per broken lock, so
  of several waiters that saw the same stale lock exactly one rename succeeds, and a rename can never
  hit a newer lock (its target name already exists). Broken locks are kept as an audit trail.
- the lock is re-entrant within a process (nested `alias_lock` calls on one name share it), and a
  process adopts a lock left by its own failed attempt (same owner), so a retried call does not wait
  for its own expiry.

Limits: expiry uses the clients' wall clocks, so ttl_s must exceed the clock skew plus the longest
critical section (seconds for register; the default is 120 s). One owner per process: threads of one
process share a lock.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .connection import is_connection_error

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
OWNER_TAG, TOKEN_TAG, EXPIRES_TAG = "lock.owner", "lock.token", "lock.expires_ms"
LOCK_DESCRIPTION = (
    "A lock held while a register or promote of `{name}` moves its aliases (spherereid.tracking."
    "alias_lock); it is deleted when that ends. A stale one is broken after its `lock.expires_ms`."
)
_HELD: dict[str, tuple[str, int]] = {}  # lock name -> (token, depth) held by this process
_OWNER: tuple[int, str] = (-1, "")  # (pid, owner) of this process, made on first use


Clock = Callable[[], float]  # seconds since the epoch; tests inject one to expire a lease without sleeping


def _no_pause() -> None:
    """The default of the test hook `_between_read_and_delete`: release runs straight through."""


_between_read_and_delete: Callable[[], None] = _no_pause  # tests only: a pause inside release


class AliasLockError(RuntimeError):
    """The registry lock could not be taken or was lost."""


class AliasLockTimeout(AliasLockError):
    """Another writer held the registry lock for longer than we were willing to wait."""


class AliasLockLost(AliasLockError):
    """This writer's lease on the registry lock ended (expired or broken) before an alias move."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lock of a registered model now, and until when (ms since the epoch)."""

    owner: str
    expires_ms: int


def lock_name(name: str) -> str:
    return f"{name}{LOCK_SUFFIX}"


def default_owner() -> str:
    """user@host:pid:nonce, unique per process (a forked child makes its own)."""
    global _OWNER
    if _OWNER[0] != os.getpid():
        _OWNER = (
            os.getpid(),
            f"{getpass.getuser()}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
    return _OWNER[1]


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def _holder(c, lock: str) -> dict[str, str] | None:
    """The lock's tags, or None when nobody holds it."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(c.get_registered_model(lock).tags or {})
    except MlflowException as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def current_holder(c, name: str) -> Holder | None:
    """The holder of the lock of registered model `name`, or None when it is free."""
    held = _holder(c, lock_name(name))
    if held is None:
        return None
    return Holder(held.get(OWNER_TAG, "?"), int(held.get(EXPIRES_TAG, "0") or 0))


def _try_create(
    c, lock: str, name: str, *, owner: str, token: str, ttl_s: float, clock: Clock = time.time
) -> bool:
    from mlflow.exceptions import MlflowException

    expires = int(clock() * 1000 + ttl_s * 1000)
    tags = {OWNER_TAG: owner, TOKEN_TAG: token, EXPIRES_TAG: str(expires)}
    try:
        c.create_registered_model(lock, tags=tags, description=LOCK_DESCRIPTION.format(name=name))
        return True
    except MlflowException as exc:
        if _error_code(exc) == "RESOURCE_ALREADY_EXISTS":
            return False
        raise


def _break(c, lock: str, held: dict[str, str], *, owner: str) -> None:
    """Rename a stale lock out of the way; exactly one breaker of a given stale lock succeeds."""
    from mlflow.exceptions import MlflowException

    broken = f"{lock}.broken-{held.get(TOKEN_TAG, 'unknown')}"
    try:
        c.rename_registered_model(lock, broken)
    except MlflowException as exc:
        if _error_code(exc) in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
            return  # another waiter broke it first, or its holder released it
        raise
    log.warning("%s: broke a stale lock of %s (expired at %s ms); kept as %s", lock,
                held.get(OWNER_TAG, "?"), held.get(EXPIRES_TAG, "?"), broken)  # fmt: skip


def acquire(
    c,
    name: str,
    *,
    owner: str,
    ttl_s: float = 120.0,
    wait_s: float = 300.0,
    poll_s: float = 0.2,
    clock: Clock = time.time,
) -> str:
    """Take the lock of registered model `name`; return its token. Raises AliasLockTimeout after
    `wait_s` s of a live holder (naming it and the fix)."""
    lock, token = lock_name(name), uuid.uuid4().hex
    deadline = time.monotonic() + wait_s
    while not _try_create(c, lock, name, owner=owner, token=token, ttl_s=ttl_s, clock=clock):
        held = _holder(c, lock)
        if held is None:
            continue  # released in between: try again at once
        if held.get(OWNER_TAG) == owner:  # left by this process's own failed attempt
            return held.get(TOKEN_TAG, token)
        if int(held.get(EXPIRES_TAG, "0") or 0) < clock() * 1000:
            _break(c, lock, held, owner=owner)
            continue
        if time.monotonic() > deadline:
            raise AliasLockTimeout(
                f"registered model {lock!r} is held by {held.get(OWNER_TAG, '?')} (expires at "
                f"{held.get(EXPIRES_TAG, '?')} ms since the epoch); waited {wait_s:.0f} s: try again later, "
                f"or delete registered model {lock!r} if its owner is gone"
            )
        time.sleep(poll_s * (0.5 + random.random()))
    return token


def release(c, name: str, token: str) -> None:
    """Delete the lock if it is still ours; a lock taken over (our ttl ran out) is left alone."""
    lock = lock_name(name)
    held = _holder(c, lock)
    if held is None or held.get(TOKEN_TAG) != token:
        log.warning("%s: the lock was broken while held (its ttl is too short); not released", lock)
        return
    _between_read_and_delete()
    c.delete_registered_model(lock)


@contextmanager
def alias_lock(
    c,
    name: str,
    *,
    owner: str | None = None,
    ttl_s: float = 120.0,
    wait_s: float = 300.0,
    clock: Clock = time.time,
) -> Iterator[str]:
    """Hold the registry lock of `name` for the block (re-entrant within this process)."""
    lock = lock_name(name)
    if lock in _HELD:
        token, depth = _HELD[lock]
        _HELD[lock] = (token, depth + 1)
    else:
        token = acquire(c, name, owner=owner or default_owner(), ttl_s=ttl_s, wait_s=wait_s, clock=clock)
        _HELD[lock] = (token, 1)
    try:
        yield token
    finally:
        token, depth = _HELD.pop(lock)
        if depth > 1:
            _HELD[lock] = (token, depth - 1)
        else:
            _release_quietly(c, name, token)


def _release_quietly(c, name: str, token: str) -> None:
    try:
        release(c, name, token)
    except Exception as exc:  # noqa: BLE001 - a lost connection must not hide the block's own outcome
        if not is_connection_error(exc):
            raise
        log.warning("%s: server unreachable while releasing; the lock expires by itself", lock_name(name))
