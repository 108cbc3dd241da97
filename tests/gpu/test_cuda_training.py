"""On a GPU (skipped without CUDA): bf16 training learns, CUDA graphs match eager, resume after a kill,
bf16 extraction keeps the fp32 mAP. benchmarks/gpu_check.sh runs these with the benchmarks."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# The CPU quickstart's network (params.yaml) on the synthetic set, at its stored and input sizes.
MODEL = dict(backbone="resnet18", head="D", embedding_dim=256, last_stride=1, dropout=0.5, pretrained="none")
LOSS = dict(type="sphere", scale=14.0, margin=0.0)
SAMPLER = dict(p=16, k=4, batch_size=64)
OPTIM = dict(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.99), eps=1e-8)
SCHEDULE = dict(warmup_start_lr=5e-5, warmup_epochs=2, milestones=(20,), gamma=0.1, step_per="epoch")
EPOCHS = 12


@pytest.fixture(scope="module")
def splits():
    from spherereid.data.synthetic_arrays import synthetic_splits

    return synthetic_splits()


def _config(epochs: int):
    """The FitConfig of these checks: bf16 with CUDA graphs on cuda, the synthetic set's sizes."""
    from spherereid.config import (
        LossConfig,
        ModelConfig,
        OptimConfig,
        SamplerConfig,
        ScheduleConfig,
        TrainConfig,
        TransformConfig,
    )
    from spherereid.training.trainer import FitConfig

    return FitConfig(
        model=ModelConfig(**MODEL),
        loss=LossConfig(**LOSS),
        sampler=SamplerConfig(**SAMPLER),
        optim=OptimConfig(**OPTIM),
        schedule=ScheduleConfig(**SCHEDULE),
        train=TrainConfig(epochs=epochs, device="cuda", precision="bf16", cuda_graphs=True),
        transform=TransformConfig(
            resize_height=144, resize_width=72, crop_height=128, crop_width=64, flip_prob=0.5
        ),
    )


def _fit(splits, ckpt: Path, epochs: int, **over):
    from spherereid.training.trainer import fit

    train = splits["train"]
    kwargs = dict(
        images=train.images,
        labels=train.pids,
        num_classes=int(train.pids.max()) + 1,
        checkpoint_path=ckpt,
        config=_config(epochs),
        progress=False,
    )
    kwargs.update(over)
    return fit(**kwargs)


@pytest.fixture(scope="module")
def trained(splits, tmp_path_factory):
    return _fit(splits, tmp_path_factory.mktemp("bf16") / "last.pt", EPOCHS)


def test_bf16_graph_training_lowers_the_loss_on_the_synthetic_set(trained):
    losses = [h.loss for h in trained.history]
    assert len(losses) == EPOCHS and all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    assert trained.history[-1].accuracy > trained.history[0].accuracy
    assert next(trained.model.parameters()).is_cuda


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_one_process_on_a_gpu_other_than_the_current_one_trains_under_cuda_graphs(splits, tmp_path):
    """train.device cuda:N (N not the current device) in one process: the device is set before any CUDA
    work, so the captured graph holds the step (an empty graph fails at capture: GraphCaptureError)."""
    import dataclasses

    last = torch.device("cuda", torch.cuda.device_count() - 1)
    config = _config(2)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=str(last)))
    result = _fit(splits, tmp_path / "last.pt", 2, config=config)
    assert next(result.model.parameters()).device == last
    assert all(np.isfinite(h.loss) for h in result.history) and result.history[-1].images > 0


def _step_pair(precision: str):
    """Two identical models + optimizers: one stepped eagerly, one through the captured graph."""
    from spherereid.modeling.losses import build_loss
    from spherereid.modeling.net import ReIDNet
    from spherereid.training.optim import build_optimizer
    from spherereid.training.step import EpochAccumulator, TrainStep

    dev = torch.device("cuda")
    out = []
    for graphs in (False, True):
        torch.manual_seed(0)
        model = ReIDNet(**{**MODEL, "dropout": 0.0}).to(dev, memory_format=torch.channels_last)
        crit = build_loss(embedding_dim=256, num_classes=40, **LOSS).to(dev)
        crit.check_labels = False  # as fit() does after validating the dataset: no host read in the graph
        opt = build_optimizer(
            list(model.parameters()) + list(crit.parameters()),
            lr=1e-3,
            weight_decay=5e-4,
            betas=(0.9, 0.999),
            device=dev,
            capturable=True,
        )
        step = TrainStep(
            model=model,
            criterion=crit,
            optimizer=opt,
            stats=EpochAccumulator(dev),
            precision=precision,
            cuda_graphs=graphs,
        )
        out.append((model, opt, step))
    return out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_and_eager_steps_agree_and_lr_changes_reach_the_graph(precision):
    gen = torch.Generator(device="cuda").manual_seed(1)
    cl = torch.channels_last
    batches = [
        (
            torch.randn(64, 3, 128, 64, device="cuda", generator=gen).contiguous(memory_format=cl),
            torch.randint(0, 40, (64,), device="cuda", generator=gen),
        )
        for _ in range(8)
    ]
    (eager, _, eager_step), (graph, graph_opt, graph_step) = _step_pair(precision)
    start = torch.cat([p.detach().flatten() for p in eager.parameters()])
    for x, y in batches[:6]:  # 3 warm-up steps, the capture, 2 replays
        eager_step(x, y)
        graph_step(x, y)
    assert graph_step.graph is not None
    moved_eager = torch.cat([p.detach().flatten() for p in eager.parameters()]) - start
    moved_graph = torch.cat([p.detach().flatten() for p in graph.parameters()]) - start
    # 6 Adam steps each; without the 2 replays the graph model would be about a third short
    assert (moved_graph - moved_eager).norm() < 0.05 * moved_eager.norm()
    e_loss, _, e_bad = eager_step.stats.read()
    g_loss, _, g_bad = graph_step.stats.read()
    assert e_bad == g_bad == -1 and g_loss == pytest.approx(e_loss, rel=1e-2)
    # the scheduler writes the lr tensor in place: lr 0 must freeze the weights under graph replay
    frozen = [p.detach().clone() for p in graph.parameters()]
    for group in graph_opt.param_groups:
        group["lr"].fill_(0.0)
    for x, y in batches[6:]:
        graph_step(x, y)
    torch.cuda.synchronize()
    for before, p in zip(frozen, graph.parameters(), strict=True):
        assert torch.equal(before, p)


