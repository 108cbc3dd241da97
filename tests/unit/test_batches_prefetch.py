"""TrainBatches gathers ahead across epoch boundaries without changing a batch or the random stream."""

import time

import numpy as np
import pytest
import torch

from spherereid.data.batches import TrainBatches, device_slices
from spherereid.data.sampler import BalancedIdentitySampler
from spherereid.data.transforms import TrainTransform

IDS, PER_ID, H, W = 8, 5, 12, 6


def _setup():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(IDS * PER_ID, H, W, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(IDS), PER_ID)
    sampler = BalancedIdentitySampler(labels.tolist(), p=2, k=3, seed=5)
    tf = TrainTransform(resize=(H, W), crop=(10, 4), flip_prob=0.5, random_erasing=0.5)
    return images, labels, sampler, tf


def test_prefetching_across_epochs_gives_the_batches_of_plain_per_epoch_iteration():
    images, labels, sampler, tf = _setup()
    plain_rng, fast_rng = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    want = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        want += list(
            TrainBatches(images, labels, sampler, tf, plain_rng, torch.device("cpu"), prefetch=False)
        )
    sampler.set_epoch(0)
    got = []
    with TrainBatches(images, labels, sampler, tf, fast_rng, torch.device("cpu")) as batches:
        for epoch in range(3):
            got += list(batches.epoch(epoch))
            if epoch == 0:  # the gathering thread is already into epoch 1
                deadline = time.monotonic() + 5
                while batches._queue.qsize() == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert batches._queue.qsize() >= 1
    assert len(got) == len(want) == 3 * len(sampler)
    for (xa, ya), (xb, yb) in zip(got, want, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(plain_rng.get_state(), fast_rng.get_state())  # augmentation drew the same numbers
    assert sampler.epoch == 0  # the thread iterates a copy: the caller's sampler is untouched


def test_iterating_the_object_is_one_epoch_at_the_samplers_epoch():
    images, labels, sampler, tf = _setup()
    sampler.set_epoch(4)
    one = TrainBatches(images, labels, sampler, tf, torch.Generator().manual_seed(0), torch.device("cpu"))
    ref = TrainBatches(
        images, labels, sampler, tf, torch.Generator().manual_seed(0), torch.device("cpu"), prefetch=False
    )
    try:
        for (xa, ya), (xb, yb) in zip(list(one), list(ref), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    finally:
        one.close()


def test_an_error_in_the_gathering_thread_is_raised_in_the_training_thread():
    images, labels, _, tf = _setup()
    batches = TrainBatches(images, labels, [[0, 1], [0, 999]], tf, torch.Generator(), torch.device("cpu"))
    it = iter(batches.epoch(0))
    next(it)
    with pytest.raises(IndexError, match=r"row 999 outside 0\.\.39"):
        next(it)
    batches.close()


def test_device_slices_yields_consecutive_batches_and_the_remainder():
    images = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    got = list(device_slices(images, 3, "cpu"))
    assert [len(b) for b in got] == [3, 3, 1]
    assert torch.equal(torch.cat(got), torch.from_numpy(images))
    assert got[0].data_ptr() != got[1].data_ptr()  # each batch is its own tensor, not a reused buffer
