"""Resolve the `--model` of export and search to a network plus the preprocessing chain it was evaluated with.

Accepted forms:
  models:/NAME@ALIAS     a registered version by alias (e.g. models:/spherereid-synthetic@champion)
  models:/NAME/VERSION   a registered version by number
  VERSION                a version number, with `name=` (--name)
  path/to/model.pt       a train-stage model file, with its params file (for the chain)

A registered model's chain comes from its config artifact (the chain the evaluate stage measured) when it
holds one, else from the params file; a local model.pt always takes it from the params file
(data.stored_*, transform.crop_*, mean/std, evaluate.flip). `key` identifies weights and chain together:
a gallery index built with another key is rebuilt.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Params, load_params
from ..data.image_chain import ImageChain, model_key
from ..device import effective_precision
from ..modeling.net import ReIDNet
from ..redaction import redact_uri
from ..training import saved_model

log = logging.getLogger(__name__)

REGISTRY_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelSourceError(ValueError):
    """`--model` cannot be resolved; the message names the form and the fix."""


@dataclass(frozen=True)
class ResolvedModel:
    """A network in eval mode, its ImageChain, a label for people and a key for caches."""

    net: ReIDNet
    chain: ImageChain
    label: str
    key: str
    name: str | None = None
    version: int | None = None


def chain_from_params(params: Params) -> ImageChain:
    """The evaluate stage's chain from a params file's sections (evaluate.precision resolved on the CPU)."""
    stored_size = (params.data.stored_height, params.data.stored_width)
    precision = effective_precision(params.evaluate.precision, torch.device("cpu"))
    return ImageChain.from_config(stored_size, params.transform, params.evaluate.flip, precision)


def _params_chain(params_path: Path | None) -> ImageChain:
    path = Path(params_path or "params.yaml")
    if not path.is_file():
        raise ModelSourceError(f"{path}: params file not found; pass --params with the model's params.yaml")
    return chain_from_params(load_params(path))


def resolve_model(
    spec: str, *, name: str | None = None, params: Path | None = None, tracking_uri: str | None = None
) -> ResolvedModel:
    """`spec` (see the module doc) -> ResolvedModel; ModelSourceError when it cannot be resolved."""
    spec = str(spec).strip()
    match = REGISTRY_RE.match(spec)
    if match:
        return _registered(match["name"], match["alias"], match["version"], params, tracking_uri)
    if spec.isdigit():
        if not name:
            raise ModelSourceError(f"--model {spec} is a version number: also pass --name REGISTERED_NAME")
        return _registered(name, None, spec, params, tracking_uri)
    if spec.startswith("models:/"):
        raise ModelSourceError(f"--model {spec}: use models:/NAME@ALIAS or models:/NAME/VERSION")
    return _local(Path(spec), params)


def _local(model_pt: Path, params: Path | None) -> ResolvedModel:
    if not model_pt.is_file():
        raise ModelSourceError(
            f"--model {model_pt}: no such file; give models:/NAME@ALIAS, models:/NAME/VERSION, "
            "a version number with --name, or a train-stage model.pt"
        )
    net = saved_model.load_model(model_pt)
    chain = _params_chain(params)
    return ResolvedModel(net, chain, str(model_pt), model_key(model_pt, chain))


def _registered(
    name: str, alias: str | None, version: str | None, params: Path | None, uri: str | None
) -> ResolvedModel:
    from mlflow.exceptions import MlflowException

    from ..tracking import client as connection

    uri = uri or connection.tracking_uri()
    client = connection.client(uri)
    what = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        if connection.is_connection_error(exc):
            raise
        raise ModelSourceError(
            f"{what}: not found in the registry at {redact_uri(uri)} ({exc.error_code})"
        ) from None
    with tempfile.TemporaryDirectory(prefix="spherereid-model-") as tmp:
        local = _download(mv.source, Path(tmp), uri)
        net, weights, input_size, chain = _load_pyfunc(local, what)
        if chain is None:
            chain = _params_chain(params)
            if chain.input_size != input_size:
                raise ModelSourceError(
                    f"{what}: input size {input_size} differs from the params file's transform.crop_* "
                    f"{chain.input_size}; pass --params with the model's params.yaml"
                )
        key = model_key(weights, chain)  # while the downloaded weights file exists
    label = f"models:/{name}/{mv.version}"
    log.info("resolved %s to %s", what, label)
    return ResolvedModel(net, chain, label, key, name, int(mv.version))


def _download(source: str, dst: Path, uri: str) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=uri))


def _load_pyfunc(local: Path, what: str) -> tuple[ReIDNet, Path, tuple[int, int], ImageChain | None]:
    """Rebuild the network of a logged ReID pyfunc -> (net, its weights file, input size, chain or None)."""
    from mlflow.models import Model

    artifacts = Model.load(str(local)).flavors.get("python_function", {}).get("artifacts", {})
    paths = {k: local / v["path"] for k, v in artifacts.items() if isinstance(v, dict) and "path" in v}
    saved = saved_model.load_pyfunc(paths, what)  # WeightsMismatch: not the weights that were logged
    return saved.net, saved.weights, saved.input_size, saved.chain
