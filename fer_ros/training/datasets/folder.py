"""Image folders: <root>/<split>/<class name>/*.png (FER2013 folder copies and any similar
layout)."""

from __future__ import annotations

from pathlib import Path

from fer_ros.errors import DatasetError
from fer_ros.labels import ALIASES, FER7
from fer_ros.paths import IMAGE_SUFFIXES
from fer_ros.training.datasets.common import canonical_index, require, split_dirs
from fer_ros.training.datasets.report import Report
from fer_ros.training.datasets.sets import ImageFileDataset


def load_folder(
    root: str | Path, labels=FER7, color: str = "gray", size: int = 48, **_
) -> dict[str, ImageFileDataset]:
    """<root>/<split>/<class>/*.png (FER2013 folder copies and any similar layout); classes by
    name."""
    root = require(Path(root), "image folder")
    splits = split_dirs(root)
    if not splits:
        raise DatasetError(
            f"{root}: expected split folders (train/, val/ or test/) holding a folder per class"
        )
    out = {}
    for split, d in splits.items():
        report = Report()
        paths, targets = [], []
        for class_dir in sorted(p for p in d.iterdir() if p.is_dir()):
            target = canonical_index(class_dir.name, labels)
            files = [p for p in sorted(class_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
            if target is None:
                if class_dir.name.lower() in ALIASES:
                    report.add_excluded(f"{class_dir.name} (not in the label set)", len(files))
                else:
                    report.add_bad(f"unknown class folder {class_dir.name!r}", str(class_dir))
                continue
            paths += [str(p) for p in files]
            targets += [target] * len(files)
        out[split] = ImageFileDataset(
            paths, targets, labels, color, size, report=report, name=f"folder/{split}"
        )
    return out
