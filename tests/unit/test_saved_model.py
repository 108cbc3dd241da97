"""training/saved_model.py: each saved format (model.pt; the logged pyfunc's config.json + weights.pt) goes
writer -> reader unchanged, a file missing a key is refused in one line naming the file and the fix, the
logged weights' sha256 is checked on load, older pyfunc versions still load, and no other file of the
package spells the formats' keys.

What the keep-it-kept scan counts: a string constant (not a docstring) of model/spherereid, components/ or
pipeline/ outside saved_model.py whose value is one of SCANNED, the keys and file names that mean the
saved formats alone. Not scanned, because other contracts spell the same word: "num_classes" (also
dataset.json's and the training checkpoint's key), "chain" (also the gallery index's), the artifact names
"config"/"weights" and the older versions' "height"/"width".
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from test_artifacts import _literals  # the one string-literal scan (docstrings excluded)

from spherereid.data.image_chain import ImageChain
from spherereid.modeling.net import ReIDNet
from spherereid.training import checkpoint, saved_model
from spherereid.training.saved_model import SavedModelError, WeightsMismatch

ROOT = Path(__file__).resolve().parents[2]
HOME = "model/spherereid/training/saved_model.py"
SCANNED = {
    saved_model.CONSTRUCTOR_KEY: "CONSTRUCTOR_KEY",
    saved_model.STATE_DICT_KEY: "STATE_DICT_KEY",
    saved_model.EMBEDDING_DIM_KEY: "EMBEDDING_DIM_KEY",
    saved_model.WEIGHTS_SHA_KEY: "WEIGHTS_SHA_KEY",
    saved_model.CONFIG_FILE: "CONFIG_FILE",
    saved_model.WEIGHTS_FILE: "WEIGHTS_FILE",
}
ELSEWHERE = {
    ("model/spherereid/modeling/backbones.py", "state_dict"): "pretrained checkpoints of other projects",
    ("model/spherereid/modeling/net.py", "embedding_dim"): "ReIDNet's keyword argument (constructor_args)",
}
CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True, precision="fp32")
X = torch.randn(2, 3, 32, 16, generator=torch.Generator().manual_seed(1))


def _net(seed: int = 0) -> ReIDNet:
    torch.manual_seed(seed)
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8, dropout=0.5, pretrained="none")
    with torch.no_grad():  # non-trivial BatchNorm statistics: a lost buffer would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
    return net.eval()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# model.pt


def test_model_pt_goes_from_writer_to_reader_unchanged_in_the_documented_layout(tmp_path):
    net = _net()
    saved_model.save_model(net, 7, tmp_path / "model.pt")
    back = saved_model.load_model(tmp_path / "model.pt")
    assert not back.training and back.constructor_args == net.constructor_args
    with torch.no_grad():
        assert torch.equal(back(X), net(X))
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert list(raw) == ["constructor", "state_dict", "num_classes"] and raw["num_classes"] == 7
    # byte for byte the documented dict (DEVELOPERS.md) as the train stage always saved it: a model.pt
    # of the same training keeps its md5
    documented = {"constructor": dict(net.constructor_args), "state_dict": net.state_dict(), "num_classes": 7}
    checkpoint.save_atomic(documented, tmp_path / "documented" / "model.pt")
    assert (tmp_path / "model.pt").read_bytes() == (tmp_path / "documented" / "model.pt").read_bytes()


def test_a_file_that_is_not_a_model_pt_is_refused_naming_the_file_the_missing_keys_and_the_fix(tmp_path):
    checkpoint.save_atomic({"epoch": 1}, tmp_path / "last.pt")
    with pytest.raises(SavedModelError) as exc:
        saved_model.load_model(tmp_path / "last.pt")
    assert _one_line(exc) == (
        f"{tmp_path / 'last.pt'}: not a train-stage model file (no constructor, state_dict); give the "
        "model.pt the train stage wrote (not a checkpoint), or train again"
    )
    net = _net()
    checkpoint.save_atomic({"constructor": dict(net.constructor_args)}, tmp_path / "half.pt")
    with pytest.raises(
        checkpoint.CheckpointError, match=r"half.pt: not a train-stage model file \(no state_dict\)"
    ):
        saved_model.load_model(tmp_path / "half.pt")


# the logged pyfunc's config.json + weights.pt


def test_pyfunc_artifacts_go_from_writer_to_reader_unchanged_with_the_weights_hash_recorded(tmp_path):
    net = _net()
    artifacts = saved_model.write_pyfunc_artifacts(net, 8, CHAIN, tmp_path)
    assert artifacts == {"config": str(tmp_path / "config.json"), "weights": str(tmp_path / "weights.pt")}
    config = json.loads((tmp_path / "config.json").read_text())
    assert list(config) == ["constructor", "embedding_dim", "chain", "weights_sha256"]
    assert config["weights_sha256"] == hashlib.sha256((tmp_path / "weights.pt").read_bytes()).hexdigest()
    back = saved_model.load_pyfunc(artifacts, what="models:/m/1")
    assert back.chain == CHAIN and back.served_chain() == CHAIN and back.input_size == (32, 16)
    assert back.embedding_dim == 8 and back.weights == tmp_path / "weights.pt"
    with torch.no_grad():
        assert not back.net.training and torch.equal(back.net(X), net(X))


@pytest.mark.parametrize("key", ["constructor", "embedding_dim", "chain"])
def test_a_pyfunc_config_missing_a_key_is_refused_naming_the_file_the_key_and_the_fix(tmp_path, key):
    artifacts = saved_model.write_pyfunc_artifacts(_net(), 8, CHAIN, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(SavedModelError) as exc:
        saved_model.load_pyfunc(artifacts, what="models:/m/1")
    assert _one_line(exc) == (
        f"{tmp_path / 'config.json'}: not a SphereReID pyfunc config (no {key}); "
        "register it again from its model.pt"
    )


def test_a_model_without_the_pyfunc_artifacts_or_with_a_broken_config_is_refused_in_one_line(tmp_path):
    artifacts = saved_model.write_pyfunc_artifacts(_net(), 8, CHAIN, tmp_path)
    with pytest.raises(SavedModelError) as exc:
        saved_model.load_pyfunc({"config": artifacts["config"]}, what="models:/m/1")
    assert _one_line(exc) == (
        "models:/m/1: not a SphereReID pyfunc model (artifacts: ['config'], no weights); "
        "register it again from its model.pt"
    )
    (tmp_path / "config.json").write_text('{"constructor": ')
    with pytest.raises(SavedModelError, match=r"config.json: not valid JSON \(") as exc:
        saved_model.load_pyfunc(artifacts, what="models:/m/1")
    assert _one_line(exc).endswith("; register it again from its model.pt")


def test_weights_that_do_not_hash_to_the_recorded_sha256_are_refused_naming_both_hashes(tmp_path):
    artifacts = saved_model.write_pyfunc_artifacts(_net(), 8, CHAIN, tmp_path)
    recorded = json.loads((tmp_path / "config.json").read_text())["weights_sha256"]
    torch.save(_net(seed=1).state_dict(), tmp_path / "weights.pt")  # a valid state_dict, other weights
    actual = hashlib.sha256((tmp_path / "weights.pt").read_bytes()).hexdigest()
    with pytest.raises(WeightsMismatch) as exc:
        saved_model.load_pyfunc(artifacts, what="models:/m/1")
    assert _one_line(exc).startswith(
        f"{tmp_path / 'weights.pt'}: sha256 {actual} differs from {recorded} recorded in config.json"
    )


def test_older_versions_load_without_a_weights_hash_with_a_warning_and_without_a_chain_by_input_size(
    tmp_path, caplog
):
    net = _net()
    artifacts = saved_model.write_pyfunc_artifacts(net, 8, CHAIN, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    # as logged by the code of 2026-11-28 (3d5d0d9): the input size, no chain, no weights hash
    older = {"constructor": config["constructor"], "height": 32, "width": 16, "embedding_dim": 8}
    (tmp_path / "config.json").write_text(json.dumps(older))
    with caplog.at_level(logging.WARNING, logger="spherereid.training.saved_model"):
        back = saved_model.load_pyfunc(artifacts, what="models:/m/1")
    assert "logged without a weights sha256" in caplog.text
    assert back.chain is None and back.input_size == (32, 16)
    with torch.no_grad():
        assert torch.equal(back.net(X), net(X))
    with pytest.raises(SavedModelError) as exc:
        back.served_chain()
    assert _one_line(exc) == (
        f"{tmp_path / 'config.json'}: no 'chain' (logged before the evaluated chain was recorded), so it "
        "cannot be served as evaluated; register it again from its model.pt"
    )


# keep it kept


def spelled_out(root: Path) -> list[str]:
    """Each string constant under `root`'s library, components and pipeline that spells a saved-format key
    outside the saved-model module (and not listed in ELSEWHERE)."""
    hits = []
    for folder in ("model/spherereid", "components", "pipeline"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for line, value in _literals(path) if rel != HOME else []:
                if value in SCANNED and (rel, value) not in ELSEWHERE:
                    hits.append(f"{rel}:{line}: {value!r} spells saved_model.{SCANNED[value]}")
    return hits


def test_no_file_but_the_saved_model_module_spells_a_key_of_the_saved_formats():
    assert (ROOT / HOME).is_file() and spelled_out(ROOT) == []


def test_the_scan_finds_a_key_spelled_out_and_passes_prose_and_docstrings(tmp_path):
    lib = tmp_path / "model" / "spherereid" / "deploy"
    lib.mkdir(parents=True)
    (lib / "x.py").write_text(
        '"""Reads config.json and the state_dict."""\n'
        'def f(saved):\n    return saved["state_dict"], saved.get("weights_sha256")\n'
        'HELP = "the model.pt holds a state_dict"\n'
    )
    assert spelled_out(tmp_path) == [
        "model/spherereid/deploy/x.py:3: 'state_dict' spells saved_model.STATE_DICT_KEY",
        "model/spherereid/deploy/x.py:3: 'weights_sha256' spells saved_model.WEIGHTS_SHA_KEY",
    ]
