"""int8 ONNX export: the backbone is really quantized, parity figures are recomputed independently from the
written file, the budget refuses in one line and leaves nothing behind, and the CLI path end to end."""

from __future__ import annotations

import types

import numpy as np
import onnx
import pytest
from fixtures.deploy import CROP, STORED, random_tiny, synthetic_prepared, write_model_pt, write_params
from onnx import TensorProto

from spherereid.config import INT8_BUDGET_POINTS, ConfigError, RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.data.manifest import PreparedSet, SplitData
from spherereid.deploy.commands import export as export_main
from spherereid.deploy.int8_export import export_int8
from spherereid.deploy.int8_parity import check_int8_parity, top1_agreement
from spherereid.deploy.onnx_export import export_onnx
from spherereid.deploy.parity import ParityError, check_parity_rows
from spherereid.deploy.quantize import QuantizeError, calibration_images
from spherereid.deploy.speed import cpu_description
from spherereid.evaluation.metrics import evaluate_features

CHAIN = ImageChain(STORED, CROP, flip=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return synthetic_prepared(tmp_path_factory.mktemp("int8"), test_identities=16, distractors=4)


@pytest.fixture(scope="module")
def int8(prepared, tmp_path_factory):
    """fp32 export of an untrained tiny net with its parity rows, and its int8 export (budget wide open:
    the figures are what these tests check; the budget is checked on its own below)."""
    tmp = tmp_path_factory.mktemp("int8-model")
    fp32 = export_onnx(random_tiny(seed=4), CHAIN, tmp / "model.onnx")
    ps = PreparedSet(prepared)
    query, gallery = ps.split("query"), ps.split("gallery")
    _, rows = check_parity_rows(
        net=random_tiny(seed=4), chain=CHAIN, onnx_path=fp32, query=query, gallery=gallery
    )
    model = export_int8(fp32, tmp / "out" / "model.int8.onnx", prepared=ps, fp32_rows=rows, budget_points=100)
    return types.SimpleNamespace(
        fp32=fp32, rows=rows, model=model, query=query, gallery=gallery, train=ps.split("train")
    )


def _run(path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[
        0
    ]


def _producers(graph) -> dict:
    return {out: node for node in graph.node for out in node.output}


def test_every_conv_runs_on_int8_weights_and_uint8_activations_and_the_rest_stays_fp32(int8):
    graph = onnx.load(str(int8.model.path)).graph
    producer = _producers(graph)
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) >= 2
    for conv in convs:
        x, w = producer[conv.input[0]], producer[conv.input[1]]
        assert x.op_type == w.op_type == "DequantizeLinear", conv.name
        assert inits[w.input[0]].data_type == TensorProto.INT8  # int8 weights ...
        out_channels = inits[w.input[0]].dims[0]
        assert list(inits[w.input[1]].dims) == [out_channels]  # ... with one scale per output channel
        activation = producer[x.input[0]]
        assert activation.op_type == "QuantizeLinear"
        assert inits[activation.input[2]].data_type == TensorProto.UINT8  # uint8 activations
    weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    assert {n.op_type for n in graph.node if set(n.input) & weights} == {
        "Conv"
    }  # only Convs hold int8 weights
    (gemm, *_) = [n for n in graph.node if n.op_type == "Gemm"]  # the head, fp32 on fp32 inputs
    assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in gemm.input)
    (inp,), (out,) = graph.input, graph.output
    assert inp.type.tensor_type.elem_type == TensorProto.UINT8 and out.name == "embeddings"
    assert out.type.tensor_type.elem_type == TensorProto.FLOAT
    assert not list(int8.model.path.parent.glob(".int8-*"))  # the staging folder is gone


def test_parity_figures_are_those_of_the_written_file(int8):
    import onnxruntime as ort

    session = ort.InferenceSession(str(int8.model.path), providers=["CPUExecutionProvider"])
    images = np.concatenate([np.asarray(int8.query.images), np.asarray(int8.gallery.images)])
    got = np.concatenate(
        [session.run(None, {"images": images[i : i + 5]})[0] for i in range(0, len(images), 5)]
    )
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * int8.rows).sum(1)
    assert cos.min() > 0.99 and np.abs(got - int8.rows).max() > 1e-4  # close to fp32, yet really int8

    nq, q, g = len(int8.query), int8.query, int8.gallery
    labels = (q.pids, g.pids, q.camids, g.camids)
    fp32 = evaluate_features(int8.rows[:nq], int8.rows[nq:], *labels)
    mine = evaluate_features(got[:nq], got[nq:], *labels)
    p = int8.model.parity
    assert p.rows == len(images) and p.budget_points == 100
    assert p.rank1_fp32 == fp32.rank(1) and p.map_fp32 == pytest.approx(fp32.mAP, abs=1e-12)
    assert p.rank1_int8 == mine.rank(1) and p.map_int8 == pytest.approx(mine.mAP, abs=1e-6)
    assert p.map_points == pytest.approx(100 * (mine.mAP - fp32.mAP), abs=1e-4)
    same = [
        np.argmin(1 - got[nq:] @ got[i]) == np.argmin(1 - int8.rows[nq:] @ int8.rows[i]) for i in range(nq)
    ]
    assert p.top1_agreement == pytest.approx(np.mean(same))
    assert p.mean_cosine == pytest.approx(cos.mean(), abs=1e-6) and p.min_cosine == pytest.approx(
        cos.min(), abs=1e-6
    )

    s = int8.model.speed
    assert s.batch == min(64, len(images)) and s.repeats == 5
    assert s.fp32_images_per_s > 0 and s.int8_images_per_s > 0 and s.speedup > 0  # no timing asserted
    figures = int8.model.figures()
    assert figures["calibration_images"] == str(min(256, len(int8.train)))
    assert {"rank1_difference_points", "map_difference_points", "top1_agreement", "speedup", "cpu"} <= set(
        figures
    )


