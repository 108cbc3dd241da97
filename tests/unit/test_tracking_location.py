"""Which repository's store a stage logs to (tracking.client.repo_root): a DVC experiment's temporary
workspace (`dvc exp run --queue` / `--temp`: `<repo>/.dvc/tmp/exps/[standalone/]tmpXXXX`, deleted after
the run) logs to the repository that owns that .dvc, never to its own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from spherereid.tracking.client import TrackingLocationError, repo_root, tracking_uri


def _workspace(folder: Path) -> Path:
    """A folder that looks like a checkout of the project: params.yaml and .git."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text("datasets: [synthetic]\n")
    (folder / ".git").mkdir(exist_ok=True)
    return folder


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_BASELINE_REV", "DVC_EXP_NAME"):
        monkeypatch.delenv(name, raising=False)
    root = _workspace(tmp_path / "repo")
    (root / ".dvc" / "tmp").mkdir(parents=True)
    return root


def test_an_ordinary_checkout_is_its_own_root(repo):
    (repo / "outputs" / "synthetic").mkdir(parents=True)
    assert repo_root(repo / "outputs" / "synthetic") == repo


@pytest.mark.parametrize("inside", ["exps/tmpg818vbz9", "exps/standalone/tmp3k1x0q2a"])
def test_a_queued_or_temp_experiment_workspace_resolves_to_the_repository_owning_the_dvc_folder(repo, inside):
    work = _workspace(repo / ".dvc" / "tmp" / inside)
    (work / "outputs").mkdir()
    assert repo_root(work) == repo
    assert repo_root(work / "outputs") == repo


def test_the_default_uri_in_a_queued_workspace_is_the_repository_store(repo, monkeypatch):
    work = _workspace(repo / ".dvc" / "tmp" / "exps" / "tmpabc")
    monkeypatch.chdir(work)
    assert tracking_uri() == f"sqlite:///{repo / 'mlflow.db'}"


def test_a_set_tracking_uri_is_used_as_given_even_in_a_temporary_workspace(repo, monkeypatch):
    work = _workspace(repo / ".dvc" / "tmp" / "exps" / "tmpabc")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


def test_dvc_root_names_the_parent_repository_of_a_workspace_elsewhere(repo, tmp_path, monkeypatch):
    """DVC sets DVC_ROOT to the parent repository for a queued experiment's stages (and the baseline
    revision in DVC_EXP_BASELINE_REV); a temporary copy outside .dvc/tmp/exps follows it too."""
    work = _workspace(tmp_path / "elsewhere" / "tmpxyz")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    assert repo_root(work) == repo


def test_a_workspace_experiment_stays_in_its_repository(repo, monkeypatch):
    """`dvc exp run` without --queue runs in the workspace: DVC_ROOT is the workspace itself."""
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    assert repo_root(repo) == repo


def test_an_unresolvable_temporary_workspace_is_one_line_naming_mlflow_tracking_uri(tmp_path, monkeypatch):
    """The folder above .dvc/tmp/exps is no project checkout (no params.yaml, no .git) and DVC_ROOT is
    unset: refuse rather than log into a folder DVC deletes after the run."""
    for name in ("DVC_ROOT", "DVC_EXP_BASELINE_REV", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    work = _workspace(tmp_path / "bare" / ".dvc" / "tmp" / "exps" / "tmpq")
    with pytest.raises(TrackingLocationError) as err:
        repo_root(work)
    message = str(err.value)
    assert "\n" not in message
    assert str(work) in message and "MLFLOW_TRACKING_URI" in message


def test_dvc_root_pointing_into_a_temporary_workspace_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work = _workspace(tmp_path / "bare" / ".dvc" / "tmp" / "exps" / "tmpq")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    monkeypatch.setenv("DVC_ROOT", str(work))
    with pytest.raises(TrackingLocationError, match="MLFLOW_TRACKING_URI"):
        repo_root(work)
