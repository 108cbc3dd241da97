"""The gated registry on a local sqlite store: gate, champion/challenger aliases, idempotence, the
register stage end to end (pyfunc model logged once per model file, served predictions equal the
evaluate stage's chain, the model card), promotion policies and `spherereid promote`."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.inference import extract_features
from spherereid.stages import register as register_stage
from spherereid.tracking import client as mlflow_client
from spherereid.tracking import registry
from spherereid.tracking import runs as tracking
from spherereid.tracking.registry import RegistryError, promote

CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)  # conftest's HEIGHT, WIDTH = 32, 16


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An initialised MLflow sqlite store, created once (schema migrations take seconds)."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow_client.client(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _register(
    uri,
    name,
    *,
    rank1,
    m_ap,
    dataset_hash="hash-a",
    run_id=None,
    min_rank1=0.5,
    min_map=0.3,
    promotion="same-data",
):
    """A run (created unless given) registered with the given metrics; returns (result, run_id)."""
    c = mlflow_client.client(uri)
    if run_id is None:
        exp = c.get_experiment_by_name("e") or c.get_experiment(c.create_experiment("e"))
        run_id = c.create_run(exp.experiment_id).info.run_id
    res = registry.register_and_gate(
        name=name,
        model_uri=f"runs:/{run_id}/model",
        run_id=run_id,
        metrics={"rank1": rank1, "mAP": m_ap, "mINP": 0.1},
        dataset_hash=dataset_hash,
        min_rank1=min_rank1,
        min_map=min_map,
        tags={"params_hash": "p1", "git_commit": "g1"},
        promotion=promotion,
        tracking_uri=uri,
    )
    return res, run_id


def _aliases(uri, name):
    return {a: int(v) for a, v in mlflow_client.client(uri).get_registered_model(name).aliases.items()}


def test_champion_moves_only_to_a_better_model_on_the_same_data(store):
    first, _ = _register(store, "m", rank1=0.6, m_ap=0.40)
    assert (first.version, first.passed_gate, first.champion_version) == (1, True, 1)
    assert first.aliases == ["challenger", "champion"] and "no champion yet" in first.reason

    better, _ = _register(store, "m", rank1=0.7, m_ap=0.45)
    assert better.version == 2 and better.aliases == ["challenger", "champion"]
    assert "beats champion version 1 (0.4000)" in better.reason
    assert _aliases(store, "m") == {"champion": 2, "challenger": 2}

    worse, _ = _register(store, "m", rank1=0.65, m_ap=0.42)
    assert worse.passed_gate and worse.aliases == ["challenger"] and worse.champion_version == 2
    assert "does not beat champion version 2 (0.4500)" in worse.reason
    assert _aliases(store, "m") == {"champion": 2, "challenger": 3}

    # equal mAP does not beat the champion either
    tie, _ = _register(store, "m", rank1=0.65, m_ap=0.45)
    assert tie.champion_version == 2 and tie.aliases == ["challenger"]


def test_failing_the_gate_is_reported_plainly_and_sets_no_alias(store):
    _register(store, "m", rank1=0.6, m_ap=0.40)
    failed, _ = _register(store, "m", rank1=0.1, m_ap=0.35)
    assert (failed.version, failed.passed_gate, failed.aliases, failed.champion_version) == (2, False, [], 1)
    assert failed.reason == "quality gate failed: rank1 0.1000 < min_rank1 0.5000; no alias set"
    both, _ = _register(store, "m", rank1=float("nan"), m_ap=0.2)
    assert (
        not both.passed_gate
        and "rank1 nan < min_rank1" in both.reason
        and "mAP 0.2000 < min_map 0.3000" in both.reason
    )
    assert _aliases(store, "m") == {"champion": 1, "challenger": 1}
    tags = mlflow_client.client(store).get_model_version("m", "2").tags
    assert tags["quality_gate"] == "failed" and float(tags["rank1"]) == 0.1


def test_registering_the_same_run_again_reuses_its_version(store):
    first, run_id = _register(store, "m", rank1=0.6, m_ap=0.40)
    newer, _ = _register(store, "m", rank1=0.6, m_ap=0.35)  # challenger now on version 2
    again, _ = _register(store, "m", rank1=0.6, m_ap=0.40, run_id=run_id)
    assert (again.version, again.aliases, again.champion_version) == (1, ["champion"], 1)
    assert "already champion" in again.reason
    versions = mlflow_client.client(store).search_model_versions("name = 'm'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert _aliases(store, "m") == {
        "champion": 1,
        "challenger": 2,
    }  # an older re-run does not take challenger
    tags = mlflow_client.client(store).get_model_version("m", "1").tags
    assert {tags[k] for k in ("run_id", "dataset_hash", "params_hash", "git_commit")} == {
        run_id,
        "hash-a",
        "p1",
        "g1",
    }
    assert float(tags["mAP"]) == 0.40


def test_a_champion_from_another_dataset_version_is_not_displaced_and_the_user_is_told_what_to_do(store):
    _register(store, "m", rank1=0.6, m_ap=0.40, dataset_hash="hash-a")
    other, _ = _register(store, "m", rank1=0.9, m_ap=0.90, dataset_hash="hash-b")
    assert other.passed_gate and other.aliases == ["challenger"] and other.champion_version == 1
    assert "new dataset version: champion version 1 was evaluated on dataset hash-a" in other.reason
    assert "spherereid promote --name m --version 2 --reason TEXT" in other.reason
    assert "register.promotion: best" in other.reason


def test_promotion_best_moves_champion_across_dataset_versions_and_manual_never_moves_it(store):
    _register(store, "b", rank1=0.6, m_ap=0.40, dataset_hash="hash-a")
    better, _ = _register(store, "b", rank1=0.9, m_ap=0.90, dataset_hash="hash-b", promotion="best")
    assert better.champion_version == 2 and "(evaluated on another dataset version, hash-a)" in better.reason
    worse, _ = _register(store, "b", rank1=0.9, m_ap=0.50, dataset_hash="hash-c", promotion="best")
    assert worse.champion_version == 2 and "challenger only" in worse.reason
    tags = mlflow_client.client(store).get_model_version("b", "2").tags
    assert tags["promoted_by"] == "register (promotion: best)" and tags["promoted_from_version"] == "1"
    assert tags["promotion_reason"].startswith("mAP 0.9000 beats champion version 1")

    first, _ = _register(store, "h", rank1=0.9, m_ap=0.9, promotion="manual")
    assert first.aliases == ["challenger"] and first.champion_version is None
    assert "promotion is manual: no champion yet" in first.reason
    assert _aliases(store, "h") == {"challenger": 1}


def test_promote_records_who_when_and_why_and_refuses_a_failed_version_without_force(store, monkeypatch):
    from datetime import UTC, datetime

    _register(store, "p", rank1=0.6, m_ap=0.40, dataset_hash="hash-a")
    _register(store, "p", rank1=0.9, m_ap=0.90, dataset_hash="hash-b")
    _register(store, "p", rank1=0.1, m_ap=0.10, dataset_hash="hash-b")  # fails the gate
    before = datetime.now(UTC).replace(microsecond=0)
    res = promote(name="p", version=2, reason="hash-b is the new data", user="alice")
    assert (res.version, res.previous, res.by) == (2, 1, "alice")
    assert _aliases(store, "p")["champion"] == 2
    tags = mlflow_client.client(store).get_model_version("p", "2").tags
    assert (tags["promoted_by"], tags["promotion_reason"], tags["promoted_from_version"]) == (
        "alice",
        "hash-b is the new data",
        "1",
    )
    assert before <= datetime.fromisoformat(tags["promoted_at"]) <= datetime.now(UTC)

    with pytest.raises(RegistryError, match="p version 3 failed the quality gate .*pass --force"):
        promote(name="p", version=3, reason="x")
    assert _aliases(store, "p")["champion"] == 2
    with pytest.raises(RegistryError, match="p version 9 not found; versions: 1, 2, 3"):
        promote(name="p", version=9, reason="x")
    assert promote(name="p", version=3, reason="x", force=True).previous == 2


def test_promote_command_prints_one_line_and_exits_2_on_bad_input(store, capsys, monkeypatch):
    from spherereid.cli import main

    _register(store, "c", rank1=0.6, m_ap=0.40)
    _register(store, "c", rank1=0.6, m_ap=0.30)
    monkeypatch.setenv("SPHEREREID_USER", "bob")
    assert main(["promote", "--name", "c", "--version", "2", "--reason", "looks better on the UI"]) == 0
    assert capsys.readouterr().out.strip() == (
        "c version 2 is now champion (was version 1); by bob: looks better on the UI"
    )
    assert main(["promote", "--name", "nope", "--version", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: registered model 'nope' has no versions") and "\n" not in err


def test_missing_metric_is_a_clear_error(store):
    with pytest.raises(RegistryError, match="metric 'mAP' missing"):
        registry.register_and_gate(
            name="m",
            model_uri="runs:/x/model",
            run_id="x",
            metrics={"rank1": 0.5},
            dataset_hash=None,
            min_rank1=0.0,
            min_map=0.0,
            tags={},
            tracking_uri=store,
        )


def _train_and_eval(tmp_path, make_train_dir, metrics, *, seed=0):
    train_dir, eval_dir = tmp_path / f"train{seed}", tmp_path / f"eval{seed}"
    net = make_train_dir(train_dir, seed=seed)
    tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name="toy",
        params={"model.backbone": "tiny", "seed": seed},
        tags={"dataset": "toy", "params_hash": "ph", "git_commit": "gc", "seed": str(seed)},
    )
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({**metrics, "protocol": "market"}))
    (eval_dir / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    figures = {"rank1": metrics["rank1"], "mAP": metrics["mAP"]}
    check = {"precision": "fp32", "fp32": figures, "difference": {"rank1": 0.0, "mAP": 0.0}}
    (eval_dir / "precision_check.json").write_text(json.dumps(check))  # the evaluate stage's (fp32 chain)
    return train_dir, eval_dir, net


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_register_stage_logs_the_pyfunc_once_and_serves_the_networks_embeddings(
    store, tmp_path, make_train_dir
):
    import mlflow

    metrics = {
        "rank1": 0.8,
        "rank5": 0.9,
        "rank10": 0.95,
        "mAP": 0.6,
        "mAP_official": 0.55,
        "mINP": 0.3,
        "num_valid_queries": 10.0,
        "num_queries": 10.0,
    }
    train_dir, eval_dir, net = _train_and_eval(tmp_path, make_train_dir, metrics)
    cfg = RegisterConfig(model_prefix="spherereid", min_rank1=0.5, min_map=0.3)
    res = register_stage.run(train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg)
    assert (res.name, res.version, res.passed_gate, res.aliases) == (
        "spherereid-toy",
        1,
        True,
        ["challenger", "champion"],
    )
    record = json.loads((tmp_path / "reg" / "registration.json").read_text())
    assert record["version"] == 1 and record["aliases"] == ["challenger", "champion"]
    assert record["model_uri"] == res.model_uri and res.model_uri.startswith("models:/m-")
    assert record["dataset_hash"] == "hash-a" and record["metrics"]["mAP"] == 0.6

    again = register_stage.run(train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg)
    assert os.environ["MLFLOW_TRACKING_URI"] == store  # logging the model leaves the variable alone
    assert again.version == 1 and again.model_uri == res.model_uri
    c = mlflow_client.client(store)
    run = c.get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["registered_version"] == "1"
    logged = c.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert len(logged) == 1  # the model is logged once per run
    version = c.get_model_version("spherereid-toy", "1")
    assert {version.tags[k] for k in ("dataset", "params_hash", "git_commit", "seed")} == {
        "toy",
        "ph",
        "gc",
        "0",
    }

    # the model card is the version's description; the registered model has a short one
    card = version.description
    assert card.startswith("# spherereid-toy version 1\n") and "| rank-1 | rank-5 |" in card
    assert "| 0.8000 | 0.9000 | 0.9500 | 0.6000 | 0.5500 | 0.3000 | 10/10 |" in card
    assert "Quality gate: **passed**" in card and "`hash-a`" in card and "`gc`" in card
    assert "mlflow models serve -m models:/spherereid-toy/1" in card and "Intended use" in card
    assert "stored size 36x18 -> resize to the input size 32x16" in card
    assert "| fp32 (served) | 0.8000 | 0.6000 |" in card  # evaluate's precision_check.json
    assert "champion" in c.get_registered_model("spherereid-toy").description

    # served = the evaluate stage's chain: bytes at the stored size -> extract_features with flip
    model = mlflow.pyfunc.load_model("models:/spherereid-toy@champion")
    images = np.random.default_rng(0).integers(0, 256, size=(3, 36, 18, 3), dtype=np.uint8)
    out = model.predict(pd.DataFrame({"image": [_png(im) for im in images]}))
    expected = extract_features(net, images, CHAIN.eval_transform(), flip=True, progress=False)
    unflipped = extract_features(net, images, CHAIN.eval_transform(), flip=False, progress=False)
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(out - unflipped).max() > 1e-3  # the flip average is applied
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(Exception, match="row 1: not an image"):
        model.predict(pd.DataFrame({"image": [_png(images[0]), b"GIF89a-not-really"]}))

    # the same run with a new model file (e.g. a resumed, longer training): a new version; version 1's
    # tags still describe version 1's file
    make_train_dir(train_dir, seed=5)
    newer = register_stage.run(train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg)
    assert newer.version == 2 and newer.run_id == res.run_id and newer.model_uri != res.model_uri
    assert c.get_model_version("spherereid-toy", "1").source == res.model_uri
    assert c.get_model_version("spherereid-toy", "2").source == newer.model_uri

    # a second, worse run of the same dataset: challenger only, champion stays on version 1
    worse = {**metrics, "mAP": 0.5}
    t2, e2, _ = _train_and_eval(tmp_path, make_train_dir, worse, seed=1)
    second = register_stage.run(train_dir=t2, eval_dir=e2, out_dir=tmp_path / "reg2", register=cfg)
    assert (second.version, second.aliases, second.champion_version) == (3, ["challenger"], 1)
    assert "challenger only" in register_stage.summary(second)


def test_register_cli_reports_missing_inputs_and_unreachable_servers_in_one_line(
    tmp_path, make_train_dir, monkeypatch, capsys, unused_port
):
    params = tmp_path / "params.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", params)
    train_dir = tmp_path / "train"
    make_train_dir(train_dir)
    argv = [
        "--params",
        str(params),
        "--train",
        str(train_dir),
        "--eval",
        str(tmp_path / "eval"),
        "--out",
        str(tmp_path / "reg"),
    ]
    assert register_stage.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "mlflow_run.json" in err and "run the train stage first" in err and "\n" not in err

    uri = f"http://127.0.0.1:{unused_port}"
    tracking.write_run_ref(train_dir / "mlflow_run.json", tracking.RunRef("abc", "1", uri))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps({"rank1": 0.9, "mAP": 0.9}))
    (tmp_path / "eval" / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("SPHEREREID_MLFLOW_RETRIES", "2")
    monkeypatch.setenv("SPHEREREID_MLFLOW_BACKOFF", "0.01")
    assert register_stage.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: MLflow tracking server " + uri) and "2 attempts" in err[-1]
    assert not (tmp_path / "reg" / "registration.json").exists()


def test_register_cli_talks_to_the_set_tracking_uri_not_the_recorded_one(
    store, tmp_path, make_train_dir, monkeypatch, capsys, unused_port
):
    """MLFLOW_TRACKING_URI=<unreachable> must not fall back to the store mlflow_run.json names."""
    train_dir, eval_dir, _ = _train_and_eval(tmp_path, make_train_dir, {"rank1": 0.9, "mAP": 0.9})
    params = tmp_path / "params.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", params)
    argv = ["--params", str(params), "--train", str(train_dir), "--eval", str(eval_dir)]
    uri = f"http://127.0.0.1:{unused_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("SPHEREREID_MLFLOW_RETRIES", "2")
    monkeypatch.setenv("SPHEREREID_MLFLOW_BACKOFF", "0.01")
    assert register_stage.main([*argv, "--out", str(tmp_path / "reg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: MLflow tracking server " + uri) and "2 attempts" in err[-1]
    assert not (tmp_path / "reg" / "registration.json").exists()
    assert mlflow_client.client(store).search_registered_models() == []  # nothing went to the recorded store

    # a reachable store that does not hold the run: one line naming the run and the store
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert register_stage.main([*argv, "--out", str(tmp_path / "reg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    run_id = json.loads((train_dir / "mlflow_run.json").read_text())["run_id"]
    assert err[-1].startswith(f"error: MLflow run {run_id} not found at {other}")
    assert not (tmp_path / "reg" / "registration.json").exists()


def test_summary_reports_metrics_registration_and_unreadable_files_without_a_traceback(tmp_path, store):
    from spherereid.reporting.summary import summarize

    ok, cut, partial = (tmp_path / n for n in ("ok", "cut", "partial"))
    (ok / "eval").mkdir(parents=True)
    metrics = {"rank1": 0.5, "rank5": 0.75, "mAP": 0.25, "mAP_official": 0.125, "mINP": 0.0625}
    (ok / "eval" / "metrics.json").write_text(json.dumps(metrics))
    (ok / "register").mkdir()
    page = "http://127.0.0.1:5000/#/experiments/1/models?workflowType=machine_learning"
    reg = {
        "name": "spherereid-ok",
        "version": 3,
        "aliases": ["challenger"],
        "passed_gate": True,
        "mlflow_ui": {"models": page},
    }
    (ok / "register" / "registration.json").write_text(json.dumps(reg))
    (cut / "eval").mkdir(parents=True)
    (cut / "eval" / "metrics.json").write_text('{"rank1": 0.5, "mA')  # a killed evaluate stage
    (partial / "eval").mkdir(parents=True)
    (partial / "eval" / "metrics.json").write_text(json.dumps({"rank1": 0.5, "mAP": 0.25}))
    lines = summarize(
        tmp_path, ["ok", "cut", "partial", "none"], f"sqlite:///{tmp_path / 'mlflow.db'}"
    ).splitlines()
    assert lines[0] == ("[ok] rank-1 50.0%  rank-5 75.0%  mAP 25.0%  mAP(official) 12.5%  mINP 6.2%")
    assert lines[1] == ("[ok] registered spherereid-ok version 3; aliases: challenger; quality gate passed")
    assert lines[2] == f"[ok] MLflow UI models: {page}"
    lines.pop(2)
    assert lines[2].startswith(f"[cut] {cut / 'eval' / 'metrics.json'} unreadable (JSONDecodeError)")
    assert lines[3] == "[partial] rank-1 50.0%  rank-5 n/a  mAP 25.0%  mAP(official) n/a  mINP n/a"
    assert lines[4].startswith("[none] not evaluated yet")
    assert lines[5] == f"MLflow UI: mlflow ui --backend-store-uri {store}, then open the pages above"
