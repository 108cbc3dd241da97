"""The dataset registry: one module registers a dataset; options come from the `data` section."""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fixture builders
from fixtures.market import write_tree  # noqa: E402

from spherereid.config import DataConfig  # noqa: E402
from spherereid.data import datasets  # noqa: E402
from spherereid.data.datasets import DatasetError, Item, Splits, registry  # noqa: E402
from spherereid.data.datasets.msmt17 import Msmt17Options  # noqa: E402
from spherereid.stages import preprocess  # noqa: E402
from spherereid.stages import raw_source as raw_source_module  # noqa: E402

RAW_SOURCE = Path(raw_source_module.__file__)


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test are dropped afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@dataclass(frozen=True)
class ToyOptions:
    pattern: str = ""
    train_with_val: bool = True


def _toy_parser(seen: list[ToyOptions]):
    def parse(root: Path, work_dir: Path, *, pattern: str = "", train_with_val: bool = True) -> Splits:
        seen.append(ToyOptions(pattern, train_with_val))
        images = sorted(Path(root).glob("*.jpg"))
        items = [
            Item(p, pid=int(p.stem.split("_")[0]), camid=k % 2, source=p.name) for k, p in enumerate(images)
        ]
        return Splits(items[:2], items[2:3], items[3:], [], {"name": "market", "junk_dropped": 0})

    return parse


def test_a_dataset_registered_in_one_place_is_found_by_name_with_its_options(tmp_path, scratch_registry):
    seen: list[ToyOptions] = []
    keys = {"camera_pattern": "pattern", "msmt17_train_with_val": "train_with_val"}
    registry.register("toy", options=ToyOptions, data_keys=keys)(_toy_parser(seen))
    raw = tmp_path / "raw"
    write_tree(raw, {"": ["1_a.jpg", "2_a.jpg", "3_a.jpg", "3_b.jpg"]})
    data = DataConfig(camera_pattern=r"c(\d)", msmt17_train_with_val=False)
    splits = datasets.parse("toy", raw, tmp_path / "work", data)
    assert seen == [ToyOptions(pattern=r"c(\d)", train_with_val=False)]
    assert [i.pid for i in splits.train] == [1, 2] and [i.pid for i in splits.gallery] == [3]
    assert "toy" in datasets.names() and datasets.get("toy").options is ToyOptions
    # preprocess finds it by name too, through the same lookup, with the data section's options
    data = dataclasses.replace(data, stored_height=16, stored_width=8, workers=1)
    result = preprocess.run(dataset="toy", raw_dir=raw, out_dir=tmp_path / "out", data=data)
    assert seen[-1] == ToyOptions(pattern=r"c(\d)", train_with_val=False) and len(seen) == 2
    assert result.num_images == {"train": 2, "query": 1, "gallery": 1} and result.num_classes == 2


def test_a_registered_dataset_can_be_combined(tmp_path, scratch_registry):
    registry.register("toy")(lambda root, work_dir: _toy_parser([])(root, work_dir))
    both = tmp_path / "raw" / "toy+market1501"
    write_tree(both / "toy", {"": ["1_a.jpg", "2_a.jpg", "3_a.jpg", "3_b.jpg"]})
    write_tree(
        both / "market1501",
        {
            "bounding_box_train": ["0001_c1s1_000001_00.jpg"],
            "bounding_box_test": ["0002_c2s1_000001_00.jpg"],
            "query": ["0002_c1s1_000001_00.jpg"],
        },
    )
    splits = datasets.parse("toy+market1501", tmp_path / "raw" / "toy+market1501", tmp_path / "work")
    assert [s["name"] for s in splits.protocol["sources"]] == ["toy", "market1501"]


def test_registration_mistakes_are_refused(scratch_registry):
    def parse(root: Path, work_dir: Path) -> Splits:
        raise AssertionError("never called")

    with pytest.raises(DatasetError, match="'nope' -> 'pattern' must map a data section key"):
        registry.register("toy", options=ToyOptions, data_keys={"nope": "pattern"})(parse)
    with pytest.raises(DatasetError, match="must map a data section key"):
        registry.register("toy", options=ToyOptions, data_keys={"camera_pattern": "nope"})(parse)
    with pytest.raises(DatasetError, match="options must be a frozen dataclass"):
        registry.register("toy", options=dict)(parse)
    with pytest.raises(DatasetError, match="'market1501' is already registered"):
        registry.register("market1501")(parse)
    with pytest.raises(DatasetError, match="unknown dataset 'toy'; choose one of .*market1501"):
        datasets.parse("toy", Path("."), Path("."))


def test_every_registered_dataset_has_a_parser_and_options_whose_defaults_match_the_data_section():
    assert set(datasets.names()) >= {"market1501", "cuhk03", "msmt17", "synthetic", "synthetic_b"}
    for name in datasets.names():
        spec = datasets.get(name)
        assert callable(spec.parser), name
        assert dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen, name
        # params.yaml's defaults give the same options as the parser's own defaults
        assert spec.options_from(DataConfig()) == spec.options(), name
        fields = {f.name for f in dataclasses.fields(spec.options)}
        assert set(spec.data_keys.values()) == fields, f"{name}: every option is filled from the data section"


def test_options_are_built_from_the_flat_data_keys():
    data = DataConfig(
        cuhk03_labels="labeled",
        cuhk03_protocol="classic",
        cuhk03_split=7,
        cuhksysu_gallery_size=500,
        msmt17_train_with_val=False,
        camera_pattern=r"_c(\d+)",
    )
    built = {name: dataclasses.asdict(datasets.get(name).options_from(data)) for name in datasets.names()}
    assert built["cuhk03"] == {"labels": "labeled", "protocol": "classic", "split": 7}
    assert built["cuhk_sysu"] == {"gallery_size": 500}
    assert built["msmt17"] == built["synthetic"] == built["synthetic_b"] == {"train_with_val": False}
    assert built["custom_folders"] == {"camera_pattern": r"_c(\d+)"}
    assert built["market1501"] == built["veri776"] == {}


def test_generated_datasets_are_flagged_in_the_registry():
    generated = {n: datasets.get(n).domain for n in datasets.names() if datasets.get(n).generated}
    assert generated == {"synthetic": "", "synthetic_b": "b"}
    assert datasets.get("synthetic_b").options is Msmt17Options


def test_raw_source_names_no_dataset():
    tree = ast.parse(RAW_SOURCE.read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not literals & set(datasets.names()), sorted(literals & set(datasets.names()))


def test_every_module_of_the_package_is_imported_so_registration_needs_no_list():
    package = Path(datasets.__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        assert f"{datasets.__name__}.{info.name}" in sys.modules, info.name
    # importing the package alone registers every dataset (a fresh interpreter, nothing else imported)
    code = "from spherereid.data import datasets; print(','.join(sorted(datasets.names())))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().split(",") == sorted(datasets.names())
