"""The ablation grid as a DVC experiment queue: one `dvc exp run --queue` command per cell.

    spherereid ablation --dvc-queue [--set train.epochs=5] [--grid head=A,D] | bash   # queue the cells
    dvc queue start -j 1 && dvc queue status                                          # run them
    dvc exp show --only-changed --drop 'rerank.*'                                      # compare

Each command sets the cell's params (`Cell.overrides`) and the `--set` overrides with `-S`, and names the
experiment after the cell (`abl-D-sphere-warmup-balanced`), so `dvc exp show` reads like ablation.md.
DVC runs the whole pipeline (`dvc repro`) per experiment, on params.yaml's datasets.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from ..config import Params
from .grid import Cell


def queue_commands(cells: Sequence[Cell], params: Params, overrides: Mapping[str, str]) -> list[str]:
    """The shell commands queueing each cell, in grid order (a cell's own setting wins over `overrides`)."""
    commands = []
    for cell in cells:
        settings = {**overrides, **{k: str(v) for k, v in cell.overrides(params).items()}}
        flags = " ".join(f"-S {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
        commands.append(f"dvc exp run --queue --name abl-{cell.cell_id} {flags}")
    return commands
