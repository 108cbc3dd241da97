"""The formats a trained network is saved in: one writer and one reader each, their keys named below.
No other module spells these keys (tests/unit/test_saved_model.py scans for them).

model.pt, the train stage's output (evaluate, register, export and search read it):
    `torch.save` of {CONSTRUCTOR_KEY: ReIDNet's keyword arguments, STATE_DICT_KEY: its CPU weights,
    NUM_CLASSES_KEY: the training identities}, written atomically (checkpoint.save_atomic) and read with
    `torch.load(weights_only=True)` (checkpoint.load): `save_model` / `load_model`.

The logged pyfunc's artifacts (deploy/pyfunc_flavor logs them; serving, export and search read them):
    CONFIG_ARTIFACT -> config.json {CONSTRUCTOR_KEY, EMBEDDING_DIM_KEY, CHAIN_KEY: the evaluated
    ImageChain, WEIGHTS_SHA_KEY: the sha256 of the weights file}, WEIGHTS_ARTIFACT -> weights.pt (a
    state_dict): `write_pyfunc_artifacts` / `load_pyfunc`. The reader refuses weights that do not hash to
    the recorded sha256 (WeightsMismatch, naming the file and both hashes): the record travels with the
    model, because a loading server cannot reach the run. Older versions still load: those logged before
    the sha256 was recorded load unverified with a warning; those logged before the chain was recorded
    give their input size as LEGACY_HEIGHT_KEY / LEGACY_WIDTH_KEY (no chain: not servable, but export and
    search take the chain from a params file).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..contracts import MODEL_FILE
from ..data.image_chain import ImageChain
from ..modeling.net import ReIDNet
from . import checkpoint

log = logging.getLogger(__name__)

# model.pt
CONSTRUCTOR_KEY = "constructor"  # ReIDNet keyword arguments (also in the pyfunc's config.json)
STATE_DICT_KEY = "state_dict"
NUM_CLASSES_KEY = "num_classes"
MODEL_REQUIRED = (CONSTRUCTOR_KEY, STATE_DICT_KEY)  # what rebuilding the network needs

# the logged pyfunc: its two artifacts (MLflow's artifact names -> files) and config.json's keys
CONFIG_ARTIFACT = "config"
WEIGHTS_ARTIFACT = "weights"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
EMBEDDING_DIM_KEY = "embedding_dim"
CHAIN_KEY = "chain"
WEIGHTS_SHA_KEY = "weights_sha256"
LEGACY_HEIGHT_KEY, LEGACY_WIDTH_KEY = "height", "width"  # the input size, before the chain was recorded

MODEL_FIX = f"give the {MODEL_FILE} the train stage wrote (not a checkpoint), or train again"
PYFUNC_FIX = "register it again from its model.pt"


class SavedModelError(checkpoint.CheckpointError):
    """A saved model misses part of its format: the message names the file and the fix."""


class WeightsMismatch(SavedModelError):
    """The weights file in the artifact store is not the one logged (altered or damaged)."""


def save_model(net: ReIDNet, num_classes: int, path: str | Path) -> None:
    """Write model.pt at `path` (atomically): `net`'s constructor arguments, its weights (`net` is moved
    to the CPU first, as `Module.cpu` does) and the number of training identities."""
    net = net.cpu()
    saved = {
        CONSTRUCTOR_KEY: dict(net.constructor_args),
        STATE_DICT_KEY: net.state_dict(),
        NUM_CLASSES_KEY: num_classes,
    }
    checkpoint.save_atomic(saved, path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ReIDNet:
    """model.pt -> the ReIDNet it holds, on `device`, in eval mode. SavedModelError when the file is not a
    model.pt (e.g. a checkpoint); CheckpointCorrupt when it cannot be read."""
    saved = checkpoint.load(path)
    _require(saved, MODEL_REQUIRED, f"{path}: not a train-stage model file", MODEL_FIX)
    return ReIDNet.from_saved(saved[CONSTRUCTOR_KEY], saved[STATE_DICT_KEY]).to(device)


@dataclass(frozen=True)
class LoggedPyfunc:
    """A logged pyfunc's network, rebuilt from its artifacts."""

    net: ReIDNet  # on the CPU, in eval mode
    config: Path
    weights: Path
    embedding_dim: int
    chain: ImageChain | None  # None: logged before the chain was recorded
    input_size: tuple[int, int]  # (height, width) of the network input

    def served_chain(self) -> ImageChain:
        """The chain to serve with; SavedModelError for a version logged before the chain was recorded."""
        if self.chain is None:
            raise SavedModelError(
                f"{self.config}: no '{CHAIN_KEY}' (logged before the evaluated chain was recorded), so "
                f"it cannot be served as evaluated; {PYFUNC_FIX}"
            )
        return self.chain


