"""Shared set-up for the KFP glue tests: `components` and `pipeline` live at the repo root (not installed)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
