"""Market-1501 (Zheng et al., ICCV 2015): 751 train / 750 test identities, 6 cameras.

Accepted layouts (first match wins): `<root>/{bounding_box_train,bounding_box_test,query}`,
`<root>/Market-1501-v15.09.15/...`, `<root>/market1501/...`, `<root>/market1501/Market-1501-v15.09.15/...`,
or the official zip (`<root>` itself, or `<root>/Market-1501-v15.09.15.zip`), extracted safely into
`work_dir` once. Names `PPPP_cCsS_FFFFFF_BB.jpg` are parsed from the basename; pid must be in 0..1501
and camera in c1..c6 (else Skipped). Junk images (pid -1) are dropped and counted in
`protocol["junk_dropped"]`; distractors (pid 0) stay in the gallery as negatives. Pids are raw.
The synthetic dataset uses this layout and this parser.
"""

from __future__ import annotations

from pathlib import Path

from .base import Splits
from .naming import NameRules, parse_market_style
from .registry import register

RULES = NameRules(dataset="Market-1501", max_cam=6, min_pid=0, max_pid=1501)
SUBDIRS = ["Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15"]
ARCHIVES = ["Market-1501-v15.09.15.zip", "market1501.zip", "Market-1501.zip"]


@register("market1501")
def parse(root: Path, work_dir: Path) -> Splits:
    """Parse a Market-1501 release (folder or zip) into raw-pid train / query / gallery items."""
    return parse_market_style(root, work_dir, RULES, SUBDIRS, ARCHIVES)
