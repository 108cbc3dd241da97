"""Batch samplers: balanced P x K (the paper's balanced sampling strategy) and random batches (its
ablation baseline); `build_sampler` picks one from `sampler.type`.

Each batch holds P distinct identities with K images each. An epoch walks a random permutation of
the (sorted) identities in chunks of P, so every identity appears at most once per epoch; the
#identities % P leftovers of the permutation are skipped that epoch. With several ranks the global
batch stays P x K: every rank walks the same #identities // P batches and takes its share of each, P /
world_size consecutive identities (rank r the r-th share), so the recipe means the same on 1 or 8
processes and the ranks' shares together are exactly the single-process batch.

An identity with at least K images contributes K distinct images; one with fewer contributes each of
its images once and fills the rest by drawing with replacement. Everything is drawn from a
torch.Generator seeded from (seed, epoch), so a batch sequence is reproducible from those two ints.

Random batches (`RandomBatchSampler`, sampler.type random): an epoch is one seeded permutation of all N
training images cut into N // batch_size batches of batch_size images (the N % batch_size leftovers are
skipped that epoch), with no regard to identities: every image appears at most once per epoch, like a
shuffled DataLoader with drop_last. So an epoch has more steps than a balanced one (N // B against
#identities // P). Ranks share each global batch the same way: rank r takes the r-th of world_size equal
consecutive slices.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Sampler

if TYPE_CHECKING:
    from ..config import SamplerConfig


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 32-bit seed from (seed, epoch) (torch's CPU generator keeps only 32 bits)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(1)[0])


class _EpochBatches(Sampler[list[int]]):
    """What both batch samplers share: `batches_per_epoch` batches per epoch, drawn from (seed, epoch), so
    the resumable state is those two ints."""

    seed: int
    epoch: int
    batches_per_epoch: int

    def __len__(self) -> int:
        return self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Plain ints: the epoch and the seed (the batches are a function of them)."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the epoch; a different seed is an error (the run would not be reproduced)."""
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(
                f"sampler state has seed {state['seed']} but this sampler was built with seed {self.seed}"
            )
        self.epoch = int(state["epoch"])


class BalancedIdentitySampler(_EpochBatches):
    """Batch sampler yielding lists of dataset indices (K consecutive indices per identity).

    `labels[i]` is the identity of dataset item i. Every rank yields len(self) = #identities // P
    batches of (P / world_size) * K indices: its share of the global P x K batch. Call
    `set_epoch(epoch)` before each epoch.
    """

    def __init__(
        self, labels: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if p < 1 or k < 1:
            raise ValueError(f"sampler p and k must be >= 1, got p={p}, k={k}; check sampler.p / sampler.k")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if p % world_size:
            raise ValueError(
                f"sampler.p={p} identities per batch cannot be shared by world_size={world_size} processes: "
                "choose a process count that divides sampler.p (the global batch stays P x K)"
            )
        by_id: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            by_id.setdefault(int(label), []).append(index)
        self.identities = sorted(by_id)
        self.indices = [torch.tensor(by_id[pid], dtype=torch.int64) for pid in self.identities]
        n_ids = len(self.identities)
        if n_ids < p:
            raise ValueError(
                f"the training split has {n_ids} identities but sampler.p is {p}: lower sampler.p "
                "(and sampler.batch_size = p * k) to at most the number of identities"
            )
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.batches_per_epoch = n_ids // p  # the same on every rank
        self.share = p // world_size  # identities of each batch this rank takes
        self.epoch = 0

    def _images_of(self, ident: int, generator: torch.Generator) -> torch.Tensor:
        """K indices of identity number `ident`: distinct when it has >= K images."""
        pool = self.indices[ident]
        n = pool.numel()
        if n >= self.k:
            return pool[torch.randperm(n, generator=generator)[: self.k]]
        extra = torch.randint(n, (self.k - n,), generator=generator)
        picks = torch.cat([torch.arange(n), extra])
        return pool[picks[torch.randperm(self.k, generator=generator)]]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.identities), generator=generator)
        lo, hi = self.rank * self.share * self.k, (self.rank + 1) * self.share * self.k
        for b in range(self.batches_per_epoch):
            chosen = order[b * self.p : (b + 1) * self.p].tolist()
            # Every rank draws the whole batch, so the generator stream is the same on every rank.
            batch = torch.cat([self._images_of(ident, generator) for ident in chosen])
            yield batch[lo:hi].tolist()


class RandomBatchSampler(_EpochBatches):
    """Batch sampler yielding lists of dataset indices drawn uniformly, without identity balancing.

    Every rank yields len(self) = len(labels) // batch_size batches of batch_size / world_size indices:
    its slice of the global batch. The same interface as BalancedIdentitySampler (set_epoch, state_dict,
    load_state_dict); `labels` only fixes the dataset size."""

    def __init__(
        self, labels: Sequence[int], batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if batch_size < 1:
            raise ValueError(f"sampler batch_size must be >= 1, got {batch_size}; check sampler.batch_size")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise ValueError(
                f"sampler.batch_size={batch_size} cannot be shared by world_size={world_size} processes: "
                "choose a process count that divides sampler.batch_size (the global batch stays the same)"
            )
        self.num_items = len(labels)
        if self.num_items < batch_size:
            raise ValueError(
                f"the training split has {self.num_items} images but sampler.batch_size is {batch_size}: "
                "lower sampler.batch_size (= p * k)"
            )
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.batches_per_epoch = self.num_items // self.batch_size
        self.share = self.batch_size // self.world_size
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.num_items, generator=generator)
        lo, hi = self.rank * self.share, (self.rank + 1) * self.share
        for b in range(self.batches_per_epoch):
            yield order[b * self.batch_size : (b + 1) * self.batch_size][lo:hi].tolist()


def build_sampler(
    config: SamplerConfig, labels: Sequence[int], seed: int, rank: int = 0, world_size: int = 1
) -> BalancedIdentitySampler | RandomBatchSampler:
    """The batch sampler `config.type` names: balanced (P x K) or random (batch_size images)."""
    if config.type == "balanced":
        return BalancedIdentitySampler(
            labels, p=config.p, k=config.k, seed=seed, rank=rank, world_size=world_size
        )
    if config.type == "random":
        return RandomBatchSampler(
            labels, batch_size=config.batch_size, seed=seed, rank=rank, world_size=world_size
        )
    raise ValueError(f"sampler.type must be balanced|random, got {config.type!r}")
