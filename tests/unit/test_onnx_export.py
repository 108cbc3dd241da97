"""ONNX export of the embedding chain: parity with PyTorch at batch sizes 1, 7 and 64, named failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures.deploy import CROP, STORED, random_tiny, synthetic_prepared, write_model_pt, write_params

from spherereid.data.image_chain import ImageChain
from spherereid.data.manifest import PreparedSet
from spherereid.deploy.commands import export as export_main
from spherereid.deploy.onnx_export import export_onnx
from spherereid.deploy.parity import ParityError, check_parity
from spherereid.evaluation.metrics import evaluate_features

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return synthetic_prepared(tmp_path_factory.mktemp("onnx"), test_identities=16, distractors=4)


def _by_hand(net, images: np.ndarray, flip: bool) -> np.ndarray:
    """The chain written out with torch ops: uint8 NHWC -> [0, 1] -> antialiased resize -> normalise ->
    net (+ net of the mirror) -> L2."""
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=CROP, mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        emb = net(x) + (net(x.flip(-1)) if flip else 0)
    return F.normalize(emb, dim=1).numpy()


def test_onnx_rows_equal_pytorch_at_batch_sizes_1_7_64_with_identical_rank1_and_map(prepared, tmp_path):
    import onnx
    import onnxruntime as ort

    net = random_tiny()
    chain = ImageChain(STORED, CROP, MEAN, STD, flip=True)
    path = export_onnx(net, chain, tmp_path / "model.onnx")

    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [*STORED, 3]
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch

    ps = PreparedSet(prepared)
    query, gallery = ps.split("query"), ps.split("gallery")
    images = np.concatenate([query.images, gallery.images])
    assert len(images) > 64  # batch 64 really batches, 7 leaves a remainder
    expected = _by_hand(net, images, flip=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = {}
    for size in (1, 7, 64):
        out = np.concatenate(
            [session.run(None, {"images": images[i : i + size]})[0] for i in range(0, len(images), size)]
        )
        cos = (out * expected).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(expected, axis=1)
        assert cos.min() >= 0.99999, size
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        rows[size] = out
    np.testing.assert_allclose(rows[1], rows[7], atol=1e-5)
    np.testing.assert_allclose(rows[1], rows[64], atol=1e-5)

    nq = len(query)
    labels = (query.pids, gallery.pids, query.camids, gallery.camids)
    ref = evaluate_features(expected[:nq], expected[nq:], *labels)
    got = evaluate_features(rows[7][:nq], rows[7][nq:], *labels)
    assert got.rank(1) == ref.rank(1) and got.mAP == ref.mAP

    report = check_parity(net=net, chain=chain, onnx_path=path, query=query, gallery=gallery)
    assert report.rows == len(images) and report.batch_sizes == (1, 7, 64)
    assert report.min_cosine >= 0.99999 and report.max_batch_difference <= 1e-5
    assert report.rank1_onnx == report.rank1_torch == ref.rank(1)
    assert report.map_onnx == report.map_torch == pytest.approx(ref.mAP, abs=1e-12)
    tags = report.tags()
    assert tags["onnx.parity.batch_sizes"] == "1,7,64" and float(tags["onnx.parity.min_cosine"]) >= 0.99999


def test_a_model_that_disagrees_fails_the_cosine_check_by_name(prepared, tmp_path):
    chain = ImageChain(STORED, CROP, flip=False)
    path = export_onnx(random_tiny(seed=1), chain, tmp_path / "other.onnx")
    ps = PreparedSet(prepared)
    with pytest.raises(ParityError, match=r"parity check 'cosine' failed at batch size 1: row \d+"):
        check_parity(
            net=random_tiny(seed=2),
            chain=chain,
            onnx_path=path,
            query=ps.split("query"),
            gallery=ps.split("gallery"),
        )


def test_export_command_from_a_local_model_pt(prepared, tmp_path, capsys):
    import onnxruntime as ort

    net = random_tiny(seed=3)
    model_pt = write_model_pt(net, tmp_path / "model.pt")
    params = write_params(tmp_path / "params.yaml", flip=False)
    out = tmp_path / "exported" / "model.onnx"
    argv = ["--model", str(model_pt), "--params", str(params), "--out", str(out), "--prepared", str(prepared)]
    assert export_main(argv) == 0
    printed = capsys.readouterr().out
    assert "parity" in printed and "uint8 (N, 40, 20, 3)" in printed
    images = np.asarray(PreparedSet(prepared).split("query").images)[:5]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    np.testing.assert_allclose(got, _by_hand(net, images, flip=False), atol=1e-5)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("nope/model.pt", "no such file"),
        ("3", "also pass --name"),
        ("models:/x@", "use models:/NAME@ALIAS or models:/NAME/VERSION"),
    ],
)
def test_export_command_bad_model_is_one_line(tmp_path, capsys, model, expected):
    assert export_main(["--model", model, "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and expected in err[-1]


@pytest.mark.slow
def test_resnet18_export_keeps_parity(prepared, tmp_path):
    from spherereid.modeling.net import ReIDNet

    torch.manual_seed(0)
    net = ReIDNet(backbone="resnet18", head="D", embedding_dim=64).eval()
    chain = ImageChain(STORED, CROP, flip=True)
    path = export_onnx(net, chain, tmp_path / "r18.onnx")
    ps = PreparedSet(prepared)
    report = check_parity(
        net=net, chain=chain, onnx_path=path, query=ps.split("query"), gallery=ps.split("gallery")
    )
    assert report.min_cosine >= 0.99999 and report.rank1_onnx == report.rank1_torch
