"""The quality gate in the graph, under kfp.local: a model below the thresholds is not registered, and a
Markdown artifact says why (the passing branch: test_run_local.py). Also the evaluate outputs' verdict
against the register stage's own gate function."""

import json
from pathlib import Path

import pytest
from fixtures.tiny_params import tiny_params

from spherereid.config import RegisterConfig
from spherereid.stages.gate import refusal_markdown, verdict

ROOT = Path(__file__).resolve().parents[2]


def test_verdict_is_the_registry_gate():
    cfg = RegisterConfig(min_rank1=0.5, min_map=0.3)
    assert verdict({"rank1": 0.6, "mAP": 0.3}, cfg) == (
        0.6,
        0.3,
        "passed",
        "quality gate passed (rank1 0.6000 >= 0.5000, mAP 0.3000 >= 0.3000)",
    )
    assert verdict({"rank1": 0.4, "mAP": float("nan")}, cfg)[2:] == (
        "failed",
        "quality gate failed: rank1 0.4000 < min_rank1 0.5000; mAP nan < min_map 0.3000",
    )
    text = refusal_markdown(name="spherereid-x", rank1=0.4, m_ap=0.2, reason="because", register=cfg)
    assert "| rank-1 | 0.4000 | 0.5000 |" in text and "| mAP | 0.2000 | 0.3000 |" in text


def _files(run_dir: Path, task: str) -> list[Path]:
    return sorted(p for p in run_dir.rglob("executor_output.json") if p.parent.name == task)


@pytest.mark.slow
def test_a_failing_gate_skips_register_and_says_why(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pipeline.run_local import run_local

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("KFP_RUN_ID", "local-gate-run")
    run_local(out_dir=tmp_path / "out", params_path=tiny_params(tmp_path))
    (run_dir,) = (tmp_path / "out" / "kfp").iterdir()
    assert _files(run_dir, "register") == [] and (run_dir / "register").exists() is False
    (gate_out,) = _files(run_dir, "gate-report")
    report = json.loads(gate_out.read_text())["artifacts"]["report"]["artifacts"][0]
    text = Path(report["uri"]).read_text()
    assert text.startswith("# Not registered: spherereid-synthetic\n\nquality gate failed: rank1 ")
    assert "< min_rank1 1.0000" in text and "| rank-1 |" in text

    (ev_out,) = _files(run_dir, "evaluate")
    params = json.loads(ev_out.read_text())["parameterValues"]
    assert params["gate"] == "failed" and params["gate_reason"] in text
    assert 0.0 <= params["rank1"] < 1.0

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("spherereid-synthetic").experiment_id])
    assert run.info.status == "FINISHED"  # closed by the refusal branch, not left RUNNING
    assert run.data.tags["quality_gate"] == "failed" and run.data.tags["kfp_run_id"] == "local-gate-run"
    assert client.search_registered_models() == []  # nothing registered, no alias moved
