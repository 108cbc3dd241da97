"""Batched transforms: crop/flip geometry, normalisation, determinism from the generator."""

import pytest
import torch

from spherereid.data.transforms import EvalTransform, TrainTransform, erase_rectangles, to_float_chw

MEAN, STD = (0.5, 0.25, 0.125), (0.5, 0.5, 0.25)


def _ramp_batch(b=4, h=12, w=6):
    """uint8 (B, H, W, 3) where pixel value encodes the column: easy to check crops and flips."""
    cols = torch.arange(w, dtype=torch.uint8).view(1, 1, w, 1) * 10
    rows = torch.arange(h, dtype=torch.uint8).view(1, h, 1, 1)
    return (cols + rows).expand(b, h, w, 3).contiguous()


def test_to_float_chw_rejects_wrong_layout():
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        to_float_chw(torch.zeros(2, 3, 8, 4, dtype=torch.uint8))


def test_train_crop_is_a_window_of_the_input_and_normalised():
    tf = TrainTransform(resize=(12, 6), crop=(8, 4), flip_prob=0.0, mean=MEAN, std=STD)
    x = _ramp_batch()
    out = tf(x, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 8, 4)
    # undo normalisation on channel 0 and find the window in the source image
    raw = (out[:, 0] * STD[0] + MEAN[0]) * 255
    src = x[0, :, :, 0].float()
    for i in range(4):
        found = [
            (t, left)
            for t in range(0, 5)
            for left in range(0, 3)
            if torch.allclose(raw[i], src[t : t + 8, left : left + 4], atol=1e-3)
        ]
        assert len(found) == 1


def test_flip_mirrors_columns():
    tf = TrainTransform(resize=(12, 6), crop=(12, 6), flip_prob=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    x = _ramp_batch(b=2)
    out = tf(x, torch.Generator().manual_seed(0))
    expected = to_float_chw(x).flip(-1)
    assert torch.allclose(out, expected)


def test_same_generator_state_same_batch():
    tf = TrainTransform(resize=(12, 6), crop=(8, 4), flip_prob=0.5, random_erasing=0.5, mean=MEAN, std=STD)
    x = _ramp_batch(b=16)
    a = tf(x, torch.Generator().manual_seed(3))
    b = tf(x, torch.Generator().manual_seed(3))
    c = tf(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_erasing_zeroes_a_rectangle():
    x = torch.ones(8, 3, 32, 16)
    erase_rectangles(x, 1.0, torch.Generator().manual_seed(0))
    for img in x:
        zero = img[0] == 0
        assert zero.any()
        rows, cols = zero.nonzero(as_tuple=True)
        box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one filled rectangle
        assert 0.02 * 512 * 0.5 <= box.numel() <= 0.4 * 512 * 1.5


def test_eval_resizes_and_normalises_a_flat_image():
    x = torch.full((2, 20, 10, 3), 128, dtype=torch.uint8)
    out = EvalTransform(size=(8, 4), mean=MEAN, std=STD)(x)
    assert out.shape == (2, 3, 8, 4)
    expected = torch.tensor([(128 / 255 - m) / s for m, s in zip(MEAN, STD)]).view(1, 3, 1, 1)
    assert torch.allclose(out, expected.expand_as(out), atol=1e-5)
