"""Batched image transforms on uint8 tensors (paper: resize 288x144, random crop 256x128, flip).

Images arrive as a uint8 batch (B, H, W, 3) straight from the prepared memmap; augmentation runs on the
whole batch with an explicit `torch.Generator`, so it is cheap, runs on the training device and its
random state goes into the checkpoint (a resumed run draws the same crops and flips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of a float batch (B, 3, H, W) -> (B, 3, *size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def to_float_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a uint8 batch (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().div_(255.0)


class Normalize:
    """Per-channel (x - mean) / std on (B, 3, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


class TrainTransform:
    """Resize -> random crop -> horizontal flip -> normalise (-> optional random erasing).

    Call with a uint8 batch (B, H, W, 3) and a generator; returns float32 (B, 3, crop_h, crop_w).
    """

    def __init__(
        self,
        *,
        resize: tuple[int, int],
        crop: tuple[int, int],
        flip_prob: float = 0.5,
        random_erasing: float = 0.0,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
    ):
        if crop[0] > resize[0] or crop[1] > resize[1]:
            raise ValueError(f"crop {crop} larger than resize {resize}")
        self.resize, self.crop = tuple(resize), tuple(crop)
        self.flip_prob, self.random_erasing = flip_prob, random_erasing
        self.normalize = Normalize(mean, std)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = _resize(to_float_chw(images), self.resize)
        b = x.shape[0]
        (rh, rw), (ch, cw) = self.resize, self.crop
        tops = torch.randint(0, rh - ch + 1, (b,), generator=generator).tolist()
        lefts = torch.randint(0, rw - cw + 1, (b,), generator=generator).tolist()
        flips = (torch.rand(b, generator=generator) < self.flip_prob).tolist()
        out = torch.stack(
            [x[i, :, t : t + ch, left : left + cw] for i, (t, left) in enumerate(zip(tops, lefts))]
        )
        flip_idx = [i for i, f in enumerate(flips) if f]
        if flip_idx:
            out[flip_idx] = out[flip_idx].flip(-1)
        out = self.normalize(out)
        if self.random_erasing > 0:
            erase_rectangles(out, self.random_erasing, generator)
        return out


def erase_rectangles(
    x: torch.Tensor,
    prob: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> None:
    """Random erasing (Zhong et al.): in place, each image with probability `prob` gets one rectangle
    of zeros (the normalised mean) covering `area` of it with log-uniform `aspect` ratio."""
    b, _, h, w = x.shape
    for i in range(b):
        if float(torch.rand(1, generator=generator)) >= prob:
            continue
        for _ in range(10):
            target = h * w * float(torch.empty(1).uniform_(*area, generator=generator))
            log_ratio = torch.empty(1).uniform_(math.log(aspect[0]), math.log(aspect[1]), generator=generator)
            ratio = math.exp(float(log_ratio))
            eh, ew = int(round((target * ratio) ** 0.5)), int(round((target / ratio) ** 0.5))
            if 0 < eh < h and 0 < ew < w:
                top = int(torch.randint(0, h - eh + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - ew + 1, (1,), generator=generator))
                x[i, :, top : top + eh, left : left + ew] = 0.0
                break


class EvalTransform:
    """Resize to the network input size (paper: 256x128) and normalise: uint8 (B, H, W, 3) -> float32."""

    def __init__(
        self,
        *,
        size: tuple[int, int],
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
    ):
        self.size = tuple(size)
        self.normalize = Normalize(mean, std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(_resize(to_float_chw(images), self.size))


def build_transforms(
    *,
    resize_height: int,
    resize_width: int,
    crop_height: int,
    crop_width: int,
    flip_prob: float,
    random_erasing: float,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[TrainTransform, EvalTransform]:
    """The training and evaluation transforms from the `transform` params section."""
    train = TrainTransform(
        resize=(resize_height, resize_width),
        crop=(crop_height, crop_width),
        flip_prob=flip_prob,
        random_erasing=random_erasing,
        mean=mean,
        std=std,
    )
    return train, EvalTransform(size=(crop_height, crop_width), mean=mean, std=std)