def test_the_budget_refuses_a_larger_difference_in_one_line_and_accepts_an_equal_one(int8):
    p = int8.model.parity
    worst = max(abs(p.rank1_points), abs(p.map_points))
    assert worst > 0  # this model's int8 ranking differs a little, so a budget below it must refuse
    args = dict(int8_path=int8.model.path, fp32_rows=int8.rows, query=int8.query, gallery=int8.gallery)
    with pytest.raises(ParityError) as err:
        check_int8_parity(**args, budget_points=worst / 2, fix=" (drop --quantize)")
    message = str(err.value)
    assert "\n" not in message and message.startswith("int8 parity budget exceeded: rank-1 ")
    assert f"the budget is {worst / 2} points: keep the fp32 model (drop --quantize)" in message
    assert check_int8_parity(**args, budget_points=worst).map_int8 == p.map_int8


def _export_int8_argv(model_pt, params, out, prepared, budget: str) -> list[str]:
    """`spherereid export` arguments for an int8 ONNX export of `model_pt` within `budget` points."""
    files = {"--model": model_pt, "--params": params, "--out": out, "--prepared": prepared}
    return [
        *(a for flag, path in files.items() for a in (flag, str(path))),
        "--quantize",
        "int8",
        "--int8-budget",
        budget,
    ]


def test_export_command_quantize_int8_end_to_end(prepared, int8, tmp_path, capsys):
    model_pt = write_model_pt(random_tiny(seed=4), tmp_path / "model.pt")  # the fixture's network
    params = write_params(tmp_path / "params.yaml", flip=True)
    out = tmp_path / "deploy" / "model.int8.onnx"
    argv = _export_int8_argv(model_pt, params, out, prepared, budget="100")
    assert export_main(argv) == 0
    printed = capsys.readouterr().out
    assert f"to {out} (int8)" in printed and '"rank1_torch"' in printed  # fp32's parity with PyTorch first
    int8_line = next(line for line in printed.splitlines() if line.startswith("  int8: "))
    assert (
        '"top1_agreement"' in int8_line
        and '"speedup"' in int8_line
        and '"budget_points": "100.0"' in int8_line
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.int8.onnx"]  # no fp32 file, no staging
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    images = np.asarray(PreparedSet(prepared).split("query").images)[:6]
    got = _run(out, images)
    assert (got * _run(int8.fp32, images)).sum(1).min() > 0.99  # close to fp32 ONNX
    np.testing.assert_allclose(got, _run(int8.model.path, images), atol=1e-6)  # = the library's int8 model


def test_export_command_refuses_a_budget_violation_in_one_line_and_writes_nothing(prepared, tmp_path, capsys):
    model_pt = write_model_pt(random_tiny(seed=4), tmp_path / "model.pt")
    params = write_params(tmp_path / "params.yaml", flip=True)
    out = tmp_path / "deploy" / "model.int8.onnx"
    argv = _export_int8_argv(model_pt, params, out, prepared, budget="0")
    assert export_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: int8 parity budget exceeded: rank-1 ")
    assert err[-1].endswith(
        "the budget is 0.0 points: keep the fp32 model (drop --quantize) or raise --int8-budget"
    )
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_quantize_without_a_prepared_set_is_one_line(tmp_path, capsys):
    model_pt = write_model_pt(random_tiny(), tmp_path / "model.pt")
    params = write_params(tmp_path / "params.yaml")
    argv = [
        "--model",
        str(model_pt),
        "--params",
        str(params),
        "--out",
        str(tmp_path / "m.onnx"),
        "--quantize",
        "int8",
    ]
    assert export_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: --quantize int8 needs --prepared DIR: calibration uses its train split and the parity budget "
        "its query and gallery"
    )
    assert not (tmp_path / "m.onnx").exists()


def _split(n: int) -> SplitData:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
    ids = np.arange(n, dtype=np.int64)
    return SplitData(images, ids, ids, ids, [f"{i}.jpg" for i in range(n)])


