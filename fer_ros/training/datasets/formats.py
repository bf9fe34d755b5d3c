"""The formats by name (`data.format`), how a path is recognised, and `load_splits`, the one
door."""

from __future__ import annotations

from pathlib import Path

from fer_ros.errors import DatasetError
from fer_ros.training.datasets.affectnet import load_affectnet, load_affectnet2021
from fer_ros.training.datasets.common import label_set, split_dirs
from fer_ros.training.datasets.fer2013 import load_fer2013
from fer_ros.training.datasets.ferplus import load_ferplus
from fer_ros.training.datasets.folder import load_folder
from fer_ros.training.datasets.rafdb import load_rafdb
from fer_ros.training.datasets.synthetic import load_synthetic

FORMATS = {
    "fer2013": load_fer2013,
    "fer2013_folder": load_folder,
    "folder": load_folder,
    "ferplus": load_ferplus,
    "affectnet": load_affectnet,
    "affectnet2021": load_affectnet2021,
    "rafdb": load_rafdb,
    "synthetic": load_synthetic,
}


def detect_format(root: str | Path) -> str:
    """The format a path looks like, or a DatasetError naming what was found."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"data set path does not exist: {root}")
    if root.is_file():
        header = root.open(newline="").readline()
        if "Image name" in header:
            return "ferplus"
        if "pixels" in header and "Usage" in header:
            return "fer2013"
        raise DatasetError(f"{root}: unrecognised CSV (header {header.strip()[:80]!r})")
    if (root / "fer2013new.csv").exists():
        return "ferplus"
    if (root / "fer2013.csv").exists():
        return "fer2013"
    if (root / "training.csv").exists() or (root / "validation.csv").exists():
        return "affectnet"
    if (root / "train_set" / "images").is_dir() or (root / "val_set" / "images").is_dir():
        return "affectnet2021"
    if (root / "EmoLabel" / "list_patition_label.txt").exists():
        return "rafdb"
    if split_dirs(root):
        return "fer2013_folder"
    found = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "nothing"
    raise DatasetError(
        f"{root}: unrecognised data set layout (found {found}); expected fer2013.csv, "
        "fer2013new.csv, training.csv/validation.csv (AffectNet), train_set/val_set (AffectNet "
        "2021), "
        "EmoLabel/ (RAF-DB) or train/ val/ test/ folders per class"
    )


def load_splits(
    fmt: str, root: str | Path, labels: str | tuple[str, ...] = "fer7", **options
) -> dict:
    """{split: dataset} for a format (or "auto") at root; options go to the loader (color, size,
    ...)."""
    classes = label_set(labels) if isinstance(labels, str) else tuple(labels)
    if fmt == "auto":
        fmt = detect_format(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")
    if fmt != "synthetic" and not Path(root).exists():
        raise DatasetError(f"data set path does not exist: {root}")
    try:
        return FORMATS[fmt](root, labels=classes, **options)
    except NotADirectoryError:  # the format reads a folder (or a file inside one)
        raise DatasetError(f"{root} is not a folder the {fmt} format can read") from None
    except IsADirectoryError:
        raise DatasetError(
            f"{root} holds a folder where the {fmt} format expects a file"
        ) from None
