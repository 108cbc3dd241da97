"""What the two logged flavours (pyfunc_flavor, onnx_flavor) share: the pinned pip requirements, the
LoggedModel's name, and logging a model into its training run once per model file and chain (a pair of
run tags records it) without copying the run's training metrics onto it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..tracking import runs
from ..tracking.client import client, using_tracking_uri, with_retries
from ..tracking.runs import RunRef

log = logging.getLogger(__name__)


def pip_pins(packages: tuple[str, ...] = ("torch", "torchvision", "numpy", "mlflow")) -> list[str]:
    """`pkg==version` of each installed package (local version suffixes dropped): a logged model's
    pip_requirements, given explicitly because inferring them takes seconds."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in packages:
        try:
            pins.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:  # pragma: no cover
            continue
    return pins


def log_once(
    ref: RunRef, key: str, *, uri_tag: str, key_tag: str, what: str, log_model: Callable[[], str]
) -> str:
    """The model URI in run tag `uri_tag` when tag `key_tag` already holds `key` (model.pt + chain);
    otherwise `log_model()` (with retries), whose URI is then recorded in both tags."""
    tags = runs.get_run_tags(ref)
    if tags.get(key_tag) == key and tags.get(uri_tag):
        log.info("%s already logged for run %s: %s", what, ref.run_id, tags[uri_tag])
        return tags[uri_tag]
    uri = with_retries(log_model, what=f"log {what}", uri=ref.tracking_uri)
    runs.set_tags(ref, {uri_tag: uri, key_tag: key})
    return uri


def logged_model_name(dataset: str, constructor: Mapping[str, Any], suffix: str = "") -> str:
    """The LoggedModel's name in MLflow's Models view: `spherereid-<dataset>-<backbone>-<head>[-suffix]`."""
    name = f"spherereid-{dataset}-{constructor['backbone']}-{constructor['head']}"
    return f"{name}-{suffix}" if suffix else name


def log_as_run_output(ref: RunRef, name: str, log_model: Callable[[str], Any]) -> str:
    """Create the LoggedModel `name` from run `ref`, fill it with `log_model(model_id)` (a flavour's
    log_model called with that `model_id` outside any active run) and record it as the run's output.

    Logging inside the run (`mlflow.start_run(run_id=...)`) would copy every run metric of step 0 onto
    the model (the first epoch's loss, the learning rate, system metrics); the model carries only the
    evaluation metrics that register logs on it (tracking.logged_model)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput

    c = client(ref.tracking_uri)
    with using_tracking_uri(ref.tracking_uri):
        model = mlflow.initialize_logged_model(
            name=name, source_run_id=ref.run_id, experiment_id=ref.experiment_id
        )
        info = log_model(model.model_id)
    c.log_outputs(ref.run_id, models=[LoggedModelOutput(model.model_id, step=0)])
    return str(info.model_uri)
