"""register.export_onnx on a local sqlite store: the ONNX model is logged with MLflow's onnx flavor next to
the pyfunc, tagged with its parity figures, loads back and predicts; a failed parity registers nothing.
With register.onnx_quantize int8 the int8 model is logged too, its parity and speed figures tagged on the
version and shown in the model card; an int8 budget violation registers nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures.deploy import CROP, STORED, random_tiny, synthetic_prepared

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.data.manifest import PreparedSet
from spherereid.deploy import onnx_flavor
from spherereid.deploy.commands import export as export_main
from spherereid.deploy.model_source import resolve_model
from spherereid.deploy.onnx_export import export_onnx
from spherereid.stages import register as register_stage
from spherereid.tracking import client as mlflow_client
from spherereid.tracking import runs as tracking

CHAIN = ImageChain(STORED, CROP, flip=True)
METRICS = {
    "rank1": 0.8,
    "mAP": 0.6,
    "mAP_official": 0.55,
    "mINP": 0.3,
    "num_valid_queries": 8.0,
    "num_queries": 8.0,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return synthetic_prepared(tmp_path_factory.mktemp("onnx-reg"))


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow_client.client(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _register_argv(params, train_dir, eval_dir, out, prepared) -> list[str]:
    """The register stage's arguments, --prepared last (a test drops it with argv[:-2])."""
    paths = {"--params": params, "--train": train_dir, "--eval": eval_dir, "--out": out}
    return [*(a for flag, path in paths.items() for a in (flag, str(path))), "--prepared", str(prepared)]


