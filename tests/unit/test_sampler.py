"""Batch samplers: balanced P x K (batch structure, replacement, determinism, ranks, length, state) and
random batches (a seeded permutation of all images, rank shares, state), and build_sampler."""

import re
from collections import Counter

import pytest
import torch

from spherereid.config import ConfigError, SamplerConfig
from spherereid.data.sampler import BalancedIdentitySampler, RandomBatchSampler, build_sampler, epoch_seed


def _labels():
    """Identities (deliberately unsorted and sparse) with 1..9 images each, interleaved in the dataset."""
    counts = {40: 9, 3: 6, 17: 4, 8: 3, 25: 1, 90: 5, 61: 7, 12: 2, 33: 4, 71: 8, 5: 4}
    labels = []
    for round_ in range(max(counts.values())):
        for pid, n in counts.items():
            if round_ < n:
                labels.append(pid)
    return labels, counts


def _check_batch(batch, labels, counts, p, k):
    assert len(batch) == p * k
    ids = [labels[i] for i in batch]
    groups = [ids[j * k : (j + 1) * k] for j in range(p)]
    for group, idx in zip(groups, [batch[j * k : (j + 1) * k] for j in range(p)], strict=True):
        assert len(set(group)) == 1, "each run of K indices belongs to one identity"
        n = counts[group[0]]
        if n >= k:
            assert len(set(idx)) == k, "no replacement for identities with >= K images"
        else:
            assert set(idx) == {i for i, lab in enumerate(labels) if lab == group[0]}, "all its images used"
    assert len({g[0] for g in groups}) == p, "P distinct identities"


def test_batches_are_p_by_k_with_replacement_only_when_needed():
    labels, counts = _labels()
    p, k = 3, 4
    sampler = BalancedIdentitySampler(labels, p=p, k=k, seed=1)
    assert len(sampler) == len(counts) // p == 3
    for epoch in range(20):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == 3
        for batch in batches:
            _check_batch(batch, labels, counts, p, k)
        used = Counter(
            labels[b[0]] for batch in batches for b in [batch[j * k : (j + 1) * k] for j in range(p)]
        )
        assert max(used.values()) == 1, "each identity at most once per epoch"
        assert len(used) == 9  # 11 ids // 3 * 3; the 2 leftovers wait for another epoch


def test_every_identity_is_eventually_sampled():
    labels, counts = _labels()
    sampler = BalancedIdentitySampler(labels, p=3, k=2, seed=0)
    seen = set()
    for epoch in range(30):
        sampler.set_epoch(epoch)
        seen |= {labels[i] for batch in sampler for i in batch}
    assert seen == set(counts)


def test_deterministic_for_seed_and_epoch_and_different_across_epochs_and_seeds():
    labels, _ = _labels()

    def run(seed, epoch):
        s = BalancedIdentitySampler(labels, p=3, k=4, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert run(0, 5) == run(0, 5)
    assert run(0, 5) != run(0, 6)
    assert run(0, 5) != run(1, 5)


def test_identities_sorted_so_label_order_does_not_matter():
    # the same dataset listed with identities first met in a different order gives the same batches
    labels = [7, 7, 2, 2, 9, 9, 4, 4]
    relabeled_order = [2, 2, 7, 7, 4, 4, 9, 9]
    a = BalancedIdentitySampler(labels, p=2, k=2, seed=3)
    b = BalancedIdentitySampler(relabeled_order, p=2, k=2, seed=3)
    ids_a = [[labels[i] for i in batch] for batch in a]
    ids_b = [[relabeled_order[i] for i in batch] for batch in b]
    assert ids_a == ids_b


def test_ranks_split_each_global_batch_by_identity():
    labels = [pid for pid in range(23) for _ in range(4)]
    p, k = 4, 2
    r0 = BalancedIdentitySampler(labels, p=p, k=k, seed=0, rank=0, world_size=2)
    r1 = BalancedIdentitySampler(labels, p=p, k=k, seed=0, rank=1, world_size=2)
    single = BalancedIdentitySampler(labels, p=p, k=k, seed=0)
    assert len(r0) == len(r1) == len(single) == 23 // 4 == 5, "same steps per epoch on any world size"
    for s in (r0, r1, single):
        s.set_epoch(4)
    b0, b1, all_ = list(r0), list(r1), list(single)
    for part0, part1, whole in zip(b0, b1, all_, strict=True):
        assert len(part0) == len(part1) == p // 2 * k, "each rank holds half the identities of a batch"
        assert part0 + part1 == whole, "the ranks' shares together are the single-process batch"
        assert not {labels[i] for i in part0} & {labels[i] for i in part1}, "disjoint identities"
        # K consecutive indices per identity: a share never splits an identity across ranks
        for part in (part0, part1):
            assert all(len({labels[i] for i in part[j : j + k]}) == 1 for j in range(0, len(part), k))


def test_errors_for_too_few_identities_or_an_unshareable_batch():
    with pytest.raises(ValueError, match="3 identities but sampler.p is 4"):
        BalancedIdentitySampler([0, 1, 2, 2], p=4, k=2)
    with pytest.raises(ValueError, match="sampler.p=4 .* world_size=3"):
        BalancedIdentitySampler(list(range(8)), p=4, k=1, world_size=3)
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        BalancedIdentitySampler(list(range(8)), p=4, k=1, rank=2, world_size=2)


def test_state_dict_round_trip():
    labels, _ = _labels()
    a = BalancedIdentitySampler(labels, p=3, k=4, seed=9)
    a.set_epoch(12)
    state = a.state_dict()
    assert state == {"epoch": 12, "seed": 9}
    b = BalancedIdentitySampler(labels, p=3, k=4, seed=9)
    b.load_state_dict(state)
    assert list(b) == list(a)
    with pytest.raises(ValueError, match="seed"):
        BalancedIdentitySampler(labels, p=3, k=4, seed=1).load_state_dict(state)


# ---------------------------------------------------------------- random batches (sampler.type random)


def test_random_batches_cover_each_image_at_most_once_per_epoch():
    labels, _ = _labels()  # 53 images
    sampler = RandomBatchSampler(labels, batch_size=8, seed=3)
    assert len(sampler) == 53 // 8 == 6
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i in b]
        assert [len(b) for b in batches] == [8] * 6
        assert len(set(flat)) == 48 and all(0 <= i < 53 for i in flat), "48 distinct images, 5 left over"


