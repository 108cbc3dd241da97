"""Your own data, laid out like Market-1501.

Layout: `<root>/bounding_box_train/`, `<root>/bounding_box_test/` (the gallery) and `<root>/query/`,
each a flat folder of `.jpg`, `.jpeg` or `.png` images (any case), or a zip / tar archive `<root>`
holding these folders (extracted safely into `work_dir`). File names start `PPPP_cC`: the identity
(non-negative integer, any number of digits), `_c`, and the camera number 1..99, then anything, e.g.
`0042_c3_anything.jpg`, `7_c12.png`. Identity -1 marks junk images (dropped, counted in
`protocol["junk_dropped"]`); identity 0 may be used for distractors (kept in the gallery as negatives).
Names are parsed from the basename only. Evaluation uses the Market protocol: gallery images with the
same identity AND camera as the query are ignored, so every query needs a match in another camera.
"""

from __future__ import annotations

from pathlib import Path

from .base import Splits
from .naming import NameRules, parse_market_style
from .registry import register

RULES = NameRules(dataset="custom (Market-1501 naming)", max_cam=99, min_pid=0, max_pid=10**9)


@register("custom")
def parse(root: Path, work_dir: Path) -> Splits:
    """Parse a custom Market-style folder (or archive) into raw-pid train / query / gallery items."""
    return parse_market_style(root, work_dir, RULES, [], [])
