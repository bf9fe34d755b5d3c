"""AffectNet, both layouts: the original release (CSV with face boxes) and the 2021 re-release."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_ros.errors import DatasetError
from fer_ros.labels import AFFECTNET8
from fer_ros.paths import IMAGE_SUFFIXES
from fer_ros.training.datasets.common import canonical_index, open_csv, require
from fer_ros.training.datasets.report import Report
from fer_ros.training.datasets.sets import ImageFileDataset

AFFECTNET_ORDER = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")


def _affectnet_image_dir(root: Path, first: str) -> Path:
    for d in (
        root / "Manually_Annotated_Images",
        root / "Manually_Annotated" / "Manually_Annotated_Images",
        root / "Manually_Annotated_compressed" / "Manually_Annotated_Images",
        root / "images",
        root,
    ):
        if (d / first).exists():
            return d
    raise DatasetError(
        f"{root}: cannot find AffectNet images (looked for {first} under "
        f"Manually_Annotated_Images/, Manually_Annotated/Manually_Annotated_Images/, images/, .)"
    )


def load_affectnet(
    root: str | Path, labels=AFFECTNET8, color: str = "rgb", size: int = 224, **_
) -> dict:
    """Original AffectNet: training.csv and validation.csv, faces cropped to their boxes.

    The validation set is the test set (the test set was never released), so val and test are the
    same.
    """
    root = require(Path(root), "AffectNet folder")
    columns = (
        "subDirectory_filePath",
        "face_x",
        "face_y",
        "face_width",
        "face_height",
        "expression",
    )
    out = {}
    for split, name in (("train", "training.csv"), ("val", "validation.csv")):
        path = root / name
        if not path.exists():
            continue
        label_map = [canonical_index(n, labels) for n in AFFECTNET_ORDER]
        report = Report()
        paths, targets, boxes = [], [], []
        image_dir = None
        f, reader = open_csv(path, columns)
        with f:
            for line, row in enumerate(reader, start=2):
                where = f"{name}:{line}"
                try:
                    expression = int(row["expression"])
                    box = tuple(
                        int(float(row[k]))
                        for k in ("face_x", "face_y", "face_width", "face_height")
                    )
                except (TypeError, ValueError):
                    report.add_bad("unreadable label or face box", where)
                    continue
                target = _affectnet_target(expression, label_map, report, where)
                if target is None:
                    continue
                rel = row["subDirectory_filePath"]
                if image_dir is None:
                    image_dir = _affectnet_image_dir(root, rel)
                p = image_dir / rel
                if not p.exists():
                    report.add_bad("missing image", str(rel))
                    continue
                paths.append(str(p))
                targets.append(target)
                boxes.append(box)
        out[split] = ImageFileDataset(
            paths, targets, labels, color, size, boxes, report, f"affectnet/{split}"
        )
    return _val_is_test(
        out, f"{root}: no training.csv or validation.csv (original AffectNet layout)"
    )


def _val_is_test(splits: dict, missing: str) -> dict:
    """AffectNet's test set was never released: its validation set is the test set too (the paper's
    protocol). `missing` is the error when the layout has neither split."""
    if not splits:
        raise DatasetError(missing)
    if "val" in splits:
        splits["test"] = splits["val"]
    return splits


def _affectnet_target(expression: int, label_map: list, report: Report, where: str) -> int | None:
    """Canonical index of an AffectNet expression code, or None with the reason counted in
    `report`.

    Both AffectNet layouts share the codes: 8-10 (none, uncertain, no face) are excluded by
    protocol, codes outside 0-10 are bad rows, and a class outside the label set (contempt for
    AffectNet-7) is excluded.
    """
    if 8 <= expression <= 10:
        report.add_excluded(("none", "uncertain", "no face")[expression - 8] + " (labels 8-10)")
        return None
    if not 0 <= expression < len(AFFECTNET_ORDER):
        report.add_bad("unknown label", where)
        return None
    if label_map[expression] is None:
        report.add_excluded(f"{AFFECTNET_ORDER[expression]} (not in the label set)")
        return None
    return label_map[expression]


def load_affectnet2021(
    root: str | Path, labels=AFFECTNET8, color: str = "rgb", size: int = 224, **_
) -> dict:
    """AffectNet 2021 re-release: {train_set,val_set}/images/<id>.jpg +
    annotations/<id>_exp.npy."""
    root = require(Path(root), "AffectNet folder")
    label_map = [canonical_index(n, labels) for n in AFFECTNET_ORDER]
    out = {}
    for split, name in (("train", "train_set"), ("val", "val_set")):
        image_dir, ann_dir = root / name / "images", root / name / "annotations"
        if not image_dir.is_dir():
            continue
        require(ann_dir, "AffectNet annotations folder")
        report = Report()
        paths, targets = [], []
        for img in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            ann = ann_dir / f"{img.stem}_exp.npy"
            try:
                expression = int(np.load(ann, allow_pickle=False).item())
            except (OSError, ValueError):
                report.add_bad("missing or unreadable annotation", ann.name)
                continue
            target = _affectnet_target(expression, label_map, report, ann.name)
            if target is None:
                continue
            paths.append(str(img))
            targets.append(target)
        out[split] = ImageFileDataset(
            paths, targets, labels, color, size, None, report, f"affectnet2021/{split}"
        )
    return _val_is_test(
        out, f"{root}: expected train_set/images and val_set/images (AffectNet 2021 layout)"
    )
