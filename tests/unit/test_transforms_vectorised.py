"""The vectorised crop / flip / erasing against per-image references drawing the same random numbers."""

import math

import pytest
import torch
import torch.nn.functional as F

from spherereid.data.transforms import (
    TrainTransform,
    box_mask,
    draw_erase_boxes,
    erase_rectangles,
    to_float_chw,
)

MEAN, STD = (0.5, 0.25, 0.125), (0.5, 0.5, 0.25)


def _per_image_reference(tf: TrainTransform, images: torch.Tensor, generator: torch.Generator):
    """The former per-image loop (resize, then crop and flip one image at a time, then normalise),
    with the same generator calls in the same order: tops, lefts, flips."""
    x = to_float_chw(images)
    if tuple(x.shape[-2:]) != tf.resize:
        x = F.interpolate(x, size=tf.resize, mode="bilinear", antialias=True, align_corners=False)
    b = x.shape[0]
    (rh, rw), (ch, cw) = tf.resize, tf.crop
    tops = torch.randint(0, rh - ch + 1, (b,), generator=generator).tolist()
    lefts = torch.randint(0, rw - cw + 1, (b,), generator=generator).tolist()
    flips = (torch.rand(b, generator=generator) < tf.flip_prob).tolist()
    out = torch.stack([x[i, :, t : t + ch, left : left + cw] for i, (t, left) in enumerate(zip(tops, lefts))])
    flip_idx = [i for i, f in enumerate(flips) if f]
    if flip_idx:
        out[flip_idx] = out[flip_idx].flip(-1)
    return tf.normalize(out)


@pytest.mark.parametrize("stored", [(12, 6), (20, 9)])  # at the resize size, and resized first
def test_vectorised_crop_and_flip_equal_the_per_image_loop_bit_for_bit(stored):
    images = torch.randint(
        0, 256, (16, *stored, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    tf = TrainTransform(resize=(12, 6), crop=(8, 4), flip_prob=0.5, mean=MEAN, std=STD)
    got = tf(images, torch.Generator().manual_seed(7))
    want = _per_image_reference(tf, images, torch.Generator().manual_seed(7))
    assert got.shape == (16, 3, 8, 4) and got.is_contiguous()
    assert torch.equal(got, want)


def test_vectorised_transform_leaves_the_generator_where_the_loop_did():
    images = torch.zeros(8, 12, 6, 3, dtype=torch.uint8)
    tf = TrainTransform(resize=(12, 6), crop=(8, 4), flip_prob=0.5, mean=MEAN, std=STD)
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    tf(images, a)
    _per_image_reference(tf, images, b)
    assert torch.equal(a.get_state(), b.get_state())


def test_channels_last_output_has_the_same_values():
    images = torch.randint(
        0, 256, (4, 12, 6, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    tf = TrainTransform(resize=(12, 6), crop=(8, 4), flip_prob=0.5, mean=MEAN, std=STD)
    plain = tf(images, torch.Generator().manual_seed(0))
    cl = tf(images, torch.Generator().manual_seed(0), memory_format=torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(plain, cl)


def test_erasing_boxes_follow_area_aspect_and_probability():
    h, w, n = 32, 16, 4000
    boxes = draw_erase_boxes(n, h, w, 0.5, torch.Generator().manual_seed(0))
    erased = boxes[:, 2] > 0
    assert abs(erased.float().mean().item() - 0.5) < 0.03  # binomial sd 0.008
    top, left, eh, ew = boxes[erased].T
    assert ((eh > 0) & (eh < h) & (ew > 0) & (ew < w)).all()
    assert ((top >= 0) & (top + eh <= h) & (left >= 0) & (left + ew <= w)).all()
    # rounding each side moves the area by at most (eh + ew) / 2 + 1/4 pixels around [0.02, 0.4] * h * w
    slack = (eh + ew).double() / 2 + 0.25
    area = (eh * ew).double()
    assert ((area >= 0.02 * h * w - slack) & (area <= 0.4 * h * w + slack)).all()
    ratio = eh.double() / ew.double()
    assert ratio.min() > 0.3 * 0.5 and ratio.max() < 3.3 * 2  # log-uniform aspect, blurred by rounding
    assert math.log(ratio.max() / ratio.min()) > 2.0  # the aspect range is used, not one shape
    # boxes reach every corner region: the placement is uniform over the valid offsets
    assert (top == 0).any() and (top + eh == h).any() and (left == 0).any() and (left + ew == w).any()
    assert (boxes[~erased][:, 2:] == 0).all()  # not erased: an empty box


def test_erase_rectangles_zeroes_exactly_the_drawn_boxes_per_image():
    x = torch.ones(6, 3, 20, 10)
    erase_rectangles(x, 1.0, torch.Generator().manual_seed(5))
    boxes = draw_erase_boxes(6, 20, 10, 1.0, torch.Generator().manual_seed(5))
    for i, (top, left, eh, ew) in enumerate(boxes.tolist()):  # per-image reference
        want = torch.ones(3, 20, 10)
        want[:, top : top + eh, left : left + ew] = 0.0
        assert eh > 0 and torch.equal(x[i], want)


def test_box_mask_of_a_hand_made_box():
    mask = box_mask(torch.tensor([[1, 2, 2, 3], [0, 0, 0, 0]]), 4, 6)
    want = torch.zeros(2, 4, 6, dtype=torch.bool)
    want[0, 1:3, 2:5] = True
    assert torch.equal(mask, want)
