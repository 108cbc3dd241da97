"""Search over a folder of gallery images: ranked results, the cached index, skipped files, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.deploy import (
    CROP,
    STORED,
    random_tiny,
    synthetic_prepared,
    train_tiny,
    write_model_pt,
    write_params,
)
from PIL import Image

from spherereid.data.image_chain import ImageChain
from spherereid.data.manifest import PreparedSet
from spherereid.deploy import gallery_index
from spherereid.deploy.commands import search as search_main
from spherereid.deploy.gallery_index import GalleryError, build_index
from spherereid.deploy.model_source import resolve_model
from spherereid.inference import extract_features


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Synthetic raw + prepared data, a trained tiny model.pt, params.yaml, and a messy gallery folder:
    nested folders, some images re-saved as PNG, a text file and a broken JPEG."""
    root = tmp_path_factory.mktemp("search")
    prepared = synthetic_prepared(root)
    model_pt = write_model_pt(train_tiny(prepared), root / "model.pt")
    params = write_params(root / "params.yaml")
    gallery = root / "gallery"
    for i, src in enumerate(sorted((root / "raw" / "bounding_box_test").glob("*.jpg"))):
        cam = src.name.split("_")[1][:2]
        dst = gallery / cam / ("nested" if i % 3 == 0 else "") / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0:
            Image.open(src).save(dst.with_suffix(".png"))
        else:
            shutil.copy(src, dst)
    (gallery / "notes.txt").write_text("not a picture")
    (gallery / "c1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return {"root": root, "prepared": prepared, "model": model_pt, "params": params, "gallery": gallery}


def _relpath(p: str) -> str:
    return Path(p).name.rsplit(".", 1)[0]


def test_search_ranks_the_querys_identity_first_with_the_evaluation_chains_distances(setup, tmp_path):
    queries = sorted((setup["root"] / "raw" / "query").glob("*.jpg"))
    out = tmp_path / "out"
    argv = [
        "--model",
        str(setup["model"]),
        "--params",
        str(setup["params"]),
        "--gallery",
        str(setup["gallery"]),
        "--query",
        *map(str, queries),
        "--top",
        "5",
        "--out",
        str(out),
    ]
    assert search_main(argv) == 0

    # the evaluate stage's path on the prepared copies of the same files gives the same distances
    ps = PreparedSet(setup["prepared"])
    model = resolve_model(str(setup["model"]), params=setup["params"])
    chain = ImageChain(STORED, CROP)
    feats = {}
    for split in ("query", "gallery"):
        data = ps.split(split)
        f = extract_features(
            model.net,
            data.images,
            chain.eval_transform(),
            flip=True,
            precision=model.chain.precision,
            progress=False,
        )  # the chain search uses
        feats.update({_relpath(s): row for s, row in zip(data.sources, f)})

    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == len(queries)
    for folder, query in zip(folders, queries):
        record = json.loads((folder / "results.json").read_text())
        pid = int(query.name.split("_")[0])
        assert record["pid"] == pid
        results = record["results"]
        assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
        assert results[0]["pid"] == pid and results[0]["match"] is True  # own identity first
        distances = [r["distance"] for r in results]
        assert distances == sorted(distances)
        for r in results:
            expected = 1.0 - float(feats[_relpath(r["path"])] @ feats[query.stem])
            assert r["distance"] == pytest.approx(expected, abs=1e-5)
            assert r["match"] == (r["pid"] == pid) and Path(r["path"]).is_file()
        with Image.open(folder / "ranked_list.png") as img:
            assert img.format == "PNG" and img.width > img.height


def test_bad_gallery_files_are_reported_and_skipped_with_a_reason(setup, tmp_path):
    model = resolve_model(str(setup["model"]), params=setup["params"])
    index = build_index(setup["gallery"], model, tmp_path / "index.npz")
    reasons = {s.path: s.reason for s in index.skipped}
    assert set(reasons) == {"notes.txt", "c1/broken.jpg"}
    assert "not an image file" in reasons["notes.txt"] and "corrupt" in reasons["c1/broken.jpg"]
    expected = sorted(
        p.relative_to(setup["gallery"]).as_posix()
        for p in setup["gallery"].rglob("*")
        if p.suffix in (".jpg", ".png") and p.name != "broken.jpg"
    )
    assert index.paths == expected and any(p.endswith(".png") for p in expected)
    assert any(p.count("/") == 2 for p in expected)  # nested folders are scanned


def test_index_is_reused_extended_incrementally_and_rebuilt_after_a_model_change(
    setup, tmp_path, monkeypatch
):
    gallery = tmp_path / "gallery"
    shutil.copytree(setup["gallery"], gallery)
    embedded = []

    def counting(net, images, *args, **kwargs):  # the real function, counting the images it embeds
        embedded.append(len(images))
        return extract_features(net, images, *args, **kwargs)

    monkeypatch.setattr(gallery_index, "extract_features", counting)
    model = resolve_model(str(setup["model"]), params=setup["params"])
    index_path = tmp_path / "index.npz"
    first = build_index(gallery, model, index_path)
    n = len(first.paths)
    assert sum(embedded) == n and first.rebuilt

    embedded.clear()
    again = build_index(gallery, model, index_path)
    assert sum(embedded) == 0 and again.reused == n and not again.rebuilt
    np.testing.assert_array_equal(again.embeddings, first.embeddings)

    some = sorted(gallery.rglob("*.jpg"))[0]
    shutil.copy(some, gallery / "c2" / "0999_c2s1_000001_01.jpg")  # a new file
    Image.open(sorted(gallery.rglob("*.png"))[0]).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(
        sorted(gallery.rglob("*.png"))[0]
    )  # a changed file
    embedded.clear()
    grown = build_index(gallery, model, index_path)
    assert sum(embedded) == 2 and grown.reused == n - 1 and len(grown.paths) == n + 1

    other_pt = write_model_pt(random_tiny(seed=5), tmp_path / "other.pt")
    other = resolve_model(str(other_pt), params=setup["params"])
    assert other.key != model.key
    embedded.clear()
    rebuilt = build_index(gallery, other, index_path)
    assert sum(embedded) == n + 1 and rebuilt.rebuilt and rebuilt.reused == 0
    flipped_params = write_params(tmp_path / "noflip.yaml", flip=False)  # same weights, another chain
    assert resolve_model(str(other_pt), params=flipped_params).key != other.key


def test_an_empty_gallery_is_a_one_line_error(setup, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.md").write_text("nothing here")
    query = sorted((setup["root"] / "raw" / "query").glob("*.jpg"))[0]
    argv = [
        "--model",
        str(setup["model"]),
        "--params",
        str(setup["params"]),
        "--gallery",
        str(empty),
        "--query",
        str(query),
        "--out",
        str(tmp_path / "out"),
    ]
    assert search_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --gallery") and "no usable image" in err and "readme.md" in err
    model = resolve_model(str(setup["model"]), params=setup["params"])
    with pytest.raises(GalleryError, match="not a folder"):
        build_index(tmp_path / "missing", model, tmp_path / "i.npz")
