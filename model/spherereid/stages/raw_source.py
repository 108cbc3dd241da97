"""Where a raw dataset comes from for one pipeline run, and which version it was.

Three sources, tried in this order:
- a local folder `<raw_root>/<dataset>` (laptops, `python -m pipeline run-local --raw-root`);
- a DVC-versioned folder in a git repository at a revision (`data_repo`, `data_rev`, `data_path`),
  fetched with `dvc.api.DVCFileSystem`; S3 credentials come from the environment (AWS_*);
- for a dataset the registry marks as generated (synthetic, and synthetic_b: the second camera
  network, synthetic.domain b, as DVC's synthesize stage draws it when listed) only: the embedded generator
  (deterministic given its seed).
The result names the revision and the data hash used, for the pipeline's lineage metadata. A data
repository URL may carry a token (https://TOKEN@host/..., ?token=): logs, errors and metadata name it
without (`recorded_sources`, redaction.redact_uri).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import SyntheticConfig
from ..data import datasets
from ..redaction import redact_text, redact_uri

log = logging.getLogger(__name__)


class RawSourceError(ValueError):
    """The raw dataset cannot be found or fetched; the message says from where and what to pass."""


@dataclass(frozen=True)
class RawSource:
    """A raw dataset folder on local disk and its provenance."""

    path: Path
    origin: str  # local | dvc | generated
    revision: str  # git commit of the data repo, or a description for local/generated data
    data_hash: str  # DVC's directory hash (md5 "....dir") when known, else ""

    def lineage(self) -> dict[str, str]:
        """Provenance as plain strings (for artifact metadata and tags)."""
        return {"origin": self.origin, "revision": self.revision, "data_hash": self.data_hash}


def resolve_raw(
    *,
    dataset: str,
    work_dir: Path,
    raw_root: str = "",
    data_repo: str = "",
    data_rev: str = "",
    data_path: str = "data/raw/{dataset}",
    synthetic: SyntheticConfig | None = None,
) -> RawSource:
    """Find or fetch the raw folder of `dataset`; downloads and generated data go under `work_dir`."""
    work_dir = Path(work_dir)
    if raw_root:
        path = Path(raw_root) / dataset
        if not path.is_dir():
            raise RawSourceError(f"{path}: raw dataset folder not found (check --raw-root / raw_root)")
        return RawSource(path, "local", f"local:{path.resolve()}", "")
    if data_repo:
        return fetch_dvc(data_repo, data_rev, data_path.format(dataset=dataset), work_dir / dataset)
    spec = datasets.lookup(dataset)
    if spec is not None and spec.generated:  # made by the synthesize stage when no source is given
        from . import synthesize

        cfg = synthetic or SyntheticConfig()
        cfg = dataclasses.replace(cfg, domain=spec.domain) if spec.domain else cfg
        synthesize.run(synthetic=cfg, out_dir=work_dir / dataset)
        domain = "" if cfg.domain == "a" else f",domain={cfg.domain}"
        return RawSource(work_dir / dataset, "generated", f"generated:seed={cfg.seed}{domain}", "")
    raise RawSourceError(
        f"dataset '{dataset}': no raw data source; pass raw_root (a folder holding '{dataset}/') "
        "or data_repo + data_rev (a git repository with the DVC-tracked raw data)"
    )


def recorded_sources(sources: Mapping[str, str]) -> dict[str, str]:
    """The source arguments (raw_root, data_repo, data_rev, data_path) as artifact metadata records
    them: a URL without its credentials."""
    return {key: redact_uri(str(value)) for key, value in sources.items()}


def fetch_dvc(repo: str, rev: str, path: str, dest: Path) -> RawSource:
    """Download DVC-tracked `path` of git `repo` at `rev` into `dest`; record the commit and hash."""
    from dvc.api import DVCFileSystem

    where = f"{redact_uri(repo)}@{rev or 'HEAD'}:{path}"
    try:
        fs = DVCFileSystem(repo, rev=rev or None)
        info = fs.info(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get(path, str(dest), recursive=True)
        commit = fs.repo.get_rev()  # the commit `rev` resolved to (not the clone's HEAD)
    except FileNotFoundError:
        raise RawSourceError(f"{where}: not found in the data repository (check data_path)") from None
    except Exception as exc:  # noqa: BLE001 - DVC/scm raise many types; name the source and the cause
        cause = redact_text(str(exc))  # git and DVC quote the URL they were given
        raise RawSourceError(f"{where}: cannot fetch raw data: {type(exc).__name__}: {cause}") from None
    data_hash = str((info.get("dvc_info") or {}).get("md5", ""))
    log.info("fetched %s (commit %s, hash %s) into %s", where, commit, data_hash or "?", dest)
    return RawSource(dest, "dvc", commit, data_hash)
