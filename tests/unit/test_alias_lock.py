"""The registry lock on a local sqlite store: exclusive, re-entrant, bounded, stale locks broken once."""

from __future__ import annotations

import pytest

from spherereid.tracking.alias_lock import (
    OWNER_TAG,
    TOKEN_TAG,
    AliasLockTimeout,
    acquire,
    alias_lock,
    lock_name,
    release,
)
from spherereid.tracking.connection import client


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    return client(f"sqlite:///{tmp_path_factory.mktemp('lock') / 'mlflow.db'}")


def names(c) -> set[str]:
    return {m.name for m in c.search_registered_models()}


def test_a_held_lock_makes_others_wait_then_give_up_naming_the_holder(c):
    token = acquire(c, "m1", owner="proc-a")
    assert c.get_registered_model(lock_name("m1")).tags[OWNER_TAG] == "proc-a"
    with pytest.raises(AliasLockTimeout, match=r"'m1.lock' is held by proc-a .* delete registered model"):
        acquire(c, "m1", owner="proc-b", wait_s=0.3)
    release(c, "m1", token)
    assert lock_name("m1") not in names(c)
    release(c, "m1", acquire(c, "m1", owner="proc-b"))


def test_nested_locks_share_one_and_release_at_the_end(c):
    with alias_lock(c, "m2") as outer:
        with alias_lock(c, "m2") as inner:
            assert inner == outer
        assert c.get_registered_model(lock_name("m2")).tags[TOKEN_TAG] == outer
    assert lock_name("m2") not in names(c)


def test_a_stale_lock_is_broken_once_and_kept(c):
    dead = acquire(c, "m3", owner="dead-proc", ttl_s=-1)  # already expired: its holder died
    fresh = acquire(c, "m3", owner="proc-b", wait_s=5)
    assert c.get_registered_model(lock_name("m3")).tags[TOKEN_TAG] == fresh
    assert f"m3.lock.broken-{dead}" in names(c)
    release(c, "m3", dead)  # the dead holder's late release leaves the new lock alone
    assert c.get_registered_model(lock_name("m3")).tags[TOKEN_TAG] == fresh
    release(c, "m3", fresh)
    assert lock_name("m3") not in names(c)
