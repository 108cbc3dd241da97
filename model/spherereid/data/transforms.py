"""Batched image transforms on uint8 tensors (paper: resize 288x144, random crop 256x128, flip).

Images arrive as a uint8 batch (B, H, W, 3) straight from the prepared memmap; augmentation runs on the
whole batch with an explicit `torch.Generator`, so it is cheap, runs on the training device and its
random state goes into the checkpoint (a resumed run draws the same crops and flips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

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
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._on.get(x.device) or self._to(x.device)
        return (x - mean) / std

    def _to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std on `device`, copied once (a blocking host-to-device copy per batch would wait
        for the device to finish all its queued work)."""
        self._on[device] = (self.mean.to(device), self.std.to(device))
        return self._on[device]


class TrainTransform:
    """Resize -> random crop -> horizontal flip -> normalise (-> optional random erasing).

    Call with a uint8 batch (B, H, W, 3) and a generator; returns float32 (B, 3, crop_h, crop_w). Crop
    and flip are one gather over the whole batch (no per-image loop); when the batch already has the
    resize size the gather reads the uint8 pixels, before the float conversion (same values, 4x fewer
    bytes). The random draws (tops, lefts, flips, then the erasing boxes) come from the CPU `generator`
    in a fixed order, so they do not depend on the device the batch is on.
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
        self.resize, self.crop = cast(tuple[int, int], tuple(resize)), cast(tuple[int, int], tuple(crop))
        self.flip_prob, self.random_erasing = flip_prob, random_erasing
        self.normalize = Normalize(mean, std)

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected a uint8 batch (B, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        b = images.shape[0]
        (rh, rw), (ch, cw) = self.resize, self.crop
        tops = torch.randint(0, rh - ch + 1, (b,), generator=generator)
        lefts = torch.randint(0, rw - cw + 1, (b,), generator=generator)
        flips = torch.rand(b, generator=generator) < self.flip_prob
        rows, cols = crop_flip_indices(tops, lefts, flips, (ch, cw))
        rows, cols = to_device(rows, images.device), to_device(cols, images.device)
        batch = torch.arange(b, device=images.device).view(b, 1, 1)
        if tuple(images.shape[1:3]) == (rh, rw):
            hwc = images[batch, rows[:, :, None], cols[:, None, :]]  # uint8 (B, ch, cw, 3)
            out = hwc.permute(0, 3, 1, 2).float().div_(255.0)
        else:
            x = _resize(to_float_chw(images), self.resize)
            out = x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, 3, ch, cw)
        out = self.normalize(out).contiguous(memory_format=memory_format)
        if self.random_erasing > 0:
            erase_rectangles(out, self.random_erasing, generator)
        return out


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor on `device`: through pinned memory with a non-blocking copy (no host sync)."""
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def crop_flip_indices(
    tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor, crop: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows (B, ch) and columns (B, cw) of each image's crop window, columns reversed where
    `flips` (B,) is true: out[i, r, c] = src[i, rows[i, r], cols[i, c]] is the cropped, flipped image."""
    ch, cw = crop
    rows = tops.view(-1, 1) + torch.arange(ch)
    j = torch.arange(cw)
    cols = lefts.view(-1, 1) + torch.where(flips.view(-1, 1), cw - 1 - j, j)
    return rows, cols


def erase_rectangles(
    x: torch.Tensor,
    prob: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> None:
    """Random erasing (Zhong et al.): in place, each image of x (B, C, H, W) with probability `prob`
    gets one rectangle of zeros (the normalised mean) covering `area` of it with log-uniform `aspect`
    ratio. Boxes are drawn on the CPU (`draw_erase_boxes`), the rectangles are set by one masked fill."""
    b, _, h, w = x.shape
    boxes = to_device(draw_erase_boxes(b, h, w, prob, generator, area, aspect), x.device)
    x.masked_fill_(box_mask(boxes, h, w)[:, None], 0.0)


ERASE_ATTEMPTS = 10


def draw_erase_boxes(
    b: int,
    h: int,
    w: int,
    prob: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """int64 (B, 4) boxes (top, left, height, width); height 0 means the image is not erased.

    Per image: erase with probability `prob`; up to ERASE_ATTEMPTS (area, aspect) candidates are drawn
    at once and the first that fits strictly inside the image is used (none fits: no erasing).
    """
    erase = torch.rand(b, generator=generator, dtype=torch.float64) < prob
    target = h * w * torch.empty(b, ERASE_ATTEMPTS, dtype=torch.float64).uniform_(*area, generator=generator)
    log_ratio = torch.empty(b, ERASE_ATTEMPTS, dtype=torch.float64).uniform_(
        math.log(aspect[0]), math.log(aspect[1]), generator=generator
    )
    ratio = log_ratio.exp()
    eh = (target * ratio).sqrt().round().long()
    ew = (target / ratio).sqrt().round().long()
    fits = (eh > 0) & (eh < h) & (ew > 0) & (ew < w)
    first = fits.long().argmax(dim=1, keepdim=True)  # the first candidate that fits (0 when none does)
    use = erase & fits.any(dim=1)
    eh = torch.where(use, eh.gather(1, first).squeeze(1), 0)
    ew = torch.where(use, ew.gather(1, first).squeeze(1), 0)
    where = torch.rand(b, 2, generator=generator, dtype=torch.float64)
    top = (where[:, 0] * (h - eh + 1)).floor().long().clamp(max=h - eh)
    left = (where[:, 1] * (w - ew + 1)).floor().long().clamp(max=w - ew)
    return torch.stack([top, left, eh, ew], dim=1)


def box_mask(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """bool (B, h, w): True inside each image's box (top, left, height, width) of `boxes` (B, 4)."""
    top, left, eh, ew = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    rows = torch.arange(h, device=boxes.device).view(1, h, 1)
    cols = torch.arange(w, device=boxes.device).view(1, 1, w)
    return (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)


class EvalTransform:
    """Resize to the network input size (paper: 256x128) and normalise: uint8 (B, H, W, 3) -> float32."""

    def __init__(
        self,
        *,
        size: tuple[int, int],
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
    ):
        self.size = cast(tuple[int, int], tuple(size))
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
