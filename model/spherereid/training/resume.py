"""Exact resume: the resume key (configuration + data + code fingerprint), the training state a checkpoint
holds (with every rank's augmentation stream), and the decision to resume a checkpoint or retire it.

A checkpoint resumes only when it was written with the same key and holds at most the epochs asked for;
otherwise it is moved aside to `<name>.stale` and training starts from scratch. A checkpoint that fails
verification falls back to the previous one (`checkpoint.previous`) with one warning.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import FitConfig, TrainConfig
from ..contracts import CORRUPT_SUFFIX, STALE_SUFFIX
from ..data.sampler import BalancedIdentitySampler, RandomBatchSampler
from ..data.transforms import TrainTransform
from ..modeling.net import ReIDNet
from . import checkpoint, distributed
from .optim import load_optimizer_state
from .step import EpochStats

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
# The code that decides what training computes: a checkpoint written by other code is stale.
FINGERPRINT_SUBPACKAGES = ("data", "modeling", "training")
FINGERPRINT_FILES = ("device.py",)  # the precision policy


def code_fingerprint(package_root: Path | None = None) -> str:
    """sha256 (first 16 hex) of the meaning of every .py file under data/, modeling/ and training/ and of
    device.py: the path and the syntax tree without docstrings, in sorted order. Part of the resume key, so
    changed code (e.g. a new loss) retrains, while comment, docstring and formatting edits still resume.
    `package_root` defaults to the installed `spherereid` folder."""
    root = package_root or Path(__file__).resolve().parents[1]
    paths = [p for sub in FINGERPRINT_SUBPACKAGES for p in sorted((root / sub).rglob("*.py"))]
    paths += [root / name for name in FINGERPRINT_FILES]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(code_meaning(path.read_text(encoding="utf-8"), str(path)).encode() + b"\0")
    return digest.hexdigest()[:16]


def code_meaning(source: str, filename: str = "<source>") -> str:
    """`ast.dump` of `source` (no line numbers) with the docstrings of the module, classes and functions
    removed: equal for two files that differ only in comments, docstrings or layout."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:]
    return ast.dump(tree, include_attributes=False)


def resume_key(
    *, num_classes: int, config: FitConfig, transform: TrainTransform, precision: str, data_fingerprint: str
) -> dict[str, Any]:
    """The `config` a checkpoint stores: a later run resumes it only when its own key is equal. Lists, not
    tuples, so it compares equal to the copy read back from a checkpoint. Its keys are the checkpoint
    format: the sections that decide what is computed (not `train`, whose epochs may grow), the built
    `transform` and `train.seed`."""
    return _plain(
        {
            "num_classes": num_classes,
            "model": dataclasses.asdict(config.model),
            "loss": dataclasses.asdict(config.loss),
            "sampler": dataclasses.asdict(config.sampler),
            "optim": dataclasses.asdict(config.optim),
            "schedule": dataclasses.asdict(config.schedule),
            "transform": {k: v for k, v in vars(transform).items() if k != "normalize"},
            "seed": config.train.seed,
            "precision": precision,
            "data": data_fingerprint,
            "code": code_fingerprint(),
        }
    )


@dataclass
class TrainingParts:
    """The stateful pieces of one training: what a checkpoint saves and a resume restores."""

    model: ReIDNet
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: BalancedIdentitySampler | RandomBatchSampler
    aug_rng: torch.Generator
    scaler: torch.amp.GradScaler | None
    device: torch.device


def rank_generator(seed: int, ctx: distributed.DistContext) -> torch.Generator:
    """The augmentation generator of this rank: seeded with `seed` on rank 0 (a single process draws
    exactly as before) and with an independent stream on every other rank."""
    if ctx.rank == 0:
        return torch.Generator().manual_seed(seed)
    mixed = np.random.SeedSequence([seed & 0xFFFFFFFF, ctx.rank]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(mixed))