def test_calibration_images_are_spread_evenly_over_the_train_split():
    picked = calibration_images(_split(10), count=3)  # linspace(0, 9, 3) = 0, 4.5, 9 -> rows 0, 4, 9
    assert picked[:, 0, 0, 0].tolist() == [0, 4, 9] and picked.flags["C_CONTIGUOUS"]
    assert calibration_images(_split(5), count=256)[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(QuantizeError, match="train split is empty"):
        calibration_images(_split(0))


def test_top1_agreement_counts_queries_with_the_same_nearest_gallery_row():
    gallery = np.eye(3)
    a = np.vstack([[[1, 0.1, 0], [0, 1, 0.2]], gallery])  # nearest: 0, 1
    b = np.vstack([[[1, 0, 0.1], [0.3, 0, 1]], gallery])  # nearest: 0, 2
    assert top1_agreement(a, b, num_query=2) == 0.5
    assert top1_agreement(a, a, num_query=2) == 1.0


def test_cpu_description_names_the_cpu_and_whether_it_has_vnni(tmp_path):
    block = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 {}\n\nprocessor\t: 1\n"
    (tmp_path / "vnni").write_text(block.format("avx512f avx512_vnni"))
    (tmp_path / "plain").write_text(block.format("avx512f"))
    assert cpu_description(tmp_path / "vnni") == "AMD EPYC 9B14 (VNNI)"
    assert cpu_description(tmp_path / "plain") == "AMD EPYC 9B14 (no VNNI)"
    assert cpu_description(tmp_path / "missing") == "unknown CPU"


def test_register_config_int8_needs_the_onnx_export_and_a_known_choice():
    assert (
        RegisterConfig().onnx_quantize == "none" and RegisterConfig().onnx_int8_budget == INT8_BUDGET_POINTS
    )
    assert RegisterConfig(export_onnx=True, onnx_quantize="int8").onnx_quantize == "int8"
    with pytest.raises(ConfigError, match="needs register.export_onnx: true"):
        RegisterConfig(onnx_quantize="int8")
    with pytest.raises(ConfigError, match="must be one of none|int8, got 'int4'"):
        RegisterConfig(export_onnx=True, onnx_quantize="int4")
    with pytest.raises(ConfigError, match="onnx_int8_budget must be >= 0"):
        RegisterConfig(onnx_int8_budget=-1.0)


def test_version_tags_and_model_card_state_the_int8_figures():
    from pathlib import Path

    from spherereid.deploy.int8_export import Int8Model
    from spherereid.deploy.int8_parity import Int8Parity
    from spherereid.deploy.onnx_flavor import LoggedInt8, OnnxExport, usage_markdown
    from spherereid.deploy.parity import ParityReport
    from spherereid.deploy.speed import SpeedComparison

    parity = Int8Parity(1272, 0.917, 0.9132, 0.8569, 0.8578, 0.9887, 0.99959, 0.99867, 0.5)
    speed = SpeedComparison(47.5, 116.7, 2.46, 64, 5, "AMD EPYC (VNNI)")
    logged = LoggedInt8("models:/m-int8", Int8Model(Path("reg/model.int8.onnx"), parity, speed, 256))
    report = ParityReport(1272, (1, 7, 64), 0.9999999, 0.0, 0.917, 0.917, 0.8569, 0.8569)
    export = OnnxExport("models:/m-fp32", report, Path("reg/model.onnx"), CHAIN, logged)

    tags = export.version_tags()
    assert tags["onnx.model_uri"] == "models:/m-fp32" and tags["onnx.int8.model_uri"] == "models:/m-int8"
    assert float(tags["onnx.int8.rank1_difference_points"]) == pytest.approx(-0.38)
    assert float(tags["onnx.int8.map_difference_points"]) == pytest.approx(0.09)
    assert tags["onnx.int8.speedup"] == "2.46" and tags["onnx.int8.cpu"] == "AMD EPYC (VNNI)"
    assert tags["onnx.int8.top1_agreement"] == "0.9887" and tags["onnx.int8.calibration_images"] == "256"
    assert export.record()["int8"]["model_uri"] == "models:/m-int8"

    card = usage_markdown(export)
    assert "### int8 (CPU)" in card and "`models:/m-int8`" in card and "256 training images" in card
    assert "| rank-1 | 91.70 | 91.32 | -0.38 points |" in card
    assert "| mAP | 85.69 | 85.78 | +0.09 points |" in card
    assert "| images/s (batch 64) | 47.5 | 116.7 | 2.46x |" in card
    assert "Top-1 agreement with fp32: 0.9887" in card and "AMD EPYC (VNNI)" in card
    assert "without VNNI" in card and "within 0.5 points" in card
    assert "### int8" not in usage_markdown(OnnxExport("models:/m-fp32", report, Path("m.onnx"), CHAIN))
