"""The gated model registry: one registered model per dataset, one version per served model file.

Quality gate: rank1 >= min_rank1 and mAP >= min_map. A passing version gets alias `challenger` (unless a
newer version holds it). Alias `champion` follows the promotion policy (register.promotion):
- same-data: a better mAP than the champion's on the same dataset version (equal dataset hash tags);
- best: a better mAP, whatever the dataset version;
- manual: never automatically; `spherereid promote` moves it (`promote_main`):

    spherereid promote --name spherereid-synthetic --version 3 --reason "new dataset version, checked"

Any policy makes the first passing version champion, except manual. Every move records who, when and
why as version tags (tags.promotion_tags). Failing the gate is a result (passed_gate False, reason), not
an error. Registering the same logged model again reuses its version; a new model file is always a new
version. The version carries the run's lineage (tags.version_lineage), and the run the version it became
(`mark_registered`). Cross-dataset results land on the version as `xeval.<test>.<metric>` tags
(`tag_version`) and a table in its model card (`rewrite_description`); `registered_version` finds the
version from the training run's tags (a run the quality gate refused in KFP has none).
"""

from __future__ import annotations

import argparse
import functools
import getpass
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..contracts import USER_ENV
from ..entrypoint import run_cli
from ..redaction import redact_uri
from . import runs, tags
from .client import client, is_connection_error, link_model_version, using_tracking_uri, with_retries
from .client import tracking_uri as default_tracking_uri
from .registry_lock import alias_lock, ensure_held
from .runs import RunRef

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
GATE_METRICS = ("rank1", "mAP")


class RegistryError(ValueError):
    """Bad input to the registry (e.g. a metric missing from metrics.json, an unknown version)."""


@dataclass(frozen=True)
class RegistrationResult:
    """What the registry holds for this run after registration."""

    name: str
    version: int
    passed_gate: bool
    reason: str
    aliases: list[str] = field(default_factory=list)
    champion_version: int | None = None


def _metric(metrics: Mapping[str, Any], key: str) -> float:
    if key not in metrics:
        raise RegistryError(
            f"metric '{key}' missing (have: {', '.join(sorted(metrics))}); run the evaluate stage"
        )
    try:
        return float(metrics[key])
    except (TypeError, ValueError):
        raise RegistryError(f"metric '{key}' is not a number: {metrics[key]!r}") from None


def gate(metrics: Mapping[str, Any], *, min_rank1: float, min_map: float) -> tuple[bool, str]:
    """(passed, text) for the quality gate; NaN fails."""
    rank1, m_ap = _metric(metrics, "rank1"), _metric(metrics, "mAP")
    fails = []
    if not (rank1 >= min_rank1):  # NaN-safe
        fails.append(f"rank1 {rank1:.4f} < min_rank1 {min_rank1:.4f}")
    if not (m_ap >= min_map):
        fails.append(f"mAP {m_ap:.4f} < min_map {min_map:.4f}")
    if fails:
        return False, "quality gate failed: " + "; ".join(fails)
    return (
        True,
        f"quality gate passed (rank1 {rank1:.4f} >= {min_rank1:.4f}, mAP {m_ap:.4f} >= {min_map:.4f})",
    )


def _model_id(model_uri: str) -> str | None:
    if model_uri.startswith("models:/m-"):
        return model_uri[len("models:/") :].split("/")[0]
    return None


def _aliases(c, name: str) -> dict[str, int]:
    """alias -> version from the registered model (search_model_versions leaves aliases empty)."""
    return {alias: int(v) for alias, v in (c.get_registered_model(name).aliases or {}).items()}


def _find_version(c, name: str, run_id: str, model_uri: str) -> int | None:
    """The version registered from exactly this logged model (one version per model file)."""
    found = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    versions = sorted(int(v.version) for v in found if v.source == model_uri)
    return versions[0] if versions else None


