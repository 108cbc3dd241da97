"""reporting.summary: the metrics it shows come from the one list of reported keys, in that order."""

from spherereid.evaluation.results import REPORTED_KEYS
from spherereid.reporting.summary import LABELS, SHOWN


def test_every_labelled_metric_is_a_reported_key_shown_in_the_reported_order():
    assert set(LABELS) <= set(REPORTED_KEYS)
    assert [key for _, key in SHOWN] == ["rank1", "rank5", "mAP", "mAP_official", "mINP"]