def _killed_run_script() -> str:
    """A training process that SIGKILLs itself after epoch 2's checkpoint was handed to the writer."""
    return textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from spherereid.config import *
        from spherereid.data.synthetic_arrays import synthetic_splits
        from spherereid.training.trainer import FitConfig, fit

        def die(stats):
            if stats.epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        train = synthetic_splits(identities=40, distractors=10, junk=5)["train"]
        fit(images=train.images, labels=train.pids, num_classes=int(train.pids.max()) + 1,
            checkpoint_path=Path(sys.argv[1]), config={_config(4)!r}, progress=False, on_epoch=die)
        """
    )


def test_resume_after_a_kill_continues_on_the_gpu(tmp_path):
    from spherereid.data.synthetic_arrays import synthetic_splits
    from spherereid.training import checkpoint

    ckpt = tmp_path / "last.pt"
    proc = subprocess.run([sys.executable, "-c", _killed_run_script(), str(ckpt)], timeout=600)
    assert proc.returncode == -signal.SIGKILL
    state = checkpoint.load(ckpt)
    assert 1 <= state["epoch"] <= 2 and "cuda_rng" in state  # the kill may beat the last background write
    assert isinstance(state["optimizer"]["param_groups"][0]["lr"], torch.Tensor)
    done = int(state["epoch"])
    splits = synthetic_splits(identities=40, distractors=10, junk=5)
    res = _fit(splits, ckpt, 4)  # the script's config
    assert res.resumed_from_epoch == done and len(res.history) == 4
    assert [h.loss for h in res.history[:done]] == [h["loss"] for h in state["history"]]
    assert np.isfinite(res.history[-1].loss) and next(res.model.parameters()).is_cuda
    assert checkpoint.load(ckpt)["epoch"] == 4


def test_bf16_extraction_agrees_with_fp32_feature_by_feature_and_in_the_ranking(trained, splits):
    """bf16 features against fp32 ones: each row's cosine (bf16 keeps ~3 significant digits, so >= 0.995),
    the top-5 gallery lists of each query (>= 90% of their entries shared: near-ties may swap), and the
    mAP (within half a point: on this small synthetic set one query moving one place is ~0.1 point, so
    a tenth-of-a-point bound measured noise, not bf16)."""
    from spherereid.data.transforms import EvalTransform
    from spherereid.evaluation.metrics import evaluate_features
    from spherereid.inference import extract_features

    tf = EvalTransform(size=(128, 64))
    maps, feats = {}, {}
    for precision, batch in (("fp32", 128), ("bf16", 512)):
        q, g = (
            extract_features(
                trained.model,
                splits[s].images,
                tf,
                batch_size=batch,
                device="cuda",
                precision=precision,
                progress=False,
            )
            for s in ("query", "gallery")
        )
        feats[precision] = (q, g)
        r = evaluate_features(
            q,
            g,
            splits["query"].pids,
            splits["gallery"].pids,
            splits["query"].camids,
            splits["gallery"].camids,
        ).to_dict()
        maps[precision] = r["mAP"]
    print(f"mAP fp32 {maps['fp32']:.4%} bf16 {maps['bf16']:.4%}")
    assert maps["fp32"] > 0.2  # the model learned something: the comparison means something
    (q32, g32), (q16, g16) = feats["fp32"], feats["bf16"]
    assert min((q32 * q16).sum(1).min(), (g32 * g16).sum(1).min()) >= 0.995  # rows are unit vectors
    top32 = np.argsort(-(q32 @ g32.T), axis=1)[:, :5]
    top16 = np.argsort(-(q16 @ g16.T), axis=1)[:, :5]
    shared = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top32, top16, strict=True)])
    assert shared >= 0.9
    assert abs(maps["bf16"] - maps["fp32"]) < 0.005
