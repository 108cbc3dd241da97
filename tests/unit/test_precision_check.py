"""The evaluate stage's precision check: with a bf16 chain, precision_check.json holds the fp32 rank-1 and
mAP of the same query/gallery (equal to an fp32 extraction and ranking done here), the bf16 ones and their
difference; with an fp32 chain, the same figures twice. The chain's own figures are evaluate's ranking,
not a second one. metrics.json is not touched by it."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch

from spherereid.config import EvaluateConfig
from spherereid.contracts import PRECISION_CHECK_FILE
from spherereid.data.image_chain import ImageChain
from spherereid.data.manifest import SplitData
from spherereid.data.transforms import EvalTransform
from spherereid.evaluation.measure import measure, rank_under_protocol
from spherereid.evaluation.metrics import evaluate_features
from spherereid.evaluation.protocols.standard import StandardProtocol
from spherereid.inference import extract_features, extract_splits
from spherereid.modeling.net import ReIDNet
from spherereid.stages import evaluate
from spherereid.stages.precision_check import CheckedSet, read_precision_check
from spherereid.training import saved_model

CPU = torch.device("cpu")
CFG = EvaluateConfig(max_rank=5, batch_size=8)
TINY = {"backbone": "tiny", "head": "D", "embedding_dim": 16, "last_stride": 1, "dropout": 0.5}
MARKET = {"name": "market"}


def _split(rng: np.random.Generator, pids: list[int], camid: int) -> SplitData:
    """Random 36x18 images; the images of one identity share a base pattern (so ranking is not chance)."""
    base = np.random.default_rng(7).integers(0, 256, size=(max(pids) + 1, 36, 18, 3))
    noise = rng.integers(-40, 41, size=(len(pids), 36, 18, 3))
    images = np.clip(base[pids] + noise, 0, 255).astype(np.uint8)
    ids = np.asarray(pids, dtype=np.int64)
    return SplitData(images, ids, np.full(len(pids), camid, dtype=np.int64), ids, ["toy"] * len(pids))


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    torch.manual_seed(0)
    net = ReIDNet(**TINY, pretrained="none")
    path = tmp_path_factory.mktemp("train") / "model.pt"
    saved_model.save_model(net, 7, path)
    return path


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(0)
    return _split(rng, [0, 1, 2, 3, 4, 5], camid=0), _split(rng, [0, 1, 2, 3, 4, 5] * 3 + [6, 7], camid=1)


def _independent(model_pt, query, gallery, precision: str) -> tuple[dict[str, float], np.ndarray]:
    """rank-1 and mAP from features extracted here (not through the stage), and the query features."""
    net = saved_model.load_model(model_pt)
    tf = EvalTransform(size=(32, 16))
    qf, gf = (
        extract_features(net, s.images, tf, batch_size=8, precision=precision, progress=False)
        for s in (query, gallery)
    )
    ranked = evaluate_features(qf, gf, query.pids, gallery.pids, query.camids, gallery.camids, max_rank=5)
    got = ranked.to_dict()
    return {"rank1": got["rank1"], "mAP": got["mAP"]}, qf


def _ranking_calls(fn: Callable[[], object]) -> int:
    """How many chunks of queries the ranking engine ranks (StandardProtocol.rank_chunk calls) while fn()
    runs: observed through sys.setprofile, nothing replaced."""
    calls = 0
    target = StandardProtocol.rank_chunk.__code__

    def observe(frame, event, _arg):
        nonlocal calls
        calls += event == "call" and frame.f_code is target

    previous = sys.getprofile()
    sys.setprofile(observe)
    try:
        fn()
    finally:
        sys.setprofile(previous)
    return calls


def _evaluated(model_pt, splits, precision: str):
    """What evaluate has before the check: the chain, its features and its ranking of them."""
    query, gallery = splits
    chain = ImageChain(stored_size=(36, 18), input_size=(32, 16), precision=precision)
    load = partial(saved_model.load_model, model_pt)
    qf, gf = extract_splits(load, chain, query, gallery, CFG.batch_size, CPU)
    return chain, qf, gf, measure(MARKET, qf, gf, query, gallery, CFG)


def _check(tmp_path, model_pt, splits, precision: str) -> dict:
    chain, _, _, measured = _evaluated(model_pt, splits, precision)
    checked = CheckedSet(MARKET, *splits, "toy", measured.plain)
    evaluate.check_precision(tmp_path, model_pt, chain, checked, CFG, CPU)
    saved = json.loads((tmp_path / PRECISION_CHECK_FILE).read_text())
    assert read_precision_check(tmp_path / PRECISION_CHECK_FILE) == saved
    assert saved["precision"] == precision and saved["protocol"] == "market" and saved["source"] == "toy"
    return saved


def test_a_bf16_chain_records_the_fp32_figures_of_an_independent_fp32_extraction(tmp_path, model_pt, splits):
    saved = _check(tmp_path, model_pt, splits, "bf16")
    fp32, qf32 = _independent(model_pt, *splits, "fp32")
    bf16, qf16 = _independent(model_pt, *splits, "bf16")
    assert not np.array_equal(qf32, qf16)  # the two extractions really ran in different precisions
    assert 0.0 < fp32["mAP"] < 1.0 and 0.0 < bf16["mAP"] <= 1.0
    for key in ("rank1", "mAP"):
        assert saved["fp32"][key] == pytest.approx(fp32[key], abs=1e-12)
        assert saved["bf16"][key] == pytest.approx(bf16[key], abs=1e-12)
        assert saved["difference"][key] == pytest.approx(bf16[key] - fp32[key], abs=1e-12)


def test_an_fp32_chain_records_its_own_figures_as_the_reference(tmp_path, model_pt, splits):
    saved = _check(tmp_path, model_pt, splits, "fp32")
    fp32, _ = _independent(model_pt, *splits, "fp32")
    assert saved["fp32"] == pytest.approx(fp32, abs=1e-12)
    assert saved["difference"] == {"rank1": 0.0, "mAP": 0.0}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_check_reuses_evaluates_ranking(tmp_path, model_pt, splits, precision):
    """The chain's figures are evaluate's own ranking (no chunk ranked again; an fp32 chain ranks nothing)
    and equal, exactly, what ranking the same features a second time gave before."""
    chain, qf, gf, measured = _evaluated(model_pt, splits, precision)
    query, gallery = splits
    checked = CheckedSet(MARKET, query, gallery, "toy", measured.plain)
    one_ranking = _ranking_calls(lambda: rank_under_protocol(MARKET, qf, gf, query, gallery, CFG))
    assert one_ranking >= 1
    calls = _ranking_calls(lambda: evaluate.check_precision(tmp_path, model_pt, chain, checked, CFG, CPU))
    assert calls == (0 if precision == "fp32" else one_ranking)  # bf16: the fp32 features only
    saved = json.loads((tmp_path / PRECISION_CHECK_FILE).read_text())
    second_pass = rank_under_protocol(MARKET, qf, gf, query, gallery, CFG).to_dict()
    assert saved[precision] == {"rank1": second_pass["rank1"], "mAP": second_pass["mAP"]}


def test_an_absent_or_foreign_file_reads_as_no_check(tmp_path):
    assert read_precision_check(tmp_path / PRECISION_CHECK_FILE) is None
    (tmp_path / PRECISION_CHECK_FILE).write_text('{"rank1": 0.5}')
    assert read_precision_check(tmp_path / PRECISION_CHECK_FILE) is None
