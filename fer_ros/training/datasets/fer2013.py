"""FER2013: fer2013.csv (emotion,pixels,Usage), 48x48 grey faces decoded once into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fer_ros.labels import FER7
from fer_ros.training.datasets.common import canonical_index, open_csv, require
from fer_ros.training.datasets.report import Report
from fer_ros.training.datasets.sets import ArrayDataset

FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def _decode_pixels(text: str, n: int) -> np.ndarray | None:
    try:
        values = np.array(text.split(), dtype=np.int32)
    except ValueError:
        return None
    if values.size != n or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        return None
    return values.astype(np.uint8)


def usage_and_pixels(usage: str | None, pixels: str | None, report: Report, where: str):
    """(split, 48x48 pixels) of a FER2013 row, or (None, None) with the reason counted."""
    split = FER2013_USAGE.get((usage or "").strip())
    if split is None:
        report.add_bad(f"unknown Usage {usage!r}", where)
        return None, None
    decoded = _decode_pixels(pixels or "", 48 * 48)
    if decoded is None:
        report.add_bad("wrong pixel count or value", where)
        return None, None
    return split, decoded


def load_fer2013(root: str | Path, labels=FER7, **_) -> dict[str, ArrayDataset]:
    """fer2013.csv; root is the file or the folder holding it."""
    path = Path(root)
    if path.is_dir():
        path = path / "fer2013.csv"
    require(path, "FER2013 CSV")
    label_map = [canonical_index(n, labels) for n in FER7]
    images: dict[str, list[np.ndarray]] = {s: [] for s in FER2013_USAGE.values()}
    targets: dict[str, list[int]] = {s: [] for s in FER2013_USAGE.values()}
    report = Report()
    f, reader = open_csv(path, ("emotion", "pixels", "Usage"))
    with f:
        for line, row in enumerate(reader, start=2):
            where = f"{path.name}:{line}"
            split, pixels = usage_and_pixels(row["Usage"], row["pixels"], report, where)
            if pixels is None:
                continue
            try:
                emotion = int(row["emotion"])
                if not 0 <= emotion < len(FER7):
                    raise ValueError
            except (TypeError, ValueError):
                report.add_bad("unknown label", where)
                continue
            target = label_map[emotion]
            if target is None:
                report.add_excluded(f"{FER7[emotion]} (not in the label set)")
                continue
            images[split].append(pixels.reshape(48, 48, 1))
            targets[split].append(target)
    return {
        split: gray48_set(
            images[split],
            torch.tensor(targets[split], dtype=torch.long),
            labels,
            report,
            f"fer2013/{split}",
        )
        for split in images
    }


def gray48_set(
    images: list[np.ndarray], targets: torch.Tensor, labels, report: Report, name: str
) -> ArrayDataset:
    """FER2013's (and FER+'s) faces of one split, 48x48 grey, as one in-memory set."""
    stacked = (
        torch.from_numpy(np.stack(images))
        if images
        else torch.zeros(0, 48, 48, 1, dtype=torch.uint8)
    )
    return ArrayDataset(stacked, targets, labels, "gray", report, name)
