"""Raw data for a pipeline run: a local folder, a DVC repo at a revision (commit + hash), or generated."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures.tiny_params import SMALLEST_SYNTHETIC

from spherereid.config import SyntheticConfig
from spherereid.stages.raw_source import RawSourceError, resolve_raw

BIN = Path(sys.executable).parent


def _run(cwd: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def data_repo(tmp_path_factory) -> Path:
    """A git + DVC repo with a local remote: tag v1 has data/raw/foo/a.txt, HEAD also has b.txt."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("datarepo")
    dvc = str(BIN / "dvc")
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "t@example.com")
    _run(repo, "git", "config", "user.name", "t")
    _run(repo, dvc, "init", "-q")
    _run(repo, dvc, "config", "core.analytics", "false")
    _run(repo, dvc, "remote", "add", "-d", "store", str(tmp_path_factory.mktemp("remote")))
    (repo / "data/raw/foo").mkdir(parents=True)
    (repo / "data/raw/foo/a.txt").write_text("first\n")
    _run(repo, dvc, "add", "-q", "data/raw/foo")
    _run(repo, dvc, "push", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "v1")
    _run(repo, "git", "tag", "v1")
    (repo / "data/raw/foo/b.txt").write_text("second\n")
    _run(repo, dvc, "add", "-q", "data/raw/foo")
    _run(repo, dvc, "push", "-q")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "v2")
    return repo


def test_dvc_fetch_takes_the_requested_revision_and_records_commit_and_hash(data_repo, tmp_path):
    got = resolve_raw(dataset="foo", work_dir=tmp_path, data_repo=str(data_repo), data_rev="v1")
    assert sorted(p.name for p in got.path.iterdir()) == ["a.txt"]
    assert (got.path / "a.txt").read_text() == "first\n"
    assert got.origin == "dvc"
    assert got.revision == _run(data_repo, "git", "rev-list", "-n1", "v1")
    dvc_file = yaml.safe_load(_run(data_repo, "git", "show", "v1:data/raw/foo.dvc"))
    assert got.data_hash == dvc_file["outs"][0]["md5"]

    head = resolve_raw(dataset="foo", work_dir=tmp_path / "head", data_repo=f"file://{data_repo}")  # cloned

    assert sorted(p.name for p in head.path.iterdir()) == ["a.txt", "b.txt"]
    assert head.data_hash != got.data_hash


def test_dvc_missing_path_names_the_source(data_repo, tmp_path):
    with pytest.raises(RawSourceError, match=r"@v1:data/raw/bar: not found"):
        resolve_raw(dataset="bar", work_dir=tmp_path, data_repo=str(data_repo), data_rev="v1")


def test_local_root_and_missing_source(tmp_path):
    (tmp_path / "raw" / "market1501").mkdir(parents=True)
    got = resolve_raw(dataset="market1501", work_dir=tmp_path / "w", raw_root=str(tmp_path / "raw"))
    assert got.path == tmp_path / "raw" / "market1501" and got.origin == "local"
    with pytest.raises(RawSourceError, match="raw dataset folder not found"):
        resolve_raw(dataset="duke", work_dir=tmp_path / "w", raw_root=str(tmp_path / "raw"))
    with pytest.raises(RawSourceError, match="no raw data source; pass raw_root"):
        resolve_raw(dataset="market1501", work_dir=tmp_path / "w")


TINY_SYNTHETIC = SyntheticConfig(**SMALLEST_SYNTHETIC)


def test_synthetic_is_generated_when_no_source_is_given(tmp_path):
    cfg = TINY_SYNTHETIC
    got = resolve_raw(dataset="synthetic", work_dir=tmp_path, synthetic=cfg)
    assert got.origin == "generated" and got.revision == "generated:seed=0"
    names = {p.name for p in got.path.iterdir()}
    assert {"bounding_box_train", "bounding_box_test", "query"} <= names
    assert len(list((got.path / "bounding_box_train").glob("*.jpg"))) == 3 * 2 * 1


def test_synthetic_b_is_the_generators_domain_b_as_dvcs_synthesize_stage_draws_it(tmp_path):
    """resolve_raw("synthetic_b") == `python -m spherereid.stages.synthesize --domain b`, byte for byte."""
    import dataclasses
    import hashlib

    from spherereid.stages import synthesize

    cfg = TINY_SYNTHETIC
    got = resolve_raw(dataset="synthetic_b", work_dir=tmp_path / "kfp", synthetic=cfg)
    assert got.origin == "generated" and got.revision == "generated:seed=0,domain=b"
    synthesize.run(synthetic=dataclasses.replace(cfg, domain="b"), out_dir=tmp_path / "dvc")
    a = resolve_raw(dataset="synthetic", work_dir=tmp_path / "a", synthetic=cfg).path

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))
        }

    assert digest(got.path) == digest(tmp_path / "dvc") and len(digest(got.path)) > 0
    assert digest(got.path) != digest(a)  # another camera network than synthetic's
