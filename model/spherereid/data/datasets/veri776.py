"""VeRi-776 (Liu et al., ECCV 2016): vehicle ReID, 776 vehicles (576 train / 200 test), 20 cameras.

Layout: `<root>/{image_train,image_query,image_test}/` (image_test is the gallery), or the same under
`<root>/VeRi/`, `<root>/veri/` or `<root>/VeRi-776/`; the release's label files (`name_*.txt`,
`train_label.xml`, ...) are not needed. Names `VVVV_cCCC_FFFFFFFF_N.jpg`, e.g.
`0002_c002_00030600_0.jpg`: vehicle id (1..776), camera c001..c020, frame, index; parsed from the
basename. Bad names, out-of-range ids or cameras, non-images and sub-folders are `Skipped` entries.
Real counts: 37,778 train, 1,678 query, 11,579 gallery images. Evaluation uses the Market protocol:
gallery images of the query's vehicle from the query's camera are ignored; the usual figures are
mAP and rank-1 / rank-5.
"""

from __future__ import annotations

from pathlib import Path

from .base import DatasetError, Item, Skipped, Splits
from .naming import NameRules, require_folder, scan_folder
from .registry import register

RULES = NameRules(dataset="VeRi-776", max_cam=20, min_pid=1, max_pid=776)
SUBDIRS = ["", "VeRi", "veri", "VeRi-776"]
FOLDERS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}


def locate(root: Path) -> Path:
    """The folder holding image_train/, image_query/ and image_test/; DatasetError naming where it looked."""
    require_folder(root, "image_train/, image_query/ and image_test/")
    for sub in SUBDIRS:
        folder = root / sub if sub else root
        if all((folder / name).is_dir() for name in FOLDERS.values()):
            return folder
    where = ", ".join(str(root / s) if s else str(root) for s in SUBDIRS)
    raise DatasetError(
        f"{root}: no folder with image_train/, image_query/ and image_test/ (looked in {where}); "
        "point the raw data path at the extracted VeRi release"
    )


@register("veri776")
def parse(root: Path, work_dir: Path) -> Splits:
    """Parse a VeRi-776 release into raw-id train / query / gallery items."""
    root = Path(root)
    folder = locate(root)
    splits: dict[str, list[Item]] = {}
    skipped: list[Skipped] = []
    junk_total = 0
    for split, name in FOLDERS.items():
        items, skip, junk = scan_folder(folder / name, root, RULES)
        if not items:
            raise DatasetError(
                f"{folder / name}: no usable images for the {split} split ({len(skip)} skipped); "
                "expected VeRi-776 names like 0002_c002_00030600_0.jpg"
            )
        splits[split], junk_total = items, junk_total + junk
        skipped += skip
    return Splits(
        splits["train"],
        splits["query"],
        splits["gallery"],
        skipped,
        {"name": "market", "junk_dropped": junk_total},
    )
