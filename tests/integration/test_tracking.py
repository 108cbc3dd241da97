"""spherereid.tracking.runs on a local sqlite store: URIs, run refs, resume, lineage helpers, retries."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import requests

from spherereid.tracking import client as mlflow_client
from spherereid.tracking import lineage
from spherereid.tracking import runs as tracking
from spherereid.tracking.runs import RunRef, RunRefError, TrackingUnavailableError


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_default_uri_is_the_repo_roots_sqlite_from_any_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text("datasets: [x]\n")
    deep = tmp_path / "outputs" / "x" / "train"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert mlflow_client.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (
        mlflow_client.local_artifact_root(mlflow_client.tracking_uri()) == tmp_path.resolve() / "mlartifacts"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert mlflow_client.tracking_uri() == "http://127.0.0.1:5000"
    assert mlflow_client.local_artifact_root("http://127.0.0.1:5000") is None


def test_run_ref_round_trip_and_clear_errors(tmp_path):
    ref = RunRef("abc", "3", "sqlite:////x/mlflow.db")
    tracking.write_run_ref(tmp_path / "r.json", ref)
    assert json.loads((tmp_path / "r.json").read_text()) == {
        "run_id": "abc",
        "experiment_id": "3",
        "tracking_uri": "sqlite:////x/mlflow.db",
    }
    assert tracking.read_run_ref(tmp_path / "r.json") == ref
    with pytest.raises(RunRefError, match=r"missing\.json.*run the train stage first"):
        tracking.read_run_ref(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"run_id": "abc"')
    with pytest.raises(RunRefError, match=r"bad\.json.*run the train stage first"):
        tracking.read_run_ref(tmp_path / "bad.json")
    (tmp_path / "partial.json").write_text('{"run_id": "abc"}')
    with pytest.raises(RunRefError, match=r"partial\.json.*experiment_id"):
        tracking.read_run_ref(tmp_path / "partial.json")


def test_params_hash_is_sha256_of_sorted_json_and_order_free():
    params = {"b.x": [1, 2], "a.y": 0.5, "c": "s"}
    expected = hashlib.sha256(b'{"a.y": 0.5, "b.x": [1, 2], "c": "s"}').hexdigest()[:12]
    assert lineage.params_hash(params) == expected
    assert lineage.params_hash(dict(reversed(list(params.items())))) == expected
    assert lineage.params_hash({**params, "a.y": 0.6}) != expected


def test_flatten_params_nests_with_dots_and_lists_as_json():
    flat = lineage.flatten_params(
        {"model": {"backbone": "tiny", "dim": 16}, "betas": (0.9, 0.999), "amp": False}
    )
    assert flat == {"model.backbone": "tiny", "model.dim": "16", "betas": "[0.9, 0.999]", "amp": "False"}


def test_start_log_and_resume_share_one_run_and_artifacts_sit_beside_the_db(store, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # artifacts must not land in ./mlruns of the CWD
    ref_path = tmp_path / "train" / "mlflow_run.json"
    params = {"model": {"backbone": "tiny"}, "optim.betas": [0.9, 0.999], "train.epochs": 3}
    ref = tracking.start_or_resume_run(
        ref_path,
        experiment="spherereid-toy",
        run_name="toy-run",
        params=params,
        tags={"dataset": "toy", "seed": "0"},
    )
    assert tracking.read_run_ref(ref_path) == ref and ref.tracking_uri == store
    for epoch, loss in enumerate([2.0, 1.5]):
        tracking.log_metrics(ref, {"loss": loss}, step=epoch)
    # a killed and restarted train stage: same params -> same run, continuing the history
    again = tracking.start_or_resume_run(
        ref_path,
        experiment="spherereid-toy",
        run_name="toy-run",
        params=params,
        tags={"dataset": "toy", "seed": "0"},
    )
    assert again == ref
    tracking.log_metrics(ref, {"loss": 1.25}, step=2)
    (tmp_path / "cmc.png").write_bytes(b"png")
    tracking.log_artifact(ref, tmp_path / "cmc.png", artifact_path="evaluation")
    tracking.finish_run(ref)

    c = MlflowClient(tracking_uri=store)
    run = c.get_run(ref.run_id)
    assert run.data.params == {"model.backbone": "tiny", "optim.betas": "[0.9, 0.999]", "train.epochs": "3"}
    assert run.data.tags["dataset"] == "toy" and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in c.get_metric_history(ref.run_id, "loss")] == [
        (0, 2.0),
        (1, 1.5),
        (2, 1.25),
    ]
    assert c.get_experiment(ref.experiment_id).name == "spherereid-toy"
    stored = (
        tmp_path
        / "db"
        / "mlartifacts"
        / "spherereid-toy"
        / ref.run_id
        / "artifacts"
        / "evaluation"
        / "cmc.png"
    )
    assert stored.read_bytes() == b"png"
    assert not (tmp_path / "mlruns").exists()

    # changed params -> a new run (params are immutable in MLflow), and the reference is rewritten
    other = tracking.start_or_resume_run(
        ref_path,
        experiment="spherereid-toy",
        run_name="toy-run",
        params={**params, "train.epochs": 4},
        tags={},
    )
    assert other.run_id != ref.run_id and tracking.read_run_ref(ref_path) == other
    assert other.experiment_id == ref.experiment_id


def test_git_commit_matches_rev_parse_and_is_none_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("SPHEREREID_GIT_COMMIT", raising=False)
    assert lineage.git_commit(tmp_path) is None
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "m"], cwd=tmp_path, check=True, env=env)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, env=env
    ).stdout.strip()
    assert len(head) == 40 and lineage.git_commit(tmp_path) == head


def test_git_commit_outside_a_repo_or_without_git_is_the_images_build_commit(tmp_path, monkeypatch):
    """In the KFP image there is no .git and no git binary: the commit baked in at build time is used."""
    monkeypatch.setenv("SPHEREREID_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    assert lineage.git_commit(tmp_path) == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no git executable at all
    assert lineage.git_commit(tmp_path) == "0123456789abcdef0123456789abcdef01234567"


def test_dvc_data_hash_from_lock_and_dvc_file(tmp_path):
    (tmp_path / "data" / "prepared" / "toy").mkdir(parents=True)
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  preprocess@toy:\n    cmd: x\n    outs:\n"
        "    - path: data/prepared/other\n      md5: 111.dir\n"
        "    - path: data/prepared/toy\n      hash: md5\n      md5: 0123abcd.dir\n      size: 10\n"
    )
    assert lineage.dvc_data_hash(tmp_path / "data" / "prepared" / "toy") == "0123abcd.dir"
    assert lineage.dvc_data_hash(tmp_path / "data" / "prepared" / "none") is None
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw.dvc").write_text("outs:\n- md5: feed.dir\n  path: raw\n")
    assert lineage.dvc_data_hash(tmp_path / "raw") == "feed.dir"


def test_with_retries_backs_off_exponentially_then_succeeds(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise requests.ConnectionError("Connection refused")
        return "ok"

    assert mlflow_client.with_retries(flaky, what="x", uri="http://h", attempts=5, base_delay=0.5) == "ok"
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_with_retries_lets_other_errors_through_at_once(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: pytest.fail("must not retry"))

    def broken():
        raise KeyError("not a connection problem")

    with pytest.raises(KeyError):
        mlflow_client.with_retries(broken, what="x", uri="http://h", attempts=5)


def test_unreachable_server_fails_with_the_uri_after_the_configured_retries(
    tmp_path, monkeypatch, unused_port
):
    uri = f"http://127.0.0.1:{unused_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("SPHEREREID_MLFLOW_RETRIES", "3")
    monkeypatch.setenv("SPHEREREID_MLFLOW_BACKOFF", "0.01")
    sleeps: list[float] = []
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    with pytest.raises(TrackingUnavailableError) as info:
        tracking.start_or_resume_run(
            tmp_path / "mlflow_run.json", experiment="e", run_name="r", params={}, tags={}
        )
    message = str(info.value)
    assert uri in message and "MLFLOW_TRACKING_URI" in message and "3 attempts" in message
    assert "\n" not in message
    assert sleeps == [0.01, 0.02]
    assert not (tmp_path / "mlflow_run.json").exists()


def test_a_set_tracking_uri_overrides_the_recorded_one_and_unset_keeps_it(tmp_path, monkeypatch):
    recorded = RunRef("r1", "7", "sqlite:////somewhere/mlflow.db")
    tracking.write_run_ref(tmp_path / "r.json", recorded)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.read_run_ref(tmp_path / "r.json") == recorded
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.team:5000")
    assert tracking.read_run_ref(tmp_path / "r.json") == RunRef("r1", "7", "http://mlflow.team:5000")


def test_a_run_missing_from_the_store_is_a_run_ref_error_naming_run_and_uri(store, tmp_path):
    mlflow_client.client(store).search_experiments()  # an initialised, empty store
    ref = RunRef("0123abcd", "1", store)
    for call in (
        lambda: tracking.get_run_tags(ref),
        lambda: tracking.log_metrics(ref, {"loss": 1.0}),
        lambda: tracking.set_tags(ref, {"a": "b"}),
        lambda: tracking.finish_run(ref),
    ):
        with pytest.raises(RunRefError) as info:
            call()
        message = str(info.value)
        assert "0123abcd" in message and store in message and "MLFLOW_TRACKING_URI" in message
        assert "\n" not in message


def test_urllib3_retry_warnings_are_dropped_once_a_client_exists():
    import logging

    mlflow_client.client("sqlite:////tmp/unused-never-opened.db")
    pool = logging.getLogger("urllib3.connectionpool")
    retry = pool.makeRecord(
        pool.name, logging.WARNING, __file__, 1, "Retrying (%r) after %r", ("R", "e"), None
    )
    other = pool.makeRecord(pool.name, logging.WARNING, __file__, 1, "Connection pool is full", (), None)
    assert pool.filter(retry) is False and pool.filter(other) is True


@pytest.fixture
def http_status_server():
    """A local HTTP server answering every request with the status set in `state["status"]` (plain text)."""
    import http.server
    import threading

    state = {"status": 404, "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            state["hits"] += 1
            body = b"<html>not mlflow</html>"
            self.send_response(state["status"])
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815 - the http.server API

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_is_not_mlflow_or_refuses_auth_is_one_line_naming_uri_and_status(
    http_status_server, monkeypatch
):
    uri, state = http_status_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for status in (404, 401):
        state["status"] = status
        with pytest.raises(mlflow_client.TrackingServerError) as info:
            tracking.get_run_tags(RunRef("abc", "1", uri))
        message = str(info.value)
        assert f"{uri} answered HTTP {status}" in message and "MLFLOW_TRACKING_URI" in message
        assert "\n" not in message and "<html>" not in message


def test_a_server_answering_503_is_retried_then_reported_unreachable(http_status_server, monkeypatch):
    uri, state = http_status_server
    state["status"] = 503
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("SPHEREREID_MLFLOW_RETRIES", "3")
    sleeps: list[float] = []
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    with pytest.raises(TrackingUnavailableError, match="3 attempts"):
        tracking.get_run_tags(RunRef("abc", "1", uri))
    assert sleeps == [1.0, 2.0] and state["hits"] == 6  # 3 attempts x (1 request + MLflow's 1 retry)
