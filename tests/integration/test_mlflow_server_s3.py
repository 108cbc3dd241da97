"""Real servers on loopback: an `mlflow server` with proxied artifacts in S3 (moto), and a DVC S3 remote
on the same moto server (push, empty the cache, pull back the same bytes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.stages import register as register_stage
from spherereid.tracking import lineage
from spherereid.tracking import runs as tracking
from spherereid.tracking.registry import promote

BIN = Path(sys.executable).parent
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
METRICS = {
    "rank1": 0.8,
    "rank5": 0.9,
    "rank10": 0.95,
    "mAP": 0.6,
    "mAP_official": 0.55,
    "mINP": 0.3,
    "num_valid_queries": 10.0,
    "num_queries": 10.0,
}


@pytest.mark.slow
def test_run_model_and_registry_through_a_tracking_server_with_s3_artifacts(
    mlflow_server, moto_s3, tmp_path, make_train_dir, monkeypatch
):
    import mlflow
    import requests
    import torch

    # the client talks to the server only: no S3 credentials or endpoint on this side (proxied artifacts)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    net = make_train_dir(train_dir)
    ref = tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name="toy",
        params={"model": {"backbone": "tiny"}},
        tags={"dataset": "toy", "params_hash": "ph", "git_commit": "gc"},
    )
    assert ref.tracking_uri == mlflow_server.uri
    tracking.log_metrics(ref, {"loss": 1.5}, step=0)
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps(METRICS))
    chain = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)
    (eval_dir / "chain.json").write_text(json.dumps(chain.to_dict()))
    tracking.log_artifact(ref, eval_dir / "metrics.json", artifact_path="evaluation")
    res = register_stage.run(
        train_dir=train_dir,
        eval_dir=eval_dir,
        out_dir=tmp_path / "reg",
        register=RegisterConfig(min_rank1=0.5, min_map=0.3),
    )
    assert (res.name, res.version, res.aliases) == ("spherereid-toy", 1, ["challenger", "champion"])
    again = register_stage.run(
        train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=RegisterConfig()
    )
    assert (again.version, again.model_uri) == (1, res.model_uri)  # idempotent over REST too

    # artifacts are objects in the bucket under the server's prefix
    s3 = moto_s3.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=mlflow_server.bucket)["Contents"]]
    assert all(k.startswith(mlflow_server.prefix + "/") for k in keys)
    assert any(k.endswith(f"{ref.run_id}/artifacts/evaluation/metrics.json") for k in keys)
    model_id = res.model_uri.split("/")[-1]
    weights = [k for k in keys if model_id in k and k.endswith("artifacts/weights.pt")]
    assert len(weights) == 1 and any(model_id in k and k.endswith("/MLmodel") for k in keys)
    body = s3.get_object(Bucket=mlflow_server.bucket, Key=weights[0])["Body"].read()
    state = torch.load(io.BytesIO(body), weights_only=True)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    metrics_key = next(k for k in keys if k.endswith("evaluation/metrics.json"))
    assert json.loads(s3.get_object(Bucket=mlflow_server.bucket, Key=metrics_key)["Body"].read()) == METRICS

    # registry state over the REST API (version numbers are strings there)
    api = f"{mlflow_server.uri}/api/2.0/mlflow"
    model = requests.get(f"{api}/registered-models/get", params={"name": "spherereid-toy"}, timeout=10).json()
    aliases = {a["alias"]: a["version"] for a in model["registered_model"]["aliases"]}
    assert aliases == {"champion": "1", "challenger": "1"}
    mv = requests.get(
        f"{api}/model-versions/get", params={"name": "spherereid-toy", "version": "1"}, timeout=10
    ).json()["model_version"]
    tags = {t["key"]: t["value"] for t in mv["tags"]}
    assert mv["run_id"] == ref.run_id and tags["dataset_hash"] == "hash-a" and float(tags["mAP"]) == 0.6
    assert (
        mv["description"].startswith("# spherereid-toy version 1\n")
        and "## Serve and call" in mv["description"]
    )
    run = requests.get(f"{api}/runs/get", params={"run_id": ref.run_id}, timeout=10).json()["run"]
    assert run["info"]["status"] == "FINISHED"

    # the registered model loads back through the server and computes the evaluated chain's embeddings
    import pandas as pd
    from PIL import Image

    from spherereid.inference import extract_features

    model = mlflow.pyfunc.load_model("models:/spherereid-toy@champion")
    images = np.random.default_rng(1).integers(0, 256, size=(2, 36, 18, 3), dtype=np.uint8)
    pngs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    expected = extract_features(net, images, chain.eval_transform(), flip=True, progress=False)
    np.testing.assert_allclose(model.predict(pd.DataFrame({"image": pngs})), expected, rtol=1e-5, atol=1e-6)

    # a promotion by hand over REST: who, when, why as version tags
    promote(name="spherereid-toy", version=1, reason="checked by hand", user="carol")
    mv = requests.get(
        f"{api}/model-versions/get", params={"name": "spherereid-toy", "version": "1"}, timeout=10
    ).json()["model_version"]
    tags = {t["key"]: t["value"] for t in mv["tags"]}
    assert (tags["promoted_by"], tags["promotion_reason"]) == ("carol", "checked by hand")


def _md5s(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_dvc_s3_remote_push_then_pull_into_an_empty_cache(moto_s3, tmp_path):
    s3 = moto_s3.client()
    s3.create_bucket(Bucket="dvc-test")
    repo = tmp_path / "repo"
    (repo / "data" / "sub").mkdir(parents=True)
    payload = np.random.default_rng(0).bytes(5000)
    (repo / "data" / "a.bin").write_bytes(payload)
    (repo / "data" / "sub" / "b.txt").write_text("identity 0001 camera 2\n")
    (repo / "data" / "empty.txt").write_text("")
    before = _md5s(repo / "data")
    env = {
        **os.environ,
        **S3_ENV,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc.stdout

    dvc = str(BIN / "dvc")
    run("git", "init", "-q")
    run(dvc, "init", "-q")
    run(dvc, "config", "core.analytics", "false")
    run(dvc, "add", "-q", "data")
    run(dvc, "remote", "add", "-d", "store", "s3://dvc-test/cache")
    run(dvc, "remote", "modify", "store", "endpointurl", moto_s3.endpoint)
    run(dvc, "push", "-q")
    out = json.loads(run(dvc, "status", "-c", "--json") or "{}")
    assert out == {}  # nothing left to push

    recorded = lineage.dvc_data_hash(repo / "data")
    assert recorded is not None and recorded.endswith(".dir")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dvc-test")["Contents"]]
    # DVC 3 stores objects as files/md5/<2>/<30>: every file and the .dir listing are in the bucket
    stored = {k.split("/")[-2] + k.split("/")[-1] for k in keys}
    assert set(before.values()) | {recorded} <= stored

    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data")
    run(dvc, "pull", "-q")
    assert _md5s(repo / "data") == before
    assert (repo / "data" / "a.bin").read_bytes() == payload