def write_pyfunc_artifacts(
    net: ReIDNet, embedding_dim: int, chain: ImageChain, folder: Path
) -> dict[str, str]:
    """Write the pyfunc's weights.pt and config.json (with the weights' sha256) into `folder`; returns the
    artifacts mapping `mlflow.pyfunc.log_model` takes (artifact name -> file)."""
    config_path, weights_path = Path(folder) / CONFIG_FILE, Path(folder) / WEIGHTS_FILE
    torch.save(net.state_dict(), weights_path)
    config = {
        CONSTRUCTOR_KEY: dict(net.constructor_args),
        EMBEDDING_DIM_KEY: embedding_dim,
        CHAIN_KEY: chain.to_dict(),
        WEIGHTS_SHA_KEY: checkpoint.file_sha256(weights_path),
    }
    config_path.write_text(json.dumps(config, indent=2))
    return {CONFIG_ARTIFACT: str(config_path), WEIGHTS_ARTIFACT: str(weights_path)}


def load_pyfunc(artifacts: Mapping[str, str | Path], what: str) -> LoggedPyfunc:
    """A logged pyfunc's artifacts (artifact name -> local file) -> its network, chain and input size.
    `what` names the model in errors. The weights must hash to the sha256 recorded in config.json
    (WeightsMismatch); SavedModelError when an artifact or a key of config.json is missing."""
    missing = [name for name in (CONFIG_ARTIFACT, WEIGHTS_ARTIFACT) if name not in artifacts]
    if missing:
        raise SavedModelError(
            f"{what}: not a SphereReID pyfunc model (artifacts: {sorted(artifacts)}, no "
            f"{', '.join(missing)}); {PYFUNC_FIX}"
        )
    config_path, weights_path = Path(artifacts[CONFIG_ARTIFACT]), Path(artifacts[WEIGHTS_ARTIFACT])
    config = _read_config(config_path)
    _verify_weights(weights_path, config)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    net = ReIDNet.from_saved(config[CONSTRUCTOR_KEY], state)
    chain = ImageChain.from_dict(config[CHAIN_KEY]) if isinstance(config.get(CHAIN_KEY), dict) else None
    legacy_size = (int(config.get(LEGACY_HEIGHT_KEY, 0)), int(config.get(LEGACY_WIDTH_KEY, 0)))
    input_size = chain.input_size if chain else legacy_size
    return LoggedPyfunc(net, config_path, weights_path, int(config[EMBEDDING_DIM_KEY]), chain, input_size)


def _read_config(path: Path) -> dict[str, Any]:
    """config.json with the keys the reader needs: the chain's, or the input size of older versions."""
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise SavedModelError(f"{path}: not valid JSON ({exc}); {PYFUNC_FIX}") from None
    if not isinstance(config, dict):
        raise SavedModelError(f"{path}: expected a JSON object, found {type(config).__name__}; {PYFUNC_FIX}")
    legacy_size = LEGACY_HEIGHT_KEY in config and LEGACY_WIDTH_KEY in config  # before the chain was
    required = [CONSTRUCTOR_KEY, EMBEDDING_DIM_KEY]  # recorded: the input size instead of a chain
    if not isinstance(config.get(CHAIN_KEY), dict) and not legacy_size:
        required.append(CHAIN_KEY)
    _require(config, required, f"{path}: not a SphereReID pyfunc config", PYFUNC_FIX)
    return config


def _require(saved: Mapping[str, Any], keys: Sequence[str], what: str, fix: str) -> None:
    missing = [key for key in keys if key not in saved]
    if missing:
        raise SavedModelError(f"{what} (no {', '.join(missing)}); {fix}")


def _verify_weights(path: Path, config: Mapping[str, Any]) -> None:
    """WeightsMismatch when `path` does not hash to config[WEIGHTS_SHA_KEY]; a warning without a record."""
    expected = config.get(WEIGHTS_SHA_KEY)
    if not expected:
        log.warning(
            "%s: the model was logged without a weights sha256 (before it was recorded); "
            "the weights are loaded unverified",
            path,
        )
        return
    actual = checkpoint.file_sha256(path)
    if actual != expected:
        raise WeightsMismatch(
            f"{path}: sha256 {actual} differs from {expected} recorded in {CONFIG_FILE} when the model "
            f"was logged; the weights file was altered or damaged in the artifact store, so the model "
            f"is not loaded ({PYFUNC_FIX})"
        )
