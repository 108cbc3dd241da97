"""The registry lock on a local sqlite store: exclusive, re-entrant, bounded, stale locks broken once,
leases renewed while held, and a holder past its lease moves no alias."""

from __future__ import annotations

import time

import pytest
from fixtures.fake_clock import FakeClock, wait_until

from spherereid.tracking.client import client
from spherereid.tracking.registry import CHAMPION, promote
from spherereid.tracking.registry_lock import (
    AliasLockLost,
    AliasLockTimeout,
    acquire,
    alias_lock,
    current_holder,
    release,
)


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('lock') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def c(uri):
    return client(uri)


def test_a_held_lock_makes_others_wait_then_give_up_naming_the_holder(c):
    lease = acquire(c, "m1", owner="proc-a")
    assert current_holder(c, "m1").owner == "proc-a"
    with pytest.raises(AliasLockTimeout, match=r"'m1.lock' is held by proc-a .* delete version \d+ of"):
        acquire(c, "m1", owner="proc-b", wait_s=0.3)
    assert current_holder(c, "m1").owner == "proc-a"
    release(c, lease)
    assert current_holder(c, "m1") is None  # the waiter that gave up left no ticket behind
    release(c, acquire(c, "m1", owner="proc-b"))


def test_nested_locks_share_one_and_release_at_the_end(c):
    with alias_lock(c, "m2") as outer:
        with alias_lock(c, "m2") as inner:
            assert inner is outer
        assert current_holder(c, "m2") is not None
    assert current_holder(c, "m2") is None


def test_a_stale_lock_is_broken_once_and_recorded(c):
    long_ago = FakeClock(time.time() - 120)
    dead = acquire(c, "m3", owner="dead-proc", ttl_s=60, clock=long_ago)  # expired: its holder died
    fresh = acquire(c, "m3", owner="proc-b", wait_s=5)
    assert current_holder(c, "m3").owner == "proc-b"
    audit = c.get_registered_model("m3.lock").tags
    assert any("dead-proc" in v and "proc-b" in v for v in audit.values()), audit
    release(c, dead)  # the dead holder's late release leaves the new lock alone
    assert current_holder(c, "m3").owner == "proc-b"
    release(c, fresh)
    assert current_holder(c, "m3") is None


def test_the_lease_outlasts_mlflows_http_timeout_several_times(c):
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

    with alias_lock(c, "m4"):
        left_s = current_holder(c, "m4").expires_ms / 1000 - time.time()
    assert left_s > 4 * MLFLOW_HTTP_REQUEST_TIMEOUT.get(), f"a lease of {left_s:.0f} s"


def test_the_holder_renews_its_lease_while_it_works(c):
    clock, ttl = FakeClock(), 1.0
    with alias_lock(c, "m5", owner="proc-a", ttl_s=ttl, clock=clock):
        first = current_holder(c, "m5").expires_ms
        clock.advance(0.5 * ttl)  # half the lease gone inside the block (a slow call)
        wait_until(
            lambda: current_holder(c, "m5").expires_ms > first,
            timeout_s=30,
            what="the heartbeat renews the lease",
        )
        clock.advance(0.7 * ttl)  # past the first expiry, inside the renewed lease
        with pytest.raises(AliasLockTimeout, match="held by proc-a"):
            acquire(c, "m5", owner="proc-b", ttl_s=ttl, wait_s=0, clock=clock)
    assert current_holder(c, "m5") is None


def test_a_holder_past_its_lease_moves_no_alias(c, uri):
    exp = c.create_experiment("lease")
    run = c.create_run(exp).info.run_id
    c.create_registered_model("m6")
    v1, v2 = (c.create_model_version("m6", source=f"runs:/{run}/model-{i}", run_id=run) for i in (1, 2))
    c.set_registered_model_alias("m6", CHAMPION, v1.version)
    clock, ttl = FakeClock(), 600.0
    with alias_lock(c, "m6", ttl_s=ttl, clock=clock):
        clock.advance(0.9 * ttl)  # a hung call: too little lease left to start an alias move
        with pytest.raises(AliasLockLost, match=r"'m6.lock'.*no alias moved"):
            promote(name="m6", version=int(v2.version), reason="by hand", tracking_uri=uri)
    aliases = {alias: int(v) for alias, v in c.get_registered_model("m6").aliases.items()}
    assert aliases == {CHAMPION: int(v1.version)}, f"a writer past its lease moved aliases: {aliases}"
