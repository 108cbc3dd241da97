"""Lineage helpers for MLflow tags: flattened params and their hash, git commit, DVC data hash."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..contracts import GIT_COMMIT_ENV as ENV_GIT_COMMIT

log = logging.getLogger(__name__)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b": "value"}; lists and tuples as JSON, other values as str()."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value))
        else:
            out[name] = str(value)
    return out


def params_hash(params_flat: Mapping[str, Any]) -> str:
    """sha256 of the params as sorted JSON (tuples as lists), first 12 hex digits."""
    text = json.dumps(dict(params_flat), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def git_commit(repo: str | Path) -> str | None:
    """HEAD's commit of the git repository containing `repo`; outside a repository (or without git, as
    in the image) the commit the image was built from ($SPHEREREID_GIT_COMMIT); else None."""
    fallback = os.environ.get(ENV_GIT_COMMIT, "").strip() or None
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else fallback


def dvc_data_hash(path: str | Path) -> str | None:
    """The md5 DVC recorded for `path` (an out in the nearest dvc.lock, or `<path>.dvc`), else None."""
    path = Path(path).resolve()
    dvc_file = path.with_name(path.name + ".dvc")
    if dvc_file.is_file():
        return _md5_of(dvc_file, path)
    for folder in path.parents:
        lock = folder / "dvc.lock"
        if lock.is_file():
            return _md5_of(lock, path)
    return None


def _md5_of(file: Path, want: Path) -> str | None:
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        log.warning("%s: unreadable, no DVC data hash recorded", file)
        return None
    outs = list(raw.get("outs") or [])
    for stage in (raw.get("stages") or {}).values():
        if isinstance(stage, dict):
            outs.extend(stage.get("outs") or [])
    for out in outs:
        if isinstance(out, dict) and "path" in out and (file.parent / out["path"]).resolve() == want:
            md5 = out.get("md5")
            return str(md5) if md5 else None
    return None
