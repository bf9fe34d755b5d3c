"""Procedurally drawn faces (`fer_ros.synthetic`) as a data set: no files, any size, any count."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from fer_ros.labels import FER7
from fer_ros.training.datasets.sets import ArrayDataset


def load_synthetic(
    root: str | Path = "",
    labels=FER7,
    color: str = "rgb",
    size: int = 64,
    n_train: int = 7000,
    n_val: int = 1400,
    n_test: int = 1400,
    seed: int = 0,
    **_,
) -> dict[str, ArrayDataset]:
    """Procedurally drawn faces at `size`, drawn once into memory; the splits use disjoint
    seeds."""
    from fer_ros.synthetic import SPLIT_SEEDS, render_faces

    out = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        images, targets = render_faces(
            n,
            labels,
            size,
            seed * 10 + SPLIT_SEEDS[split],
            gray=color == "gray",
            progress=n >= 2000 and sys.stderr.isatty(),
        )
        out[split] = ArrayDataset(
            torch.from_numpy(images),
            torch.from_numpy(targets),
            labels,
            color,
            name=f"synthetic/{split}",
        )
    return out
