"""Copying a train stage's output into a KFP Model artifact. The file names themselves live in
spherereid/contracts.py (the stage contract of DEVELOPERS.md)."""

import shutil
from pathlib import Path

from ..contracts import (
    CHECKPOINTS_DIR,
    RUN_FILE,  # noqa: F401 - re-exported: the train component stays under 25 lines
    TRAIN_LOCK_FILE,
)


def copy_train_output(train_dir: Path, dest: Path) -> None:
    """Copy a train stage's output folder into `dest` without its resume state (CHECKPOINTS_DIR) and lock."""
    ignore = shutil.ignore_patterns(CHECKPOINTS_DIR, TRAIN_LOCK_FILE)
    shutil.copytree(train_dir, dest, ignore=ignore, dirs_exist_ok=True)