def _inputs(tmp_path, make_train_dir):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    net = make_train_dir(train_dir)
    tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name="toy",
        params={"model.backbone": "tiny"},
        tags={"dataset": "toy"},
    )
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({**METRICS, "protocol": "market"}))
    (eval_dir / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    return train_dir, eval_dir, net


def _by_hand(net, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=CROP, mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(CHAIN.mean).view(1, 3, 1, 1)) / torch.tensor(CHAIN.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return F.normalize(net(x) + net(x.flip(-1)), dim=1).numpy()


@pytest.mark.slow
def test_register_logs_the_onnx_flavor_with_parity_tags_and_it_loads_and_predicts(
    store, tmp_path, make_train_dir, prepared, capsys
):
    import mlflow

    train_dir, eval_dir, net = _inputs(tmp_path, make_train_dir)
    cfg = RegisterConfig(min_rank1=0.5, min_map=0.3, export_onnx=True)
    res = register_stage.run(
        train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg, prepared_dir=prepared
    )
    client = mlflow_client.client(store)
    mv = client.get_model_version(res.name, str(res.version))
    tags = mv.tags
    assert float(tags["onnx.parity.min_cosine"]) >= 0.99999
    assert tags["onnx.parity.batch_sizes"] == "1,7,64"
    assert tags["onnx.parity.rank1_onnx"] == tags["onnx.parity.rank1_torch"]
    assert tags["onnx.parity.map_onnx"] == tags["onnx.parity.map_torch"]
    onnx_uri = tags["onnx.model_uri"]
    assert onnx_uri.startswith("models:/m-") and onnx_uri != res.model_uri
    assert "## ONNX" in mv.description and onnx_uri in mv.description
    record = json.loads((tmp_path / "reg" / "registration.json").read_text())
    assert record["onnx"]["model_uri"] == onnx_uri

    # both models are LoggedModels of the same run: the pyfunc and the onnx flavor
    onnx_model = client.get_logged_model(onnx_uri[len("models:/") :])
    pyfunc_model = client.get_logged_model(res.model_uri[len("models:/") :])
    assert onnx_model.source_run_id == pyfunc_model.source_run_id == res.run_id
    assert "onnx" in mlflow.models.get_model_info(onnx_uri).flavors

    images = np.asarray(PreparedSet(prepared).split("gallery").images)[:9]
    loaded = mlflow.pyfunc.load_model(onnx_uri)
    predicted = loaded.predict(images)
    out = predicted["embeddings"] if isinstance(predicted, dict) else np.asarray(predicted)
    np.testing.assert_allclose(out, _by_hand(net, images), atol=1e-5)

    # the registered version resolves back to the same network and chain for export and search
    model = resolve_model(f"models:/{res.name}@champion")
    assert model.chain == CHAIN and model.version == res.version
    assert resolve_model(str(res.version), name=res.name).key == model.key  # a version number + --name
    assert (
        export_main(["--model", f"models:/{res.name}/{res.version}", "--out", str(tmp_path / "x.onnx")]) == 0
    )
    assert "parity" in capsys.readouterr().out


def test_a_failed_parity_check_fails_the_stage_in_one_line_and_registers_nothing(
    store, tmp_path, make_train_dir, prepared, monkeypatch, capsys
):
    train_dir, eval_dir, _ = _inputs(tmp_path, make_train_dir)

    def broken_exporter(net, chain, path, **kwargs):  # a real export, of the wrong network
        return export_onnx(random_tiny(seed=9), chain, path, **kwargs)

    monkeypatch.setattr(onnx_flavor, "export_onnx", broken_exporter)
    params = tmp_path / "params.yaml"
    from fixtures.deploy import ROOT

    params.write_text((ROOT / "params.yaml").read_text().replace("export_onnx: false", "export_onnx: true"))
    argv = _register_argv(params, train_dir, eval_dir, tmp_path / "reg", prepared)
    assert register_stage.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: parity check 'cosine' failed at batch size 1")
    assert mlflow_client.client(store).search_registered_models() == []
    assert not (tmp_path / "reg" / "registration.json").exists()

    argv_without = argv[:-2]
    assert register_stage.main(argv_without) == 2
    assert "pass --prepared" in capsys.readouterr().err


INT8_FIGURES = (
    "rank1_fp32",
    "rank1_int8",
    "map_fp32",
    "map_int8",
    "rank1_difference_points",
    "map_difference_points",
    "top1_agreement",
    "mean_cosine",
    "min_cosine",
    "budget_points",
    "fp32_images_per_s",
    "int8_images_per_s",
    "speedup",
    "batch",
    "cpu",
    "calibration_images",
)


def test_register_with_int8_logs_it_and_records_its_parity_and_speed_on_the_version_and_card(
    store, tmp_path, make_train_dir, prepared
):
    import mlflow

    train_dir, eval_dir, net = _inputs(tmp_path, make_train_dir)
    cfg = RegisterConfig(
        min_rank1=0.0, min_map=0.0, export_onnx=True, onnx_quantize="int8", onnx_int8_budget=100.0
    )
    res = register_stage.run(
        train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg, prepared_dir=prepared
    )
    client = mlflow_client.client(store)
    mv = client.get_model_version(res.name, str(res.version))
    tags = mv.tags
    assert all(f"onnx.int8.{key}" in tags for key in INT8_FIGURES)
    assert tags["onnx.int8.map_fp32"] == tags["onnx.parity.map_onnx"]  # int8 is compared with fp32 ONNX
    assert tags["onnx.int8.budget_points"] == "100.0" and float(tags["onnx.int8.speedup"]) > 0
    int8_uri = tags["onnx.int8.model_uri"]
    assert int8_uri.startswith("models:/m-") and int8_uri not in (tags["onnx.model_uri"], res.model_uri)
    card = mv.description
    assert "### int8 (CPU)" in card and int8_uri in card
    assert f"| {float(tags['onnx.int8.speedup']):.2f}x |" in card and "without VNNI" in card
    record = json.loads((tmp_path / "reg" / "registration.json").read_text())
    assert record["onnx"]["int8"]["model_uri"] == int8_uri
    assert record["onnx"]["int8"]["top1_agreement"] == tags["onnx.int8.top1_agreement"]

    logged = client.get_logged_model(int8_uri[len("models:/") :])
    assert logged.source_run_id == res.run_id and logged.name.endswith("-onnx-int8")
    images = np.asarray(PreparedSet(prepared).split("gallery").images)[:9]
    predicted = mlflow.pyfunc.load_model(int8_uri).predict(images)
    out = predicted["embeddings"] if isinstance(predicted, dict) else np.asarray(predicted)
    assert (out * _by_hand(net, images)).sum(1).min() > 0.99


def test_an_int8_budget_violation_fails_the_stage_in_one_line_and_registers_nothing(
    store, tmp_path, make_train_dir, prepared, capsys
):
    train_dir, eval_dir, _ = _inputs(tmp_path, make_train_dir)
    from fixtures.deploy import ROOT

    params = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("export_onnx: false", "export_onnx: true")
    text = text.replace("onnx_quantize: none", "onnx_quantize: int8")
    params.write_text(text.replace("onnx_int8_budget: 0.5", "onnx_int8_budget: 0.0"))
    argv = _register_argv(params, train_dir, eval_dir, tmp_path / "reg", prepared)
    assert register_stage.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: int8 parity budget exceeded: rank-1 ")
    assert err.endswith(
        "keep the fp32 model (register.onnx_quantize: none) or raise register.onnx_int8_budget"
    )
    assert mlflow_client.client(store).search_registered_models() == []
    assert not (tmp_path / "reg" / "registration.json").exists()
    assert not (tmp_path / "reg" / "model.int8.onnx").exists()
