"""Compile and submit one run to a Kubeflow Pipelines API (kfp.Client)."""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp_server_api.exceptions import OpenApiException

from spherereid.redaction import redact_uri

from .compile import check_image, compile_pipeline
from .settings import ClusterSettings, PipelineError, pipeline_arguments

# Data revisions that move: preprocess is cached on its inputs (data_repo, data_rev), so a run with one
# of these would be served the data of whatever commit it named when the cache entry was made.
MOVING_REVS = frozenset({"", "head", "main", "master", "develop", "dev", "trunk"})

HOST_HINT = (
    "pass --host (or set KFP_HOST), e.g. http://localhost:8080 after `kubectl port-forward` to ml-pipeline-ui"
)


def connect(host: str) -> Any:
    """A kfp.Client for `host`; an unreachable or wrong host raises PipelineError naming it."""
    import kfp

    if not host:
        raise PipelineError(f"no Kubeflow Pipelines host given; {HOST_HINT}")
    # urllib3 logs a warning per retry and kfp.Client a full traceback per failed healthz attempt (on the
    # root logger): both would bury the one-line error, so they are held back while connecting.
    swallow = _Swallow()
    loggers = (logging.getLogger("urllib3.connectionpool"), logging.getLogger())
    for logger in loggers:
        logger.addFilter(swallow)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2..."
            return kfp.Client(host=host)
    except Exception as exc:  # noqa: BLE001 - urllib3, kfp_server_api and ValueError all mean "cannot use host"
        raise PipelineError(
            f"cannot reach Kubeflow Pipelines at {host} ({_reason(swallow.last or exc)}); {HOST_HINT}"
        ) from None
    finally:
        for logger in loggers:
            logger.removeFilter(swallow)


class _Swallow(logging.Filter):
    """Drops every record; keeps the exception of the last one that carried one (the real cause)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            self.last = record.exc_info[1]
        return False


def _reason(exc: Exception) -> str:
    """The short cause of a connection failure, e.g. 'Connection refused'."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):  # an HTTP server answered, but not with the KFP API
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''} from its healthz endpoint: not the KFP API?"
    text = str(getattr(exc, "reason", None) or exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"'()]+)", text)
    if found:
        return found.group(1).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def check_data_rev(data_repo: str, data_rev: str) -> None:
    """Refuse a DVC data repository without a pinned revision (tag or commit); the KFP cache keys on it."""
    if data_repo and data_rev.strip().lower() in MOVING_REVS:
        named = f"'{data_rev}'" if data_rev else "no --data-rev"
        raise PipelineError(
            f"data repository {redact_uri(data_repo)} with {named}: pin --data-rev to a tag or commit (a "
            "branch moves, and the cached preprocess step would keep serving the data it first fetched)"
        )


@dataclass(frozen=True)
class Upload:
    """What a run or a recurring run is created from: the connected client, the compiled package and the
    pipeline's arguments."""

    client: Any
    package: Path
    arguments: dict[str, Any]


@contextlib.contextmanager
def upload(
    *,
    host: str,
    image: str,
    params_path: str | Path,
    settings: ClusterSettings | None,
    overrides: dict[str, Any] | None,
    refused: str,
) -> Iterator[Upload]:
    """Check the image and the data revision, connect to `host` and compile into a temporary package.

    Arguments come from params.yaml plus `overrides`. An OpenApiException raised inside the block (e.g.
    401/403 for auth, 400 for a parameter the server rejects) becomes one PipelineError line saying the
    server refused the `refused` thing ("run", "recurring run")."""
    check_image(image)
    arguments = {**pipeline_arguments(params_path), **(overrides or {})}
    check_data_rev(str(arguments.get("data_repo", "")), str(arguments.get("data_rev", "")))
    client = connect(host)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(
            image=image, out=Path(tmp) / "spherereid.yaml", params_path=params_path, settings=settings
        )
        try:
            yield Upload(client, package, arguments)
        except OpenApiException as exc:
            status = getattr(exc, "status", "")
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
            raise PipelineError(
                f"Kubeflow Pipelines at {host} refused the {refused}: {status} {reason}".strip()
            ) from None


def submit(
    *,
    host: str,
    image: str,
    params_path: str | Path = "params.yaml",
    settings: ClusterSettings | None = None,
    experiment: str = "spherereid",
    run_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    enable_caching: bool | None = None,
) -> str:
    """Compile for `image`, upload and start a run; returns the run id. Arguments come from params.yaml."""
    given = upload(
        host=host, image=image, params_path=params_path, settings=settings, overrides=overrides, refused="run"
    )
    with given as up:
        run = up.client.create_run_from_pipeline_package(
            str(up.package),
            arguments=up.arguments,
            run_name=run_name,
            experiment_name=experiment,
            enable_caching=enable_caching,
        )
    return run.run_id
