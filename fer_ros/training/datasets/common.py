"""What every loader shares: label mapping, split folder names, checked paths and CSV files."""

from __future__ import annotations

import csv
from pathlib import Path

from fer_ros.errors import DatasetError
from fer_ros.labels import LABEL_SETS, canonical

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "train_set": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "val_set": "val",
    "publictest": "val",
    "test": "test",
    "testing": "test",
    "privatetest": "test",
}


def canonical_index(name: str, classes: tuple[str, ...]) -> int | None:
    """Index of a data set's class name in the canonical list, None when the list lacks it."""
    canon = canonical(name)
    return classes.index(canon) if canon in classes else None


def label_set(name: str) -> tuple[str, ...]:
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{what} not found: {path}")
    return path


def open_csv(path: Path, required: tuple[str, ...]):
    f = open(path, newline="")
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        f.close()
        raise DatasetError(
            f"{path}: not the expected layout, columns {missing} missing "
            f"(has {reader.fieldnames}); expected {', '.join(required)}"
        )
    return f, reader


def split_dirs(root: Path) -> dict[str, Path]:
    dirs = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_ALIASES.get(d.name.lower())
        if split and split not in dirs:
            dirs[split] = d
    return dirs
