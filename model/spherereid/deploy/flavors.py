"""What the two logged flavours (pyfunc_flavor, onnx_flavor) share: the pinned pip requirements and
logging a model into its training run once per model file and chain (a pair of run tags records it)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..tracking import runs
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
    uri = runs.with_retries(log_model, what=f"log {what}", uri=ref.tracking_uri)
    runs.set_tags(ref, {uri_tag: uri, key_tag: key})
    return uri
