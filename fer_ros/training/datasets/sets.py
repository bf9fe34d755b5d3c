"""The two kinds of data set every loader returns, and the splits carved from them.

`ArrayDataset` holds uint8 images in memory (N, H, W, C); `ImageFileDataset` reads files in the
DataLoader's workers, cropped to a face box and resized, and can decode itself once into an
`ArrayDataset` (`to_memory`).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_ros.errors import DatasetError, FrameError
from fer_ros.imagecheck import read_image
from fer_ros.model.preprocess import resize_square
from fer_ros.training.datasets.report import Report


class ArrayDataset(Dataset):
    """Images held in memory as one uint8 tensor (N, H, W, C); batches are taken by indexing."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: tuple[str, ...],
        color: str,
        report: Report | None = None,
        name: str = "",
    ):
        assert images.dtype == torch.uint8 and images.dim() == 4, (
            "images must be uint8 (N, H, W, C)"
        )
        assert len(images) == len(targets), "one target per image"
        self.images, self.targets, self.classes, self.color = (
            images,
            targets,
            tuple(classes),
            color,
        )
        self.report, self.name = report or Report(), name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.targets[i]

    def __getitems__(self, indices: list[int]):
        # DataLoader hands a whole batch of indices here: one gather instead of B item copies.
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.targets[idx]

    def class_counts(self) -> torch.Tensor:
        t = self.targets.argmax(1) if self.targets.dim() == 2 else self.targets
        return torch.bincount(t[t >= 0], minlength=len(self.classes))

    def hard_targets(self) -> torch.Tensor:
        return self.targets.argmax(1) if self.targets.dim() == 2 else self.targets


class ImageFileDataset(Dataset):
    """Images read from files in DataLoader workers, cropped to a face box, resized to `size`.

    An image that cannot be read comes back black with target -1: training skips it (the loss
    ignores -1) and counts it, so one corrupt file neither stops a run nor goes unnoticed.
    """

    def __init__(
        self,
        paths: list[str],
        targets: list[int],
        classes: tuple[str, ...],
        color: str,
        size: int,
        boxes: list[tuple[int, int, int, int]] | None = None,
        report: Report | None = None,
        name: str = "",
    ):
        assert len(paths) == len(targets), "one target per image"
        self.paths, self.targets = list(paths), torch.as_tensor(targets, dtype=torch.long)
        self.boxes = boxes
        self.classes, self.color, self.size = tuple(classes), color, int(size)
        self.report, self.name = report or Report(), name

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray | None:
        """Image i as uint8 (size, size, C), or None when the file is unreadable."""
        try:  # the node's checks: JPEG or PNG, size from the header within the pixel budget
            img = read_image(
                self.paths[i], cv2.IMREAD_GRAYSCALE if self.color == "gray" else cv2.IMREAD_COLOR
            )
        except FrameError:
            return None
        if self.boxes is not None:
            x, y, w, h = self.boxes[i]
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(img.shape[1], x + w), min(img.shape[0], y + h)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                img = img[y0:y1, x0:x1]
        img = resize_square(img, self.size)
        if img.ndim == 2:
            return img[..., None]
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int):
        img = self.load(i)
        if img is None:
            c = 1 if self.color == "gray" else 3
            return torch.zeros(self.size, self.size, c, dtype=torch.uint8), torch.tensor(-1)
        return torch.from_numpy(np.ascontiguousarray(img)), self.targets[i]

    def class_counts(self) -> torch.Tensor:
        t = self.targets
        return torch.bincount(t[t >= 0], minlength=len(self.classes))

    def hard_targets(self) -> torch.Tensor:
        return self.targets

    def nbytes(self) -> int:
        return len(self) * self.size * self.size * (1 if self.color == "gray" else 3)

    def to_memory(self, progress: bool = False) -> ArrayDataset:
        """Every image decoded once into one uint8 tensor (unreadable ones black, target -1, as in
        `__getitem__`): a small set (FER2013 is 66 MB at 48x48) then costs no decoding per epoch
        and needs no worker processes competing with training for the CPU."""
        from concurrent.futures import ThreadPoolExecutor  # OpenCV's decoders release the GIL

        c = 1 if self.color == "gray" else 3
        images = torch.zeros(len(self), self.size, self.size, c, dtype=torch.uint8)
        targets = self.targets.clone()
        with ThreadPoolExecutor(max(1, cpu_count())) as pool:
            loaded = pool.map(self.load, range(len(self)), chunksize=256)
            if progress:
                from tqdm import tqdm

                loaded = tqdm(
                    loaded, total=len(self), desc=f"loading {self.name}", unit="img", leave=False
                )
            for i, img in enumerate(loaded):
                if img is None:
                    targets[i] = -1
                    self.report.add_bad("unreadable image", self.paths[i])
                else:
                    images[i] = torch.from_numpy(img)
        return ArrayDataset(images, targets, self.classes, self.color, self.report, self.name)


def subset(dataset, indices: torch.Tensor, name: str = ""):
    """The same kind of data set holding only `indices` (sharing the report)."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    if isinstance(dataset, ArrayDataset):
        return ArrayDataset(
            dataset.images[idx],
            dataset.targets[idx],
            dataset.classes,
            dataset.color,
            dataset.report,
            name or dataset.name,
        )
    return ImageFileDataset(
        [dataset.paths[i] for i in idx.tolist()],
        dataset.targets[idx].tolist(),
        dataset.classes,
        dataset.color,
        dataset.size,
        None if dataset.boxes is None else [dataset.boxes[i] for i in idx.tolist()],
        dataset.report,
        name or dataset.name,
    )


def hold_out(dataset, fraction: float, seed: int = 0):
    """(rest, held-out) with `fraction` of every class held out: a validation split carved from a
    training set, for data sets whose only other split is the test set (AffectNet, RAF-DB)."""
    if not 0 < fraction < 1:
        raise ValueError(f"hold-out fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    targets = dataset.hard_targets()
    keep, held = [], []
    for c in targets.unique().tolist():
        idx = torch.nonzero(targets == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = int(round(len(idx) * fraction))
        held.append(idx[:n])
        keep.append(idx[n:])
    keep, held = torch.cat(keep).sort().values, torch.cat(held).sort().values
    return subset(dataset, keep, f"{dataset.name} (rest)"), subset(
        dataset, held, f"{dataset.name} (held out)"
    )


def split_names(splits: dict) -> str:
    return ", ".join(f"{k} ({len(v)})" for k, v in splits.items())


def pick_split(splits: dict, name: str):
    if name not in splits:
        raise DatasetError(f"no split {name!r}; this data set has {split_names(splits)}")
    return splits[name]


def describe(dataset) -> str:
    counts = dataset.class_counts().tolist()
    return f"{len(dataset)} images: " + ", ".join(
        f"{c} {n}" for c, n in zip(dataset.classes, counts)
    )


def cpu_count() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
