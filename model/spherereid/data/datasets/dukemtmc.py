"""DukeMTMC-reID (Zheng et al., ICCV 2017): 702 train / 1,110 test identities, 8 cameras.

Accepted layouts: `<root>/{bounding_box_train,bounding_box_test,query}`, `<root>/DukeMTMC-reID/...`,
`<root>/dukemtmc-reid/DukeMTMC-reID/...`, or the release zip `DukeMTMC-reID.zip` (extracted safely into
`work_dir` once). Names `PPPP_cC_fFFFFFFF.jpg` are parsed from the basename; camera must be c1..c8 and
pid 0..9999 (else Skipped). The release has no junk ids (a pid -1 file would be dropped and counted in
`protocol["junk_dropped"]`); its 408 distractor identities are ordinary pids in the gallery.
The dataset was withdrawn by its authors in 2019: no downloader is provided.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .base import Splits
from .naming import NameRules, parse_market_style
from .registry import register

log = logging.getLogger(__name__)
NOTICE = (
    "DukeMTMC-reID was withdrawn by its authors (2019); MSMT17 (dataset 'msmt17') is the usual replacement"
)
RULES = NameRules(dataset="DukeMTMC-reID", max_cam=8, min_pid=0, max_pid=9999)
SUBDIRS = ["DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmc-reid"]
ARCHIVES = ["DukeMTMC-reID.zip"]


@register("dukemtmc")
def parse(root: Path, work_dir: Path) -> Splits:
    """Parse a DukeMTMC-reID release (folder or zip) into raw-pid train / query / gallery items."""
    log.warning(NOTICE)
    return parse_market_style(root, work_dir, RULES, SUBDIRS, ARCHIVES)
