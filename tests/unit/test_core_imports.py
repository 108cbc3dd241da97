"""The training core runs on a bare GPU image: torch, torchvision and numpy, no mlflow / dvc / kfp."""

import subprocess
import sys
import textwrap

BLOCKED = ("mlflow", "dvc", "kfp", "yaml", "tqdm", "scipy", "boto3", "h5py", "pytest")


def test_training_core_imports_and_trains_without_the_pipeline_stack(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys

        for name in {BLOCKED!r}:
            sys.modules[name] = None  # "import name" now raises ImportError, as if it were not installed
        import numpy as np
        from pathlib import Path
        from spherereid.data.transforms import EvalTransform
        from spherereid.data.synthetic_arrays import synthetic_splits  # the GPU checks' data
        from spherereid.evaluation.metrics import evaluate_features
        from spherereid.inference import extract_features
        from spherereid.config import (LossConfig, ModelConfig, OptimConfig, SamplerConfig, ScheduleConfig,
                                       TrainConfig, TransformConfig)
        from spherereid.training.trainer import FitConfig, fit

        labels = np.repeat(np.arange(4), 4)
        images = np.random.default_rng(0).integers(0, 256, (16, 16, 8, 3), dtype=np.uint8)
        config = FitConfig(
            model=ModelConfig(backbone="tiny", head="D", embedding_dim=8, last_stride=1, dropout=0.0,
                              pretrained="none"),
            loss=LossConfig(type="sphere", scale=14.0, margin=0.0),
            sampler=SamplerConfig(p=2, k=2, batch_size=4),
            optim=OptimConfig(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.999)),
            schedule=ScheduleConfig(warmup_start_lr=5e-5, warmup_epochs=0, milestones=(), gamma=0.1,
                                    step_per="epoch"),
            train=TrainConfig(epochs=1, device="cpu"),
            transform=TransformConfig(resize_height=16, resize_width=8, crop_height=12, crop_width=6),
        )
        res = fit(images=images, labels=labels, num_classes=4, checkpoint_path=Path(sys.argv[1]) / "last.pt",
                  config=config)
        feats = extract_features(res.model, images, EvalTransform(size=(12, 6)), batch_size=5)
        assert feats.shape == (16, 8)
        loaded = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] in {BLOCKED!r} and mod)
        print("OK", loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("OK []")
