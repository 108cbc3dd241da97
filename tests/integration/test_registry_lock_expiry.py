"""The registry lock (tracking/registry_lock.py) against a real `mlflow server` when a lease runs out.

The interleavings are forced, not waited for: lease time is an injected clock moved by hand, and the
test hook `registry_lock._between_read_and_delete` runs the other writer inside a holder's release, after
it read the lock and before it deleted it.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from fixtures.fake_clock import FakeClock

from spherereid.tracking import registry_lock as lock_module
from spherereid.tracking.client import client
from spherereid.tracking.registry import CHAMPION, promote, register_and_gate
from spherereid.tracking.registry_lock import (
    AliasLockLost,
    AliasLockTimeout,
    acquire,
    alias_lock,
    current_holder,
    release,
)
from spherereid.tracking.tags import PROMOTED_AT

pytestmark = pytest.mark.slow

TTL = 60.0


def test_a_late_release_leaves_the_breakers_lock_and_a_third_writer_waits(mlflow_server, monkeypatch):
    c, name, clock = client(mlflow_server.uri), "expiry-late-release", FakeClock()
    with ExitStack() as b_holds:

        def b_breaks_in() -> None:  # A has read its lock; before A deletes it, A's lease runs out
            monkeypatch.setattr(lock_module, "_between_read_and_delete", lock_module._no_pause)
            clock.advance(TTL + 1)
            b_holds.enter_context(alias_lock(c, name, owner="B", ttl_s=TTL, wait_s=5, clock=clock))

        monkeypatch.setattr(lock_module, "_between_read_and_delete", b_breaks_in)
        with alias_lock(c, name, owner="A", ttl_s=TTL, clock=clock):
            pass  # A's release runs b_breaks_in, then goes on
        assert lock_module._between_read_and_delete is lock_module._no_pause, "B never broke in"
        holder = current_holder(c, name)
        assert holder is not None and holder.owner == "B", f"A's late release removed B's lock: {holder}"
        with pytest.raises(AliasLockTimeout, match="held by B"):
            acquire(c, name, owner="C", ttl_s=TTL, wait_s=0.5, clock=clock)
        assert current_holder(c, name).owner == "B"
    assert current_holder(c, name) is None  # B released at the end of its block


def _two_versions(c, name: str) -> tuple[str, str, str]:
    """A registered model with versions 1 (champion) and 2 from one run; returns (run_id, v1, v2)."""
    exp = c.create_experiment(f"{name}-exp")
    run = c.create_run(exp).info.run_id
    c.create_registered_model(name)
    v1, v2 = (c.create_model_version(name, source=f"runs:/{run}/model-{i}", run_id=run) for i in (1, 2))
    c.set_registered_model_alias(name, CHAMPION, v1.version)
    return run, str(v1.version), str(v2.version)


def _promote(uri: str, name: str, run_id: str, version: str) -> None:
    promote(name=name, version=int(version), reason="by hand", tracking_uri=uri)


def _register(uri: str, name: str, run_id: str, version: str) -> None:
    register_and_gate(
        name=name,
        model_uri=f"runs:/{run_id}/model-3",
        run_id=run_id,
        metrics={"rank1": 0.99, "mAP": 0.99},
        dataset_hash="data-v1",
        min_rank1=0.0,
        min_map=0.0,
        tags={},
        promotion="best",
        tracking_uri=uri,
    )


@pytest.mark.parametrize("write", [_promote, _register], ids=["promote", "register"])
def test_a_holder_whose_lock_was_broken_moves_no_alias(mlflow_server, write):
    uri = mlflow_server.uri
    c, name = client(uri), f"expiry-lost-lease-{write.__name__.strip('_')}"
    run_id, v1, v2 = _two_versions(c, name)
    ahead = FakeClock(time.time() + 10 * TTL)  # B's clock runs ahead: to B, A's lease is long over
    with alias_lock(c, name, owner="A", ttl_s=TTL):
        b = acquire(c, name, owner="B", ttl_s=TTL, wait_s=5, clock=ahead)  # breaks A's lock
        with pytest.raises(AliasLockLost, match=r"expiry-lost-lease.*\.lock.*no alias moved"):
            write(uri, name, run_id, v2)
    aliases = {alias: str(v) for alias, v in c.get_registered_model(name).aliases.items()}
    assert aliases == {CHAMPION: v1}, f"a writer without the lock moved aliases: {aliases}"
    assert PROMOTED_AT not in c.get_model_version(name, v2).tags
    assert current_holder(c, name).owner == "B"
    release(c, b)
    assert current_holder(c, name) is None
