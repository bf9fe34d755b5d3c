"""The faces a run trains, validates and tests on: the configured splits, in memory when they fit,
with the extra training sets of data.extra_train joined in."""

from __future__ import annotations

import sys

import numpy as np
import torch

from fer_ros.errors import ConfigError
from fer_ros.model.preprocess import resize_square
from fer_ros.training.config import Config
from fer_ros.training.datasets import (
    ArrayDataset,
    ImageFileDataset,
    hold_out,
    load_splits,
    pick_split,
)
from fer_ros.training.teacher import teacher_paths, with_teacher

IN_MEMORY_LIMIT = 2 << 30  # data.in_memory auto: decode a file data set once when it fits in this


def load_data(cfg: Config) -> dict:
    d = cfg.data
    if d.format == "synthetic":
        return load_splits(
            "synthetic",
            "",
            d.labels,
            color=d.color,
            size=d.input_size,
            n_train=d.synthetic_train,
            n_val=d.synthetic_val,
            n_test=d.synthetic_test,
            seed=cfg.train.seed,
        )
    # File formats resize in the workers straight to the input size; in-memory ones keep their own.
    splits = load_splits(
        d.format,
        d.root,
        d.labels,
        color=d.color,
        size=d.input_size,
        target=d.target,
        vote_share=d.vote_share,
    )
    choice = d.in_memory  # auto | true | false (data.in_memory's choices)
    for name, ds in splits.items():
        if isinstance(ds, ImageFileDataset) and (
            choice == "true" or (choice == "auto" and ds.nbytes() <= IN_MEMORY_LIMIT)
        ):
            splits[name] = ds.to_memory(progress=sys.stderr.isatty())
    return splits


def extra_training_faces(cfg: Config, classes) -> list:
    """The training splits of data.extra_train's folders, in memory at the input size, same
    classes."""
    d = cfg.data
    out = []
    for root in filter(None, (r.strip() for r in d.extra_train.split(","))):
        split = pick_split(
            load_splits("fer2013_folder", root, classes, color=d.color, size=d.input_size),
            d.train_split,
        )
        out.append(
            split.to_memory(progress=sys.stderr.isatty())
            if isinstance(split, ImageFileDataset)
            else split
        )
    return out


def join_training_sets(main, extras: list, extra_weight: float):
    """One in-memory set of `main` and `extras`, and each face's set weight (main 1, extras
    extra_weight).

    The extras are brought to the main set's stored size and target kind: a folder set read at the
    input size joins FER2013's 48x48 CSV faces, and its class indices become one-hot rows beside
    FER+ vote distributions. The main set is left as it is, so adding extras changes nothing of its
    faces.
    """
    if not extras:
        return main, None
    if not isinstance(main, ArrayDataset) or not all(isinstance(s, ArrayDataset) for s in extras):
        raise ConfigError(
            "data.extra_train needs every training set in memory (data.in_memory: auto or true)"
        )
    sets = [main, *(_like(s, main) for s in extras)]
    joined = ArrayDataset(
        torch.cat([s.images for s in sets]),
        torch.cat([s.targets for s in sets]),
        main.classes,
        main.color,
        main.report,
        " + ".join(s.name or "?" for s in sets),
    )
    weight = torch.cat(
        [torch.ones(len(main), dtype=torch.float64)]
        + [torch.full((len(s),), float(extra_weight), dtype=torch.float64) for s in extras]
    )
    return joined, weight


def _like(extra: ArrayDataset, main: ArrayDataset) -> ArrayDataset:
    """`extra` at `main`'s image size and channels, its targets of `main`'s kind."""
    size, channels = main.images.shape[1:3], main.images.shape[3]
    images = extra.images
    if images.shape[1:3] != size:
        images = torch.from_numpy(
            np.stack([resize_square(img.numpy(), size[0]) for img in images])
        ).view(len(images), *size, -1)  # (N, H, W, C): OpenCV drops a single channel
    if images.shape[3] != channels:
        raise ConfigError(
            f"data.extra_train: {extra.name} has {images.shape[3]} channels, {main.name} "
            f"{channels}"
        )
    targets = extra.targets
    if main.targets.dim() == 2 and targets.dim() == 1:  # class indices beside vote distributions
        valid = targets >= 0
        targets = torch.zeros(len(targets), main.targets.shape[1]).index_put_(
            (torch.nonzero(valid).flatten(), targets[valid]), torch.tensor(1.0)
        )
    elif main.targets.dim() == 1 and targets.dim() == 2:
        targets = targets.argmax(1)
    return ArrayDataset(
        images.contiguous(), targets, extra.classes, extra.color, extra.report, extra.name
    )


def training_splits(cfg: Config) -> tuple[dict, dict, torch.Tensor | None]:
    """({name: split} of every split the format has, {"train"/"val"/"test": (split name, set)} of
    those this run uses, each training face's set weight or None). The training set includes the
    extra sets; validation is data.val_split, or data.val_fraction of the training split held out
    per class."""
    d = cfg.data
    splits = load_data(cfg)
    train_set = pick_split(splits, d.train_split)
    if d.val_fraction > 0:
        train_set, val_set = hold_out(train_set, d.val_fraction, cfg.train.seed)
        val_name = f"{d.train_split} (held out {d.val_fraction:g})"
    else:
        val_set, val_name = pick_split(splits, d.val_split), d.val_split
    train_set, set_weight = join_training_sets(
        train_set, extra_training_faces(cfg, train_set.classes), d.extra_weight
    )
    if teachers := teacher_paths(d.teacher):
        train_set = with_teacher(train_set, teachers, d.teacher_share)
    used = {"train": (d.train_split, train_set), "val": (val_name, val_set)}
    if d.test_split in splits:
        used["test"] = (d.test_split, splits[d.test_split])
    return splits, used, set_weight