def training_state(
    epoch: int,
    parts: TrainingParts,
    history: list[EpochStats],
    config: dict[str, Any],
    ctx: distributed.DistContext,
) -> dict[str, Any]:
    """Everything a resume needs after `epoch` epochs (live tensors: `checkpoint.snapshot` it before an
    asynchronous write). Holds the CPU RNG and, on CUDA, the device's RNG state. With several processes
    every rank's augmentation stream too: a collective, called by every rank."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": parts.model.state_dict(),
        "criterion": parts.criterion.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "sampler": parts.sampler.state_dict(),
        "aug_rng": parts.aug_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [dataclasses.asdict(h) for h in history],
        "config": config,
    }
    if parts.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(parts.device)
    if parts.scaler is not None:
        state["scaler"] = parts.scaler.state_dict()
    if ctx.distributed:  # one process: its stream is state["aug_rng"]
        state["aug_rng_ranks"] = distributed.all_gather(parts.aug_rng.get_state(), ctx)
        state["world_size"] = ctx.world_size
    return state


def resume_or_retire(
    path: Path, config: dict[str, Any], parts: TrainingParts, ctx: distributed.DistContext, train: TrainConfig
) -> tuple[list[EpochStats], int]:
    """(history, epochs done): restore `parts` from the checkpoint at `path` when its key is `config` and it
    holds at most `train.epochs` epochs; otherwise move it (and the previous one) to `<name>.stale` (after
    every rank has read it) and return ([], 0), as with no checkpoint at all. A `path` that fails
    verification falls back to the previous checkpoint (see `load_or_set_aside`;
    `train.on_corrupt_checkpoint`)."""
    if not path.is_file():
        _set_aside_orphan(path, ctx)
        return [], 0
    epochs = train.epochs
    state = load_or_set_aside(path, parts.device, train.on_corrupt_checkpoint, ctx)
    if state is None:
        return [], 0
    same_config = state.get("format") == CHECKPOINT_FORMAT and state.get("config") == config
    if same_config and int(state["epoch"]) > epochs:  # never return a longer-trained model
        _set_aside(path, STALE_SUFFIX, ctx)
        log.warning(
            "%s holds %d epochs but %d were asked; moved to %s.stale, training from scratch",
            path,
            int(state["epoch"]),
            epochs,
            path.name,
        )
        return [], 0
    if not same_config:
        _set_aside(path, STALE_SUFFIX, ctx)
        log.warning(
            "%s was written with another configuration; moved to %s.stale, starting fresh", path, path.name
        )
        return [], 0
    restore(parts, state, ctx)
    log.info("resuming from %s after epoch %d", path, int(state["epoch"]))
    return [EpochStats(**h) for h in state["history"]], int(state["epoch"])


def load_or_set_aside(
    path: Path, device: torch.device, on_corrupt: str, ctx: distributed.DistContext
) -> dict[str, Any] | None:
    """The checkpoint at `path`. When it fails verification (sha256 mismatch, truncated, garbage) and the
    previous checkpoint passes, that one, made `path` again (the damaged file kept as `.corrupt`), with
    one warning. With neither verified: a one-line `CheckpointCorrupt` offering the fix, or with
    `on_corrupt` "restart" both moved to `.corrupt` and None (training starts fresh)."""
    try:
        return checkpoint.load(path, map_location=device)
    except checkpoint.CheckpointCorrupt as exc:
        damaged = str(exc)
    prev = checkpoint.previous(path)
    state, why_not = _load_previous(prev, device)
    if state is not None:
        distributed.barrier(ctx)  # every rank has read both files before rank 0 moves them
        if ctx.is_main:
            aside = checkpoint.promote_previous(path)
            log.warning(
                "%s; resuming from the previous checkpoint %s (epoch %d), the damaged file kept as %s",
                damaged,
                prev.name,
                int(state["epoch"]),
                aside.name,
            )
        return state
    if on_corrupt != "restart":
        raise checkpoint.CheckpointCorrupt(
            f"{damaged}; the previous checkpoint {prev.name} is {why_not}; set "
            "train.on_corrupt_checkpoint: restart in params.yaml to move them aside and train from scratch"
        )
    _set_aside(path, CORRUPT_SUFFIX, ctx)
    log.warning(
        "%s is corrupt (and %s %s); moved to %s.corrupt, training from scratch",
        path,
        prev.name,
        why_not,
        path.name,
    )
    return None


def _load_previous(prev: Path, device: torch.device) -> tuple[dict[str, Any] | None, str]:
    """(the previous checkpoint, "") when it exists with a sidecar that matches; else (None, why not)."""
    if not prev.is_file() or not checkpoint.sidecar(prev).is_file():
        return None, "absent" if not prev.is_file() else "unverifiable (no sidecar)"
    try:
        return checkpoint.load(prev, map_location=device), ""
    except checkpoint.CheckpointCorrupt:
        return None, "damaged too"


def _set_aside(path: Path, suffix: str, ctx: distributed.DistContext) -> None:
    """Rank 0 moves both checkpoint generations aside, after every rank has read them."""
    distributed.barrier(ctx)
    if ctx.is_main:
        checkpoint.set_aside(path, suffix)


def _set_aside_orphan(path: Path, ctx: distributed.DistContext) -> None:
    """No `path` but a previous checkpoint (`path` deleted to start over): that one goes to `.stale`, so a
    later fallback never reaches a checkpoint of another training."""
    if checkpoint.previous(path).is_file():
        _set_aside(path, STALE_SUFFIX, ctx)
        log.warning(
            "%s: no %s beside it; moved to .stale, training from scratch",
            checkpoint.previous(path),
            path.name,
        )


def restore(parts: TrainingParts, state: dict[str, Any], ctx: distributed.DistContext) -> None:
    """Load a checkpoint `state` into `parts`: weights, optimizer (keeping its fused / graph-ready settings),
    schedule, sampler, this rank's augmentation stream and the global RNGs."""
    parts.model.load_state_dict(state["model"])
    parts.criterion.load_state_dict(state["criterion"])
    load_optimizer_state(parts.optimizer, state["optimizer"], parts.device)
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.sampler.load_state_dict(state["sampler"])
    _restore_rank_rng(parts.aug_rng, state, ctx)  # this rank's stream
    torch.set_rng_state(state["torch_rng"].cpu())
    if parts.device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), parts.device)
    if parts.scaler is not None and "scaler" in state:
        parts.scaler.load_state_dict(state["scaler"])


def _restore_rank_rng(
    generator: torch.Generator, state: dict[str, Any], ctx: distributed.DistContext
) -> None:
    """Continue this rank's augmentation stream from a checkpoint. Written by another number of processes:
    the batches are the same (they depend on seed and epoch only), rank 0 continues its stream and the
    other ranks start fresh ones (a warning says so)."""
    saved = state.get("aug_rng_ranks") or [state["aug_rng"]]
    if len(saved) == ctx.world_size:
        generator.set_state(saved[ctx.rank].cpu())  # a checkpoint loaded with map_location=cuda
        return
    if ctx.is_main:
        log.warning(
            "the checkpoint was written by %d processes and training resumes with %d: the same batches, "
            "but augmentation draws differ from an uninterrupted run",
            len(saved),
            ctx.world_size,
        )
        generator.set_state(state["aug_rng"].cpu())


def _plain(value: Any) -> Any:
    """Tuples -> lists recursively, so a config compares equal after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