def test_random_batches_are_a_seeded_permutation_of_all_images():
    labels, _ = _labels()
    sampler = RandomBatchSampler(labels, batch_size=53, seed=7)
    sampler.set_epoch(2)
    (batch,) = list(sampler)
    gen = torch.Generator().manual_seed(epoch_seed(7, 2))
    assert batch == torch.randperm(53, generator=gen).tolist(), "exactly randperm from (seed, epoch)"
    assert sorted(batch) == list(range(53))


def test_random_batches_ignore_identity_balance():
    """Over 10 epochs some batch holds 3+ images of one identity: nothing balances identities."""
    labels, _ = _labels()
    sampler = RandomBatchSampler(labels, batch_size=12, seed=0)
    most = 0
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for batch in sampler:
            most = max(most, max(Counter(labels[i] for i in batch).values()))
    assert most >= 3  # a P x K=2 batch never holds more than 2 images of one identity


def test_random_batches_are_deterministic_and_differ_between_epochs():
    labels, _ = _labels()
    a, b = RandomBatchSampler(labels, 8, seed=5), RandomBatchSampler(labels, 8, seed=5)
    a.set_epoch(1), b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    assert list(a) != list(RandomBatchSampler(labels, 8, seed=6))


def test_random_ranks_share_each_batch_exactly():
    labels, _ = _labels()
    whole = RandomBatchSampler(labels, 8, seed=2)
    parts = [RandomBatchSampler(labels, 8, seed=2, rank=r, world_size=4) for r in range(4)]
    for s in (whole, *parts):
        s.set_epoch(3)
    shares = [list(p) for p in parts]
    assert all(len(p) == len(whole) == 6 for p in parts)
    for b, batch in enumerate(whole):
        assert [len(s[b]) for s in shares] == [2, 2, 2, 2]
        assert sum((s[b] for s in shares), []) == batch, "rank r takes the r-th consecutive slice"


def test_random_sampler_state_round_trip_and_errors():
    labels, _ = _labels()
    s = RandomBatchSampler(labels, 8, seed=4)
    s.set_epoch(9)
    t = RandomBatchSampler(labels, 8, seed=4)
    t.load_state_dict(s.state_dict())
    assert t.epoch == 9 and list(t) == list(s)
    with pytest.raises(ValueError, match="seed 4 but this sampler was built with seed 1"):
        RandomBatchSampler(labels, 8, seed=1).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="cannot be shared by world_size=3"):
        RandomBatchSampler(labels, 8, world_size=3, rank=0)
    with pytest.raises(ValueError, match="has 53 images but sampler.batch_size is 64"):
        RandomBatchSampler(labels, 64)


def test_build_sampler_follows_sampler_type():
    labels, _ = _labels()
    balanced = build_sampler(SamplerConfig(p=3, k=2, batch_size=6), labels, seed=1, rank=1, world_size=3)
    assert isinstance(balanced, BalancedIdentitySampler) and (balanced.p, balanced.k, balanced.rank) == (
        3,
        2,
        1,
    )
    rand = build_sampler(SamplerConfig(p=3, k=2, batch_size=6, type="random"), labels, seed=1)
    assert isinstance(rand, RandomBatchSampler) and len(rand) == 53 // 6
    with pytest.raises(
        ConfigError, match=re.escape("sampler.type must be one of balanced|random, got 'uniform'")
    ):
        SamplerConfig(type="uniform")
