"""`spherereid promote`: make a registered version the champion by hand, recording who, when and why.

    spherereid promote --name spherereid-synthetic --version 3 --reason "new dataset version, checked"

The version gets tags promoted_by, promoted_at (UTC), promotion_reason and promoted_from_version; the
alias `champion` then serves it (`mlflow models serve -m models:/NAME@champion`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..contracts import USER_ENV
from ..entrypoint import run_cli
from ..redaction import redact_uri
from . import runs
from .alias_lock import alias_lock
from .registry import CHAMPION, RegistryError, _aliases, _move_champion

log = logging.getLogger(__name__)


def current_user() -> str:
    """Who runs this: $SPHEREREID_USER, else the login name, else 'unknown'."""
    name = os.environ.get(USER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Promotion:
    """The result of `promote`: the new and the previous champion."""

    name: str
    version: int
    previous: int | None
    by: str
    reason: str


def promote(
    *,
    name: str,
    version: int,
    reason: str,
    force: bool = False,
    user: str | None = None,
    tracking_uri: str | None = None,
) -> Promotion:
    """Make `version` the champion of `name` by hand, recording who, when and why as version tags.
    A version that failed the quality gate needs `force`."""
    uri = tracking_uri or runs.tracking_uri()
    by = user or current_user()

    def go() -> Promotion:
        from mlflow.exceptions import MlflowException

        c = runs.client(uri)
        try:
            mv = c.get_model_version(name, str(version))
        except MlflowException as exc:
            if runs.is_connection_error(exc):
                raise
            raise RegistryError(_missing_version(c, name, version, uri)) from None
        if mv.tags.get("quality_gate") == "failed" and not force:
            raise RegistryError(
                f"{name} version {version} failed the quality gate (rank1 {mv.tags.get('rank1', '?')}, mAP "
                f"{mv.tags.get('mAP', '?')}); pass --force to promote it anyway"
            )
        with alias_lock(c, name):  # the read of the champion and its move, one writer at a time
            previous = _aliases(c, name).get(CHAMPION)
            _move_champion(c, name, version, previous, by=by, reason=reason)
        return Promotion(name, version, previous, by, reason)

    result = runs.with_retries(go, what=f"promote {name} version {version}", uri=uri)
    log.info(
        "%s version %d is now %s (was %s); by %s: %s", name, version, CHAMPION, result.previous, by, reason
    )
    return result


def _missing_version(c, name: str, version: int, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        found = sorted(int(v.version) for v in c.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        found = []
    if not found:
        return f"registered model {name!r} has no versions (or does not exist) at {redact_uri(uri)}"
    return f"{name} version {version} not found; versions: {', '.join(map(str, found))}"


def main(argv: Sequence[str] | None = None, prog: str = "spherereid promote") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="registered model name, e.g. spherereid-synthetic")
    parser.add_argument("--version", type=int, required=True, help="the version to make champion")
    parser.add_argument("--reason", default="promoted by hand", help="why (recorded as a version tag)")
    parser.add_argument(
        "--force", action="store_true", help="promote a version that failed the quality gate anyway"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        res = promote(name=args.name, version=args.version, reason=args.reason, force=args.force)
        was = f"version {res.previous}" if res.previous is not None else "none"
        print(f"{res.name} version {res.version} is now champion (was {was}); by {res.by}: {res.reason}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
