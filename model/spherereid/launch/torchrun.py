"""Several training processes on this machine or pod: `torchrun --standalone --nproc-per-node N -m ...`."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)

TRAIN_MODULE = "spherereid.stages.train"


class LaunchError(RuntimeError):
    """A launched training failed or cannot start; the message says why and what to check."""


def torchrun_argv(
    nproc_per_node: int, module: str, args: Sequence[str], *, python: str = sys.executable
) -> list[str]:
    """argv of a single-node torchrun (rendezvous on a free local port) running `python -m module args`."""
    if nproc_per_node < 1:
        raise LaunchError(f"need at least one process per node, got {nproc_per_node}; check gpus_per_node")
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc_per_node}",
        "-m",
        module,
        *map(str, args),
    ]


def run_torchrun(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run torchrun; its output goes to this process's stdout/stderr. A failed worker stops all workers
    (torchrun's own behaviour) and raises LaunchError with torchrun's exit code."""
    log.info("starting %s", " ".join(argv))
    code = subprocess.call(list(argv), env=env)
    if code != 0:
        raise LaunchError(
            f"distributed training exited with code {code} (the failing rank's error is in the log above); "
            "run the same task again to resume from the last checkpoint"
        )
