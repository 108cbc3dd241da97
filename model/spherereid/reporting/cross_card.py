"""The model card's cross-dataset section: how a registered model scores on every dataset's query/gallery.

The card is the version's description (written at registration, before any cross-evaluation), so the
section is added afterwards: `with_cross_section(card, section)` replaces an earlier section of the same
heading (a rerun never duplicates it) and keeps the rest of the card as it was.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADING = "## Cross-dataset evaluation"
CROSS_METRICS = (("rank1", "rank-1"), ("mAP", "mAP"), ("mAP_official", "mAP (official)"), ("mINP", "mINP"))


def _percent(value: object) -> str:
    try:
        return f"{100 * float(value):.2f}%"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"


def cross_section(trained_on: str, results: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: one row per test set (`results` = {test: {metric: value}}), the model's own set first
    and marked "(own)"; each other row also gives its rank-1 and mAP gap to the own set in points."""
    own = results.get(trained_on, {})
    tests = sorted(results, key=lambda t: (t != trained_on, t))
    header = ("tested on", *(label for _, label in CROSS_METRICS), "rank-1 gap", "mAP gap")
    lines = [
        HEADING,
        "",
        f"Trained on **{trained_on}**; each test set's query/gallery went through this model's evaluated "
        "chain, under that set's protocol. Gap: points below the own set.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for test in tests:
        values = results[test]
        gaps = (
            ["", ""]
            if test == trained_on or not own
            else [f"{100 * (float(own[k]) - float(values[k])):+.2f}" for k in ("rank1", "mAP")]
        )
        name = f"{test} (own)" if test == trained_on else test
        cells = [name, *(_percent(values.get(k)) for k, _ in CROSS_METRICS), *gaps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def with_cross_section(card: str, section: str) -> str:
    """`card` with its cross-dataset section (if any, up to the next `## ` heading) replaced by `section`;
    appended at the end when the card has none."""
    start = card.find(HEADING)
    if start < 0:
        return card.rstrip("\n") + "\n\n" + section
    end = card.find("\n## ", start + len(HEADING))
    rest = "" if end < 0 else card[end + 1 :]
    return card[:start] + section + ("\n" + rest if rest else "")
