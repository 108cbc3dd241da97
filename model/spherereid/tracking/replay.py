"""`spherereid tracking replay DIR`: send what a training's spool holds and MLflow does not yet have.

    spherereid tracking replay outputs/synthetic/train/checkpoints

Sends the spool's remaining metrics (with their steps and timestamps), params and tags in order, to the
tracking URI recorded in DIR/spool.json (a set MLFLOW_TRACKING_URI wins, with a warning). Replaying twice
sends nothing twice. Records of a run the store does not hold (a removed mlflow.db, a deleted run) are set
aside in DIR/spool.dead.jsonl and named; the rest is sent. A server that stays unreachable, a busy store
or a refused record is one line naming the URI and what to do, and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..contracts import TRACKING_URI_ENV
from ..entrypoint import run_cli
from ..redaction import redact_uri
from .spool import replay
from .spool_journal import DEAD_FILE, META_FILE

log = logging.getLogger(__name__)


def _target_uri(directory: Path) -> str | None:
    """MLFLOW_TRACKING_URI when set and different from the spool's recorded URI, else None (recorded)."""
    env_uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    meta = directory / META_FILE
    if not env_uri or not meta.is_file():
        return None
    try:
        recorded = json.loads(meta.read_text()).get("tracking_uri")
    except (json.JSONDecodeError, AttributeError):
        recorded = None
    if recorded != redact_uri(env_uri):  # spool.json holds the URI without credentials
        log.warning("%s: spool recorded for %s; replaying to MLFLOW_TRACKING_URI=%s", meta, recorded,
                    redact_uri(env_uri))  # fmt: skip
    return env_uri


def replay_main(argv: Sequence[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="send a spool's remaining records to MLflow")
    parser.add_argument("dir", type=Path, help="the spool directory (the train stage's checkpoints folder)")
    args = parser.parse_args(argv)

    def body() -> int:
        res = replay(args.dir, tracking_uri=_target_uri(args.dir))
        s = res.sent
        runs = ", ".join(res.runs) or "none"
        shown = redact_uri(res.tracking_uri)
        print(f"replayed {args.dir} to {shown}: {s.metrics} metric values, {s.params} params, "
              f"{s.tags} tags sent (run {runs}); {s.skipped} metric values were already there")  # fmt: skip
        if s.set_aside:
            print(f"{s.set_aside} records of runs not in {shown} set aside in "
                  f"{res.directory / DEAD_FILE} (run {', '.join(res.gone)})")  # fmt: skip
        return 0

    return run_cli(body)


def main(argv: Sequence[str] | None = None, prog: str = "spherereid tracking") -> int:
    """`spherereid tracking <subcommand>`; today: replay."""
    parser = argparse.ArgumentParser(prog=prog, description="tracking tools (today: replay a spool)")
    sub = parser.add_subparsers(dest="subcommand", metavar="<subcommand>", required=True)
    sub.add_parser("replay", add_help=False, help="replay DIR: send a spool's remaining records to MLflow")
    args, rest = parser.parse_known_args(argv)
    return replay_main(rest, prog=f"{prog} {args.subcommand}")


if __name__ == "__main__":
    raise SystemExit(main())
