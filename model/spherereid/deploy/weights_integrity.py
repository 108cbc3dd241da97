"""The logged model's weights are the ones that were logged: config.json records the sha256 of the
weights file when the pyfunc is logged; loading (serving, export, search) compares the file in the
artifact store with it and refuses a mismatch, naming the file and both hashes.

(The run tag spherereid.model_sha256 identifies model.pt + chain for logging once; it is not the
logged weights file's hash, and a loading server cannot reach the run, so the record travels with the
model.) Models logged before the record existed load with a warning that they were not verified.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..training.checkpoint import file_sha256

log = logging.getLogger(__name__)

WEIGHTS_SHA_KEY = "weights_sha256"  # the key of config.json that records the weights file's sha256


class WeightsMismatch(ValueError):
    """The weights file in the artifact store is not the one logged (altered or damaged)."""


def verify_weights(path: Path, config: Mapping[str, Any]) -> None:
    """WeightsMismatch when `path` does not hash to config[WEIGHTS_SHA_KEY]; a warning without a record."""
    expected = config.get(WEIGHTS_SHA_KEY)
    if not expected:
        log.warning("%s: the model was logged without a weights sha256 (before it was recorded); "
                    "the weights are loaded unverified", path)  # fmt: skip
        return
    actual = file_sha256(Path(path))
    if actual != expected:
        raise WeightsMismatch(
            f"{path}: sha256 {actual} differs from {expected} recorded in config.json when the model "
            "was logged; the weights file was altered or damaged in the artifact store, so the model "
            "is not loaded (register it again from its model.pt)"
        )
