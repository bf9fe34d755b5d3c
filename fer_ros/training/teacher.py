"""Distillation from an ensemble of the project's own models: each training face's target becomes a
blend of its label (or FER+ votes) and what the teachers see in it.

The teachers' answers are computed once, before training, on the faces as stored (no
augmentation), each face and its mirror image, through each teacher's own preprocessing and
calibrated temperature, and averaged over the teachers. That is offline distillation: the student
then trains as usual, on probability targets, at no extra cost per step. Teachers are fer_ros
checkpoints (safetensors with the project's metadata): the loader reads nothing else, so a peer's
ONNX model cannot be one.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from fer_ros.errors import ConfigError
from fer_ros.training.datasets import ArrayDataset


def teacher_paths(spec: str) -> list[str]:
    return [p.strip() for p in spec.split(",") if p.strip()]


def ensemble_probabilities(paths: list[str], dataset, classes, batch: int = 256) -> np.ndarray:
    """(N, classes) mean probability of the teachers over `dataset`, each face with its mirror."""
    from fer_ros.inference.engine import Engine
    from fer_ros.training.evaluate import predict

    total = None
    for number, path in enumerate(paths, 1):
        # Minutes on a CPU for a large set: say what the run is waiting for.
        print(f"teacher {number}/{len(paths)}: {path} on {len(dataset)} faces", flush=True)
        with Engine.from_checkpoint(path) as engine:
            if tuple(engine.labels) != tuple(classes):
                raise ConfigError(
                    f"data.teacher {path}: labels {list(engine.labels)}, the run's {list(classes)}"
                )
            probs, _ = predict(engine, dataset, batch, tta="flip", progress=sys.stderr.isatty())
        total = probs if total is None else total + probs
    return total / len(paths)


def with_teacher(train_set: ArrayDataset, paths: list[str], share: float) -> ArrayDataset:
    """`train_set` whose targets are (1 - share) x its own (one-hot rows for class indices) +
    share x the teachers' mean probabilities. An unusable face (no label, no votes) keeps its
    all-zero row: the teachers do not invent a label the data set refused."""
    if not isinstance(train_set, ArrayDataset):
        raise ConfigError(
            "data.teacher needs the training set in memory (data.in_memory: auto or true)"
        )
    classes = train_set.classes
    own = train_set.targets
    if own.dim() == 1:
        usable = own >= 0
        own = torch.zeros(len(own), len(classes)).index_put_(
            (torch.nonzero(usable).flatten(), own[usable]), torch.tensor(1.0)
        )
    usable = (own.sum(1) > 0).unsqueeze(1).float()
    taught = torch.from_numpy(ensemble_probabilities(paths, train_set, classes)).float()
    targets = (1 - share) * own + share * taught * usable
    return ArrayDataset(
        train_set.images, targets, classes, train_set.color, train_set.report, train_set.name
    )
