"""What a training epoch draws: class weights, a resumable DDP-ready sampler, the DataLoader."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler

from fer_ros.training.datasets import ArrayDataset, cpu_count


class EpochSampler(Sampler):
    """Shuffled (or class-balanced, with replacement) indices, the same permutation on every
    process for a given seed and epoch, each process taking every world-th: DDP-ready, resumable
    without state (the epoch number is the state)."""

    def __init__(
        self, n: int, seed: int, rank: int = 0, world: int = 1, weights: torch.Tensor | None = None
    ):
        self.n, self.seed, self.rank, self.world, self.weights = n, seed, rank, world, weights
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        else:
            idx = torch.randperm(self.n, generator=g)
        pad = len(self) * self.world - self.n
        if pad:
            idx = torch.cat([idx, idx[:pad]])
        return iter(idx[self.rank :: self.world].tolist())


def class_weights(counts: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights to the `power` (1: balanced, 0.5: square root), mean 1 over the
    classes present."""
    w = torch.where(
        counts > 0,
        counts.clamp(min=1).double() ** -power,
        torch.zeros_like(counts, dtype=torch.float64),
    )
    return (w * (counts > 0).sum() / w.sum()).float()


def _batched(batch):
    return batch  # ArrayDataset.__getitems__ already returns (images, targets)


def make_loader(
    dataset, batch_size: int, sampler, workers: int, device: torch.device
) -> DataLoader:
    in_memory = isinstance(dataset, ArrayDataset)
    workers = 0 if in_memory else min(workers, cpu_count())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_batched if in_memory else None,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=False,
    )


def draw_weights(
    train_set, weights: torch.Tensor, set_weight: torch.Tensor | None, balance: str
) -> torch.Tensor | None:
    """How often the sampler draws each face (None: uniformly): balanced by class across every set
    (not by set) with train.balance=sampler, and an extra set's faces data.extra_weight as
    often."""
    draw = (
        weights[train_set.hard_targets().clamp(min=0)].double() if balance == "sampler" else None
    )
    if set_weight is not None:
        draw = set_weight if draw is None else draw * set_weight
    return draw
