"""`python -m pipeline submit`: a clear one-line error for an unreachable host; the run gets params.yaml."""

import socket
from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:0.1.0"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_unreachable_host_is_one_line_naming_it(capsys):
    host = f"http://127.0.0.1:{_closed_port()}"
    rc = main(["submit", "--host", host, "--image", IMAGE, "--params", str(ROOT / "params.yaml")])
    assert rc == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"error: cannot reach Kubeflow Pipelines at {host} (Connection refused)")
    assert "--host" in captured.err


def test_missing_host_and_mutable_image_are_refused_before_connecting(capsys, monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert main(["submit", "--image", IMAGE, "--params", str(ROOT / "params.yaml")]) == 2
    assert "no Kubeflow Pipelines host given" in capsys.readouterr().err
    monkeypatch.setattr("kfp.Client", lambda **_: pytest.fail("must not connect with a mutable image"))
    assert main(["submit", "--host", "http://h:1", "--image", "spherereid:latest"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mutable tag ':latest'" in err


def test_submit_sends_the_compiled_package_and_params_yaml_arguments(capsys, monkeypatch):
    seen = {}

    class FakeClient:
        def __init__(self, host):
            seen["host"] = host

        def create_run_from_pipeline_package(self, path, **kwargs):
            seen["package"] = list(yaml.safe_load_all(Path(path).read_text()))
            seen.update(kwargs)
            return type("Run", (), {"run_id": "run-123"})()

    monkeypatch.setattr("kfp.Client", FakeClient)
    params_file = str(ROOT / "params.yaml")
    argv = [
        "submit",
        "--host",
        "http://kfp.example:8080",
        "--image",
        IMAGE,
        "--params",
        params_file,
        "--data-repo",
        "https://git.example/data.git",
        "--data-rev",
        "v1.2",
        "--run-name",
        "nightly",
        "--no-cache",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "submitted run run-123 to http://kfp.example:8080"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    args = seen["arguments"]
    assert args["datasets"] == params["datasets"]
    assert args["data_repo"] == "https://git.example/data.git" and args["data_rev"] == "v1.2"
    for section in ("data", "model", "train", "register"):
        assert args[section] == params[section]
    assert (seen["run_name"], seen["experiment_name"], seen["enable_caching"]) == (
        "nightly",
        "spherereid",
        False,
    )
    spec = seen["package"][0]
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {IMAGE}


def test_a_refused_run_is_one_line(capsys, monkeypatch):
    from kfp_server_api.exceptions import ApiException

    class RefusingClient:
        def __init__(self, host):
            pass

        def create_run_from_pipeline_package(self, path, **kwargs):
            raise ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr("kfp.Client", RefusingClient)
    rc = main(
        [
            "submit",
            "--host",
            "http://kfp.example:8080",
            "--image",
            IMAGE,
            "--params",
            str(ROOT / "params.yaml"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err == "error: Kubeflow Pipelines at http://kfp.example:8080 refused the run: 403 Forbidden\n"


@pytest.mark.parametrize("rev", ["", "main", "HEAD", "master"])
def test_a_data_repo_without_a_pinned_revision_is_refused_before_connecting(rev, capsys, monkeypatch):
    """preprocess is cached on (data_repo, data_rev): a moving revision would be served stale data."""
    monkeypatch.setattr("kfp.Client", lambda **_: pytest.fail("must not connect with a moving data revision"))
    argv = [
        "submit",
        "--host",
        "http://h:1",
        "--image",
        IMAGE,
        "--params",
        str(ROOT / "params.yaml"),
        "--data-repo",
        "https://git.example/data.git",
        "--data-rev",
        rev,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "https://git.example/data.git" in err and "pin --data-rev" in err


def test_a_host_that_is_not_the_kfp_api_is_one_line_without_tracebacks(capsys, monkeypatch):
    """An HTTP server that answers 404 (a wrong port, the UI's path...): kfp.Client logs a traceback per
    healthz attempt on the root logger; the user sees one line naming the host and the HTTP status."""
    import http.server
    import threading

    import kfp.client.client

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(kfp.client.client.time, "sleep", lambda _: None)  # its 5 healthz attempts, 5 s apart
    host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        rc = main(["submit", "--host", host, "--image", IMAGE, "--params", str(ROOT / "params.yaml")])
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: cannot reach Kubeflow Pipelines at {host} (HTTP 404 Not Found")
