"""Artifacts gathered from a fan-out, matched by their "dataset" metadata (never by list position)."""

from __future__ import annotations

import pytest

from spherereid.stages.collected import CollectedError, by_dataset, link_datasets, pick


def test_by_dataset_maps_names_to_paths_whatever_the_order(tmp_path):
    items = [(tmp_path / "x2", {"dataset": "b"}), (tmp_path / "x1", {"dataset": "a", "origin": "local"})]
    assert by_dataset(items, "prepared") == {"a": tmp_path / "x1", "b": tmp_path / "x2"}
    assert pick(items, "b", "prepared") == tmp_path / "x2"
    assert pick(list(reversed(items)), "b", "prepared") == tmp_path / "x2"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("/p/1", {})], "/p/1: this trained artifact has no 'dataset' metadata"),
        ([("/p/1", {"dataset": ""})], "/p/1: this trained artifact has no 'dataset' metadata"),
        ([("/p/1", {"dataset": "a"}), ("/p/2", {"dataset": "a"})], "/p/1 and /p/2 both say dataset 'a'"),
    ],
)
def test_an_unmatchable_list_is_an_error_naming_the_artifact(items, message):
    with pytest.raises(CollectedError, match=message):
        by_dataset(items, "trained")


def test_pick_names_the_missing_dataset_and_those_collected():
    with pytest.raises(CollectedError, match=r"no trained artifact of dataset 'c' among those .* \(a, b\)"):
        pick([("/p/1", {"dataset": "b"}), ("/p/2", {"dataset": "a"})], "c", "trained")


def test_link_datasets_makes_the_prepared_root_layout(tmp_path):
    for name in ("x1", "x2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(name)
    root = link_datasets({"a": tmp_path / "x2", "b": tmp_path / "x1"}, tmp_path / "root")
    assert (root / "a" / "dataset.json").read_text() == "x2"
    assert (root / "b" / "dataset.json").read_text() == "x1"
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]