def _ensure_model(c, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
        return
    except MlflowException as exc:
        if is_connection_error(exc):
            raise
    try:
        c.create_registered_model(name, description=MODEL_DESCRIPTION.format(name=name))
    except MlflowException as exc:
        if "ALREADY_EXISTS" not in str(exc.error_code):
            raise


MODEL_DESCRIPTION = """SphereReID person re-identification embeddings (MLflow pyfunc).

Input: a DataFrame column `image` of JPEG/PNG bytes (base64 in JSON); output: one unit-norm embedding
per image, computed exactly as the evaluation computed it (decode, resize, normalise, flip-average, L2).
Rank a gallery by cosine similarity (the dot product of the embeddings).

Aliases: `champion` is the served model (moved by the promotion policy in params `register.promotion`,
or by `spherereid promote --name {name} --version V --reason TEXT`); `challenger` is the latest version
that passed the quality gate. Each version's description is its model card.
"""


def register_and_gate(
    *,
    name: str,
    model_uri: str,
    run_id: str,
    metrics: Mapping[str, Any],
    dataset_hash: str | None,
    min_rank1: float,
    min_map: float,
    tags: Mapping[str, Any],
    promotion: str = "same-data",
    describe: Callable[[int], str] | None = None,
    tracking_uri: str | None = None,
) -> RegistrationResult:
    """Register the logged model (once), tag it with metrics and lineage, set its description (the model
    card: `describe(version)`), apply the gate, then move aliases under the promotion policy."""
    passed, gate_text = gate(metrics, min_rank1=min_rank1, min_map=min_map)
    uri = tracking_uri or default_tracking_uri()

    def go() -> RegistrationResult:
        c = client(uri)
        with alias_lock(c, name):  # find-or-create and the alias moves, one writer at a time
            return _register(
                c,
                name=name,
                model_uri=model_uri,
                run_id=run_id,
                metrics=metrics,
                dataset_hash=dataset_hash,
                passed=passed,
                gate_text=gate_text,
                lineage=tags,
                promotion=promotion,
                describe=describe,
            )

    result = with_retries(go, what=f"register {name}", uri=uri)
    log.info("%s version %d: %s", name, result.version, result.reason)
    return result


def _register(
    c, *, name, model_uri, run_id, metrics, dataset_hash, passed, gate_text, lineage, promotion, describe
) -> RegistrationResult:
    _ensure_model(c, name)
    version_tags = tags.version_tags(
        lineage, metrics, run_id=run_id, dataset_hash=dataset_hash, passed=passed
    )
    version = _find_or_create_version(c, name, model_uri, run_id, version_tags)
    if describe is not None:
        c.update_model_version(name, str(version), description=describe(version))

    if not passed:
        aliases = _aliases(c, name)
        return RegistrationResult(
            name,
            version,
            False,
            f"{gate_text}; no alias set",
            sorted(a for a, v in aliases.items() if v == version),
            aliases.get(CHAMPION),
        )

    aliases = _aliases(c, name)
    current = aliases.get(CHALLENGER)
    if current is None or current <= version:
        ensure_held(c, name)  # a writer whose lease on the registry lock ended moves nothing
        c.set_registered_model_alias(name, CHALLENGER, str(version))
    move, decision = _champion_decision(
        c, name, version, aliases.get(CHAMPION), float(metrics["mAP"]), dataset_hash, promotion
    )
    if move:
        _move_champion(
            c, name, version, aliases.get(CHAMPION), by=f"register (promotion: {promotion})", reason=decision
        )
    aliases = _aliases(c, name)
    return RegistrationResult(
        name,
        version,
        True,
        f"{gate_text}; {decision}",
        sorted(a for a, v in aliases.items() if v == version),
        aliases.get(CHAMPION),
    )


def _find_or_create_version(c, name: str, model_uri: str, run_id: str, version_tags: dict[str, str]) -> int:
    """The version of `name` registered from `model_uri` (its tags refreshed), else a new one; either way
    recorded on the LoggedModel (the Models view's "Registered models" column)."""
    version = _find_version(c, name, run_id, model_uri)
    if version is None:
        # MLflow's sqlite registry looks the logged model up through the global tracking URI
        with using_tracking_uri(c.tracking_uri):
            mv = c.create_model_version(
                name, source=model_uri, run_id=run_id, tags=version_tags, model_id=_model_id(model_uri)
            )
        version = int(mv.version)
        log.info("registered %s version %d from %s", name, version, model_uri)
    else:
        log.info("%s is already %s version %d; updating its tags", model_uri, name, version)
        for key, value in version_tags.items():
            c.set_model_version_tag(name, str(version), key, value)
    if (model_id := _model_id(model_uri)) is not None:
        link_model_version(c, model_id, name, version)
    return version


def _champion_decision(
    c, name: str, version: int, champion: int | None, m_ap: float, dataset_hash: str | None, promotion: str
) -> tuple[bool, str]:
    """(whether champion moves to `version`, the reason in words)."""
    promote_cmd = f"spherereid promote --name {name} --version {version} --reason TEXT"
    if champion == version:
        return False, f"version {version} is already {CHAMPION}"
    if promotion == "manual":
        held = f"{CHAMPION} stays version {champion}" if champion is not None else f"no {CHAMPION} yet"
        return False, f"promotion is manual: {held}; to serve this version run `{promote_cmd}`"
    if champion is None:
        return True, f"no champion yet: version {version} is now {CHAMPION}"
    champion_tags = c.get_model_version(name, str(champion)).tags
    champ_hash = champion_tags.get(tags.DATASET_HASH)
    champ_map = tags.metric_value(champion_tags, "mAP")
    same_data = (
        dataset_hash is not None and champ_hash not in (None, tags.UNKNOWN) and champ_hash == dataset_hash
    )
    if promotion == "same-data" and not same_data:
        return False, (
            f"new dataset version: {CHAMPION} version {champion} was evaluated on dataset "
            f"{champ_hash or 'unknown'}, this version on {dataset_hash or 'unknown'}, so their mAPs "
            f"({champ_map:.4f} vs {m_ap:.4f}) do not compare and {CHAMPION} was not moved (promotion: "
            f"same-data). To serve this version run `{promote_cmd}`; to let the better mAP win across "
            "dataset versions set register.promotion: best; or keep the champion"
        )
    across = "" if same_data else f" (evaluated on another dataset version, {champ_hash or 'unknown'})"
    if math.isnan(champ_map) or m_ap > champ_map:
        return True, (
            f"mAP {m_ap:.4f} beats {CHAMPION} version {champion} ({champ_map:.4f}){across}: {CHAMPION} moved"
        )
    return False, (
        f"mAP {m_ap:.4f} does not beat {CHAMPION} version {champion} ({champ_map:.4f}){across}: "
        f"{CHALLENGER} only"
    )


def _move_champion(c, name: str, version: int, previous: int | None, *, by: str, reason: str) -> None:
    """Point `champion` at `version` and record who, when, why and from which version as version tags
    (under the registry lock: ensure_held raises AliasLockLost, moving nothing, once its lease ended)."""
    ensure_held(c, name)
    c.set_registered_model_alias(name, CHAMPION, str(version))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in tags.promotion_tags(by=by, at=at, reason=reason, previous=previous).items():
        c.set_model_version_tag(name, str(version), key, value)


# ---------------------------------------------------------------- run <-> version, cross-dataset results


def mark_registered(ref: RunRef, reg: RegistrationResult) -> None:
    """Tag the run with the registered model, its version and the gate's verdict."""
    runs.set_tags(ref, tags.registered_tags(reg.name, reg.version, reg.passed_gate))


def registered_version(ref: RunRef) -> tuple[str, int] | None:
    """The (name, version) the training run `ref` was registered as (mark_registered's run tags); None
    when it was never registered (the quality gate refused it)."""
    return tags.registered_as(runs.get_run_tags(ref))


def tag_version(name: str, version: int, results: Mapping[str, Mapping[str, float]]) -> dict[str, str]:
    """Set the `xeval.<test>.<metric>` tags of `results` ({test: {metric: value}}) on registered model
    `name` version `version`; return them."""
    version_tags = tags.xeval_tags(results)
    uri = default_tracking_uri()
    c = client(uri)
    for key, value in version_tags.items():
        with_retries(
            functools.partial(c.set_model_version_tag, name, str(version), key, value),
            what=f"tagging {name} version {version}",
            uri=uri,
        )
    return version_tags


def rewrite_description(name: str, version: int, rewrite: Callable[[str], str]) -> str:
    """Replace the description (the model card) of `name` version `version` by `rewrite(current)`."""
    uri = default_tracking_uri()
    c = client(uri)
    what = f"updating the model card of {name} version {version}"
    current: str = with_retries(
        lambda: c.get_model_version(name, str(version)).description or "", what=what, uri=uri
    )
    text = rewrite(current)
    with_retries(lambda: c.update_model_version(name, str(version), description=text), what=what, uri=uri)
    return text


# ---------------------------------------------------------------- promotion by hand (`spherereid promote`)
PROMOTE_HELP = (
    "`spherereid promote`: make a registered version the champion by hand, recording who, when and why."
)


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
    uri = tracking_uri or default_tracking_uri()
    by = user or current_user()

    def go() -> Promotion:
        from mlflow.exceptions import MlflowException

        c = client(uri)
        try:
            mv = c.get_model_version(name, str(version))
        except MlflowException as exc:
            if is_connection_error(exc):
                raise
            raise RegistryError(_missing_version(c, name, version, uri)) from None
        if tags.failed_gate(mv.tags) and not force:
            shown = {m: mv.tags.get(m, "?") for m in GATE_METRICS}  # as the version carries them
            raise RegistryError(
                f"{name} version {version} failed the quality gate (rank1 {shown['rank1']}, mAP "
                f"{shown['mAP']}); pass --force to promote it anyway"
            )
        with alias_lock(c, name):  # the read of the champion and its move, one writer at a time
            previous = _aliases(c, name).get(CHAMPION)
            _move_champion(c, name, version, previous, by=by, reason=reason)
        return Promotion(name, version, previous, by, reason)

    result = with_retries(go, what=f"promote {name} version {version}", uri=uri)
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


def promote_main(argv: Sequence[str] | None = None, prog: str = "spherereid promote") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=PROMOTE_HELP)
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
