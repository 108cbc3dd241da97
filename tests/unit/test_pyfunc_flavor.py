"""deploy/pyfunc_flavor.py without a store: the request rows, the logged input example, the entry script
(the full log -> register -> serve path is tests/integration/test_serving.py and test_registry.py)."""

import base64
import io

import numpy as np
import pytest

from spherereid.data.image_chain import ImageChain
from spherereid.data.imageio import BadImage
from spherereid.deploy import pyfunc_flavor
from spherereid.deploy.pyfunc_flavor import example_png, image_rows

CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_image_rows_accepts_bytes_base64_and_arrays_and_names_bad_rows():
    import pandas as pd

    png = _png(np.zeros((8, 4, 3), dtype=np.uint8))
    pixels = np.ones((5, 3, 3), dtype=np.uint8)
    rows = image_rows(pd.DataFrame({"image": [png, base64.b64encode(png).decode(), pixels]}))
    assert rows[0] == png and rows[1] == png and rows[2] is pixels
    assert len(image_rows(np.zeros((2, 4, 2, 3), dtype=np.uint8))) == 2
    with pytest.raises(BadImage, match=r"no 'image' column \(columns: img\)"):
        image_rows(pd.DataFrame({"img": [png]}))
    with pytest.raises(BadImage, match="row 1: empty image"):
        image_rows({"image": [png, b""]})
    with pytest.raises(BadImage, match="row 0: not base64"):
        image_rows({"image": ["***"]})
    with pytest.raises(BadImage, match="row 2: expected image bytes, got NoneType"):
        image_rows([png, png, None])
    with pytest.raises(BadImage, match="row 1: not an image"):
        CHAIN.stored_batch(image_rows([png, b"GIF89a-nope"]))


def test_the_input_example_is_a_mean_colour_png_at_the_stored_size():
    from PIL import Image

    chain = ImageChain(stored_size=(36, 18), input_size=(32, 16), mean=(0.5, 0.25, 1.0), std=(1, 1, 1))
    image = np.asarray(Image.open(io.BytesIO(example_png(chain))))
    assert image.shape == (36, 18, 3)
    assert (image == np.array([128, 64, 255], dtype=np.uint8)).all()  # round(255 * m)


def test_the_entry_script_imports_this_module_and_the_old_path_still_gives_the_same_class():
    """New models load from deploy.pyfunc_flavor; versions logged before the move import the old path."""
    from spherereid.tracking.pyfunc_model import ReIDEmbeddingModel as legacy

    assert "from spherereid.deploy.pyfunc_flavor import ReIDEmbeddingModel" in pyfunc_flavor.ENTRY_SCRIPT
    assert legacy is pyfunc_flavor.ReIDEmbeddingModel


# The entry script of the versions logged by the code of 2026-11-28 to 2026-12-02 (ea32a01's ENTRY_SCRIPT,
# before the pyfunc moved to deploy/): MLflow stored it with the model and runs it on every load.
PRE_MOVE_ENTRY_SCRIPT = (
    "# Model entry point (MLflow models-from-code): the network is rebuilt in load_context.\n"
    "import mlflow\n\n"
    "from spherereid.tracking.pyfunc_model import ReIDEmbeddingModel\n\n"
    "mlflow.models.set_model(ReIDEmbeddingModel())\n"
)


@pytest.mark.slow  # two MLflow saves and loads: about 15 s on a shared 2-core machine
def test_a_version_logged_before_the_move_still_loads_by_its_old_module_path(tmp_path):
    """Saved as ea32a01's code logged it (its entry script, config.json without the weights' sha256 and a
    chain without precision): MLflow's own loader runs the old import and the model serves the same
    embeddings as one logged today. Without tracking/pyfunc_model.py the load fails ("No module named
    'spherereid.tracking.pyfunc_model'")."""
    import json

    import mlflow
    import pandas as pd

    from spherereid.deploy.flavors import pip_pins
    from spherereid.modeling.net import ReIDNet
    from spherereid.training import saved_model

    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8, pretrained="none").eval()
    artifacts = saved_model.write_pyfunc_artifacts(net, 8, CHAIN, tmp_path)
    old = json.loads((tmp_path / "config.json").read_text())
    old.pop("weights_sha256")
    old["chain"].pop("precision")
    (tmp_path / "old_config.json").write_text(json.dumps(old, indent=2))
    embeddings = []
    for name, entry, config in (
        ("old", PRE_MOVE_ENTRY_SCRIPT, "old_config.json"),
        ("new", pyfunc_flavor.ENTRY_SCRIPT, "config.json"),
    ):
        (tmp_path / f"{name}_entry.py").write_text(entry)
        mlflow.pyfunc.save_model(
            tmp_path / name,
            python_model=str(tmp_path / f"{name}_entry.py"),
            artifacts={**artifacts, "config": str(tmp_path / config)},
            pip_requirements=pip_pins(),
        )
        assert (tmp_path / name / f"{name}_entry.py").read_text() == entry  # what every load runs
        model = mlflow.pyfunc.load_model(str(tmp_path / name))
        embeddings.append(model.predict(pd.DataFrame({"image": [_png(np.full((36, 18, 3), 90, np.uint8))]})))
    assert embeddings[0].shape == (1, 8)
    np.testing.assert_array_equal(embeddings[0], embeddings[1])


def test_rows_decoded_in_threads_have_the_one_by_one_pixels_and_the_first_bad_row_is_named():
    from PIL import Image

    rng = np.random.default_rng(1)
    rows: list = []
    for i in range(24):
        pixels = rng.integers(0, 256, size=(30 + i, 12 + i // 2, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
        rows.append(buf.getvalue() if i % 3 else pixels)  # bytes and arrays, mixed
    one_by_one = np.stack([CHAIN.stored(row) for row in rows])
    for workers in (1, 4):
        assert np.array_equal(CHAIN.stored_batch(rows, workers=workers), one_by_one)
    bad = [*rows[:5], b"not an image", *rows[5:17], b"", *rows[17:]]
    for workers in (1, 4):
        with pytest.raises(BadImage, match=r"^row 5: not an image"):
            CHAIN.stored_batch(bad, workers=workers)
