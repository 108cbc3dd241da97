"""The model card's cross-dataset section: hand-worked rows and gaps, and replacement without duplication."""

from spherereid.reporting.cross_card import HEADING, cross_section, with_cross_section

RESULTS = {
    "synthetic_b": {"rank1": 0.5, "mAP": 0.25, "mAP_official": 0.24, "mINP": 0.05},
    "synthetic": {"rank1": 0.9, "mAP": 0.8, "mAP_official": 0.79, "mINP": 0.5},
}


def test_rows_put_the_own_set_first_and_give_the_gap_in_points():
    text = cross_section("synthetic", RESULTS)
    rows = [line for line in text.splitlines() if line.startswith("| synthetic")]
    assert rows == [
        "| synthetic (own) | 90.00% | 80.00% | 79.00% | 50.00% |  |  |",
        # gaps: 90 - 50 = 40 points of rank-1, 80 - 25 = 55 points of mAP
        "| synthetic_b | 50.00% | 25.00% | 24.00% | 5.00% | +40.00 | +55.00 |",
    ]


def test_the_section_is_appended_once_then_replaced_in_place():
    card = "# model v1\n\n## Evaluation\n\nrank-1 0.9\n\n## Serving\n\ncurl ...\n"
    once = with_cross_section(card, cross_section("synthetic", RESULTS))
    assert once.startswith(card.rstrip("\n")) and once.count(HEADING) == 1
    changed = {**RESULTS, "synthetic_b": {**RESULTS["synthetic_b"], "rank1": 0.6}}
    twice = with_cross_section(once, cross_section("synthetic", changed))
    assert twice.count(HEADING) == 1 and "| synthetic_b | 60.00% |" in twice
    assert "| synthetic_b | 50.00%" not in twice
    # a section in the middle keeps what follows it
    middle = with_cross_section(card.replace("## Serving", HEADING + "\n\nold\n\n## Serving"), "NEW\n")
    assert "old" not in middle and middle.endswith("NEW\n\n## Serving\n\ncurl ...\n")
