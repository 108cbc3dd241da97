"""Concurrent writers to the registry: 4 processes meet at a barrier, then register at once against one
real `mlflow server`, 20 rounds (a new registered model each). Two of them register the same model file.
Under the registry lock (tracking/registry_lock.py) every round ends with one version per model file, the
champion the same-data policy picks (the best mAP), the challenger on the newest version, each champion
move recorded in tags as one chain, and no lock left behind.

SPHEREREID_RACE_UNLOCKED=1 runs the same races without the lock, to see them fail. The server (conftest's
`server`) runs on each MLflow backend: sqlite, and PostgreSQL with S3 artifacts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue

import pytest
from fixtures.registry_race import Entry, worker

from spherereid.tracking.client import client
from spherereid.tracking.registry import CHALLENGER, CHAMPION
from spherereid.tracking.registry_lock import current_holder, lock_name
from spherereid.tracking.tags import PROMOTED_AT, PROMOTED_BY, PROMOTED_FROM

pytestmark = pytest.mark.slow

PROCESSES, ROUNDS = 4, int(os.environ.get("SPHEREREID_RACE_ROUNDS", "20"))
LOCKED = os.environ.get("SPHEREREID_RACE_UNLOCKED") != "1"
SHARE = (0, 0, 1, 2)  # process -> model file (rotated each round): files 0 is registered twice at once
MAPS = ((0.5, 0.6, 0.7), (0.7, 0.5, 0.6), (0.6, 0.7, 0.5))  # each file's mAP, by round % 3


def make_rounds(c) -> list[list[Entry]]:
    """Per round, three model files (a run each, a distinct source) with the round's mAPs."""
    exp = c.create_experiment("race")
    rounds = []
    for r in range(ROUNDS):
        files = []
        for f, m_ap in enumerate(MAPS[r % 3]):
            run = c.create_run(exp).info.run_id
            files.append(Entry(f"race-{r}", run, f"runs:/{run}/model-{f}", m_ap))
        rounds.append(files)
    return rounds


def race(uri: str, rounds: list[list[Entry]]) -> dict[tuple[int, int], int | str]:
    """Run the 4 workers through every round; (round, process) -> version (or a traceback)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    plans = [[files[SHARE[(p + r) % PROCESSES]] for r, files in enumerate(rounds)] for p in range(PROCESSES)]
    procs = [
        ctx.Process(target=worker, args=(p, uri, plans[p], barrier, results, LOCKED))
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    got: dict[tuple[int, int], int | str] = {}
    try:
        while len(got) < PROCESSES * ROUNDS:
            r, p, version = results.get(timeout=600)
            got[(r, p)] = version
            assert not isinstance(version, str), f"round {r}, process {p}:\n{version}"
    except queue.Empty:
        pytest.fail(f"workers stopped answering after {len(got)} registrations")
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return got


def check_round(c, files: list[Entry], versions_seen: set[int]) -> list[str]:
    """The invariants of one round, as a list of what is wrong (empty: all hold)."""
    name = files[0].name
    versions = {int(v.version): v for v in c.search_model_versions(f"name = '{name}'")}
    by_source = {v.source: n for n, v in versions.items()}
    wrong = []
    if len(versions) != len(files) or set(by_source) != {f.model_uri for f in files}:
        wrong.append(
            f"{name}: versions {sorted((n, v.source) for n, v in versions.items())}, one per file wanted"
        )
    if versions_seen - set(versions):
        wrong.append(f"{name}: workers got versions {sorted(versions_seen)}")
    aliases = {a: int(v) for a, v in c.get_registered_model(name).aliases.items()}
    best = by_source.get(max(files, key=lambda f: f.m_ap).model_uri)
    if aliases.get(CHAMPION) != best:
        wrong.append(f"{name}: champion {aliases.get(CHAMPION)}, the best mAP is version {best}")
    if aliases.get(CHALLENGER) != max(versions):
        wrong.append(f"{name}: challenger {aliases.get(CHALLENGER)}, newest version {max(versions)}")
    wrong += check_moves(name, versions, aliases.get(CHAMPION))
    left = current_holder(c, name)
    if left is not None:
        wrong.append(f"{lock_name(name)}: ticket {left.number} of {left.owner} left behind")
    return wrong


def check_moves(name: str, versions: dict, champion: int | None) -> list[str]:
    """Every champion move is tagged, and the moves form one chain (each from the champion before it,
    each to a better mAP): following promoted_from_version from the champion visits every moved version."""
    moved = {n for n, v in versions.items() if PROMOTED_AT in v.tags and PROMOTED_BY in v.tags}
    chain, cur = [], champion
    while cur is not None and cur not in chain:
        chain.append(cur)
        came = versions[cur].tags.get(PROMOTED_FROM, "none")
        cur = None if came == "none" else int(came)
    maps = [float(versions[n].tags["mAP"]) for n in chain]
    wrong = []
    if set(chain) != moved:
        wrong.append(f"{name}: champion moves {sorted(moved)} do not form one chain ({chain})")
    if maps != sorted(maps, reverse=True) or len(set(maps)) != len(maps):
        wrong.append(f"{name}: the chain's mAPs {maps} do not rise with each move")
    return wrong


def test_four_concurrent_registers_keep_the_registry_invariants(server):
    c = client(server.uri)
    rounds = make_rounds(c)
    got = race(server.uri, rounds)
    wrong = []
    for r, files in enumerate(rounds):
        seen = {v for (rr, _), v in got.items() if rr == r and isinstance(v, int)}
        shared = {got[(r, p)] for p in range(PROCESSES) if SHARE[(p + r) % PROCESSES] == 0}
        if len(shared) != 1:
            wrong.append(f"round {r}: the two registers of one model file got versions {sorted(shared)}")
        wrong += check_round(c, files, seen)
    assert not wrong, f"{len(wrong)} violations in {ROUNDS} rounds:\n" + "\n".join(wrong)
