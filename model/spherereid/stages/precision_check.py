"""The cost of the extraction precision: rank-1 and mAP of the evaluated chain against fp32 features.

When the evaluated chain runs the network in bf16 (evaluate.precision auto on a GPU or a native-bf16
CPU), the evaluate stage extracts the same query and gallery once more in fp32 and ranks them under the
same protocol; precision_check.json holds both figures and their difference (precision - fp32). The
chain's own figures are the ranking evaluate already made (metrics.json's), never ranked a second time.
For an fp32 chain the file holds the evaluated figures twice, difference 0, without a second extraction
or ranking. metrics.json is untouched: it is the evaluated chain's alone. A combined set is checked on
its headline source.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import EvaluateConfig
from ..data.image_chain import ImageChain
from ..data.manifest import SplitData
from ..evaluation.measure import protocol_name, rank_under_protocol

log = logging.getLogger(__name__)

CHECKED_KEYS = ("rank1", "mAP")
REFERENCE = "fp32"


@dataclasses.dataclass(frozen=True)
class CheckedSet:
    """The rows checked (the set, or a combined set's headline source): their protocol and splits, and
    `ranked`, evaluate's ranking of them at the chain's precision (``RankingResult.to_dict()``)."""

    protocol: dict[str, Any]
    query: SplitData
    gallery: SplitData
    source: str
    ranked: Mapping[str, Any]


def _figures(ranked: Mapping[str, Any]) -> dict[str, float]:
    """rank-1 and mAP of a ranking (``RankingResult.to_dict()``)."""
    return {key: float(ranked[key]) for key in CHECKED_KEYS}


def precision_check(
    checked: CheckedSet,
    chain: ImageChain,
    evaluate: EvaluateConfig,
    extract_fp32: Callable[[ImageChain], tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """{"precision", <precision>: {rank1, mAP}, "fp32": {...}, "difference": {...}, "protocol", "source"}.

    The chain's figures are `checked.ranked`'s. `extract_fp32(chain)` -> (qf, gf) extracts the checked
    rows through `chain` (an fp32 copy of the evaluated one); it is called, and its features ranked under
    the checked protocol, only when the chain's precision is not fp32."""
    measured = _figures(checked.ranked)
    if chain.precision == REFERENCE:
        reference = dict(measured)
    else:
        qf32, gf32 = extract_fp32(dataclasses.replace(chain, precision=REFERENCE))
        fp32 = rank_under_protocol(checked.protocol, qf32, gf32, checked.query, checked.gallery, evaluate)
        reference = _figures(fp32.to_dict())
    return {
        "precision": chain.precision,
        chain.precision: measured,
        REFERENCE: reference,
        "difference": {key: measured[key] - reference[key] for key in CHECKED_KEYS},
        "protocol": protocol_name(checked.protocol),
        "source": checked.source,
    }


def write_precision_check(path: Path, result: dict[str, Any]) -> None:
    """precision_check.json (DVC metrics file, read by the register stage's model card)."""
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def read_precision_check(path: Path) -> dict[str, Any] | None:
    """The file's contents, or None when it is absent or unreadable (evaluations before it existed)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable (%s); the model card leaves the precision check out", path, exc)
        return None
    if isinstance(raw, dict) and REFERENCE in raw and raw.get("precision") in raw:
        return raw
    log.warning("%s: not a precision check; the model card leaves it out", path)
    return None
