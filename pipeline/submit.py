"""Compile and submit one run to a Kubeflow Pipelines API (kfp.Client)."""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from kfp_server_api.exceptions import OpenApiException

from .compile import check_image, compile_pipeline
from .settings import ClusterSettings, PipelineError, pipeline_arguments

HOST_HINT = (
    "pass --host (or set KFP_HOST), e.g. http://localhost:8080 after `kubectl port-forward` to ml-pipeline-ui"
)


def connect(host: str) -> Any:
    """A kfp.Client for `host`; an unreachable or wrong host raises PipelineError naming it."""
    import kfp

    if not host:
        raise PipelineError(f"no Kubeflow Pipelines host given; {HOST_HINT}")
    pool_log = logging.getLogger("urllib3.connectionpool")
    pool_log.addFilter(_drop)  # its per-retry warnings would bury the one-line error (kfp resets levels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "This client only works with KFP v2..."
            return kfp.Client(host=host)
    except Exception as exc:  # noqa: BLE001 - urllib3, kfp_server_api and ValueError all mean "cannot use host"
        raise PipelineError(
            f"cannot reach Kubeflow Pipelines at {host} ({_reason(exc)}); {HOST_HINT}"
        ) from None
    finally:
        pool_log.removeFilter(_drop)


def _drop(record: logging.LogRecord) -> bool:
    return False


def _reason(exc: Exception) -> str:
    """The short cause of a connection failure, e.g. 'Connection refused'."""
    text = str(getattr(exc, "reason", None) or exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"'()]+)", text)
    if found:
        return found.group(1).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


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
    check_image(image)
    arguments = {**pipeline_arguments(params_path), **(overrides or {})}
    client = connect(host)
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(
            image=image, out=Path(tmp) / "spherereid.yaml", params_path=params_path, settings=settings
        )
        try:
            run = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=run_name,
                experiment_name=experiment,
                enable_caching=enable_caching,
            )
        except OpenApiException as exc:  # e.g. 401/403 (auth), 400 (a parameter the server rejects)
            status = getattr(exc, "status", "")
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
            raise PipelineError(
                f"Kubeflow Pipelines at {host} refused the run: {status} {reason}".strip()
            ) from None
    return run.run_id
