"""Face expression data sets, each mapped by class *name* onto a canonical label list.

Every loader returns {split: dataset}. A dataset yields uint8 images (H, W, C) with C = 1 (grey) or 3
(RGB) and a target (class index into `classes`, or for FER+ probabilities a vote distribution).
Augmentation, resizing to the model input and normalisation happen later, on whole batches
(`fer_ros.training.augment`).

Formats (`data.format`):
  fer2013        fer2013.csv (emotion,pixels,Usage): Training / PublicTest / PrivateTest -> train / val / test,
                 decoded once into one uint8 tensor
  fer2013_folder folder copies: <root>/<split>/<class name>/*.png, classes matched by name
  ferplus        fer2013new.csv (FER+ votes) with fer2013.csv beside it; target majority or probability
  affectnet      original release: training.csv / validation.csv with face boxes, labels 8-10 excluded
  affectnet2021  {train_set,val_set}/images/<id>.jpg + annotations/<id>_exp.npy
  rafdb          RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/*_aligned.jpg
  synthetic      procedurally drawn faces (fer_ros.synthetic)
  auto           whichever of the above the root looks like

AffectNet-7 / -8 is the choice of label set (`data.labels` fer7 / affectnet8): contempt rows are
excluded from a 7-class set. Rows that cannot be used are never dropped silently: each loader counts
them by reason in `dataset.report` (bad rows: wrong pixel count, unknown label, missing or unreadable
image; excluded rows: labels outside the label set, FER+ ties), and training prints the counts.
"""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_ros.errors import ConfigError, DatasetError, FrameError
from fer_ros.imagecheck import read_image
from fer_ros.labels import AFFECTNET8, ALIASES, FER7, LABEL_SETS, canonical
from fer_ros.model.preprocess import resize_square
from fer_ros.paths import IMAGE_SUFFIXES

# Source label orders (they all differ). FER2013's own order is fer_ros's FER7.
FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
AFFECTNET_ORDER = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
RAFDB_ORDER = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")  # labels 1..7
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_ALIASES = {
    "train": "train", "training": "train", "train_set": "train",
    "val": "val", "valid": "val", "validation": "val", "val_set": "val", "publictest": "val",
    "test": "test", "testing": "test", "privatetest": "test",
}


@dataclass
class Report:
    """Rows a loader could not use, counted by reason, with a few examples of each."""

    bad: Counter = field(default_factory=Counter)
    excluded: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add_bad(self, reason: str, where: str = "") -> None:
        self.bad[reason] += 1
        if where:
            self.examples.setdefault(reason, []).append(where) if len(self.examples.get(reason, [])) < 3 else None

    def add_excluded(self, reason: str, n: int = 1) -> None:
        self.excluded[reason] += n

    def merge(self, other: "Report") -> None:
        self.bad.update(other.bad)
        self.excluded.update(other.excluded)
        for k, v in other.examples.items():
            self.examples.setdefault(k, []).extend(v[: 3 - len(self.examples.get(k, []))])

    def lines(self) -> list[str]:
        out = []
        for reason, n in sorted(self.bad.items()):
            ex = self.examples.get(reason)
            out.append(f"bad rows: {n} {reason}" + (f" (e.g. {', '.join(ex)})" if ex else ""))
        out += [f"excluded: {n} {reason}" for reason, n in sorted(self.excluded.items())]
        return out


def canonical_index(name: str, classes: tuple[str, ...]) -> int | None:
    """Index of a data set's class name in the canonical list, None when the list lacks it."""
    canon = canonical(name)
    return classes.index(canon) if canon in classes else None


def label_set(name: str) -> tuple[str, ...]:
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


class ArrayDataset(Dataset):
    """Images held in memory as one uint8 tensor (N, H, W, C); batches are taken by indexing."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, classes: tuple[str, ...], color: str,
                 report: Report | None = None, name: str = ""):
        assert images.dtype == torch.uint8 and images.dim() == 4, "images must be uint8 (N, H, W, C)"
        assert len(images) == len(targets), "one target per image"
        self.images, self.targets, self.classes, self.color = images, targets, tuple(classes), color
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

    def __init__(self, paths: list[str], targets: list[int], classes: tuple[str, ...], color: str, size: int,
                 boxes: list[tuple[int, int, int, int]] | None = None, report: Report | None = None, name: str = ""):
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
            img = read_image(self.paths[i], cv2.IMREAD_GRAYSCALE if self.color == "gray" else cv2.IMREAD_COLOR)
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
        `__getitem__`): a small set (FER2013 is 66 MB at 48x48) then costs no decoding per epoch and
        needs no worker processes competing with training for the CPU."""
        from concurrent.futures import ThreadPoolExecutor  # OpenCV's decoders release the GIL

        c = 1 if self.color == "gray" else 3
        images = torch.zeros(len(self), self.size, self.size, c, dtype=torch.uint8)
        targets = self.targets.clone()
        with ThreadPoolExecutor(max(1, cpu_count())) as pool:
            loaded = pool.map(self.load, range(len(self)), chunksize=256)
            if progress:
                from tqdm import tqdm

                loaded = tqdm(loaded, total=len(self), desc=f"loading {self.name}", unit="img", leave=False)
            for i, img in enumerate(loaded):
                if img is None:
                    targets[i] = -1
                    self.report.add_bad("unreadable image", self.paths[i])
                else:
                    images[i] = torch.from_numpy(img)
        return ArrayDataset(images, targets, self.classes, self.color, self.report, self.name)


# ---------------------------------------------------------------------------------------------
# Loaders. Each returns {split: dataset} for the splits the layout has.


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _open_csv(path: Path, required: tuple[str, ...]):
    f = open(path, newline="")
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        f.close()
        raise DatasetError(f"{path}: not the expected layout, columns {missing} missing "
                           f"(has {reader.fieldnames}); expected {', '.join(required)}")
    return f, reader


def _decode_pixels(text: str, n: int) -> np.ndarray | None:
    try:
        values = np.array(text.split(), dtype=np.int32)
    except ValueError:
        return None
    if values.size != n or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        return None
    return values.astype(np.uint8)


def _usage_and_pixels(usage: str | None, pixels: str | None, report: Report, where: str):
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
    _require(path, "FER2013 CSV")
    label_map = [canonical_index(n, labels) for n in FER7]
    images: dict[str, list[np.ndarray]] = {s: [] for s in FER2013_USAGE.values()}
    targets: dict[str, list[int]] = {s: [] for s in FER2013_USAGE.values()}
    report = Report()
    f, reader = _open_csv(path, ("emotion", "pixels", "Usage"))
    with f:
        for line, row in enumerate(reader, start=2):
            where = f"{path.name}:{line}"
            split, pixels = _usage_and_pixels(row["Usage"], row["pixels"], report, where)
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
        split: ArrayDataset(torch.from_numpy(np.stack(images[split])) if images[split]
                            else torch.zeros(0, 48, 48, 1, dtype=torch.uint8),
                            torch.tensor(targets[split], dtype=torch.long), labels, "gray", report, f"fer2013/{split}")
        for split in images
    }


def _split_dirs(root: Path) -> dict[str, Path]:
    dirs = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        split = SPLIT_ALIASES.get(d.name.lower())
        if split and split not in dirs:
            dirs[split] = d
    return dirs


def load_folder(root: str | Path, labels=FER7, color: str = "gray", size: int = 48, **_) -> dict[str, ImageFileDataset]:
    """<root>/<split>/<class>/*.png (FER2013 folder copies and any similar layout); classes by name."""
    root = _require(Path(root), "image folder")
    splits = _split_dirs(root)
    if not splits:
        raise DatasetError(f"{root}: expected split folders (train/, val/ or test/) holding a folder per class")
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
        out[split] = ImageFileDataset(paths, targets, labels, color, size, report=report, name=f"folder/{split}")
    return out


FERPLUS_TARGETS = ("majority", "plurality", "probability")


def ferplus_winner(votes: np.ndarray, rule: str) -> tuple[int | None, str]:
    """(index into FERPLUS_VOTES, "") of the class a FER+ row's 10 votes (8 emotions, unknown, not a
    face) give under `rule`, or (None, why the row is excluded)."""
    emotions = len(FERPLUS_VOTES)
    if rule == "majority":  # Microsoft's FER+ rule
        votes = np.where(votes > 1, votes, 0)  # a single vote is an outlier
        top = int(np.argmax(votes))
        if votes.sum() == 0 or votes[top] <= 0.5 * votes.sum():
            return None, "no majority after dropping single votes"
    else:
        top = int(np.argmax(votes))
        if votes[top] == 0 or (votes == votes[top]).sum() > 1:
            return None, "tied top votes" if votes[top] else "no votes"
    if top >= emotions:
        return None, "majority unknown or not a face"
    return top, ""


def load_ferplus(root: str | Path, labels=FER7, target: str = "majority", **_) -> dict[str, ArrayDataset]:
    """FER+ votes (fer2013new.csv) over the pixels of fer2013.csv in the same folder, row by row.

    Targets (`data.target`):
      majority     Microsoft's FER+ rule: single votes are dropped as outliers, then the class with
                   more than half of the remaining votes (unknown and not-a-face included) wins;
                   rows without such a class, or won by unknown / not a face, are excluded.
      plurality    the class with the most votes; rows whose top vote is tied, or is unknown / not a
                   face, are excluded.
      probability  the vote distribution over the label set's classes (for cross-entropy).
    """
    path = Path(root)
    if path.is_dir():
        path = path / "fer2013new.csv"
    _require(path, "FER+ CSV (fer2013new.csv)")
    pixels_path = _require(path.parent / "fer2013.csv", "fer2013.csv beside fer2013new.csv (FER+ has votes only)")
    if target not in FERPLUS_TARGETS:
        raise ConfigError(f"FER+ target must be one of {', '.join(FERPLUS_TARGETS)}, got {target!r}")
    vote_map = [canonical_index(n, labels) for n in FERPLUS_VOTES]
    report = Report()
    images = {s: [] for s in FER2013_USAGE.values()}
    targets = {s: [] for s in FER2013_USAGE.values()}
    fp, pixel_rows = _open_csv(pixels_path, ("emotion", "pixels", "Usage"))
    fv, vote_rows = _open_csv(path, ("Usage", "Image name", *FERPLUS_VOTES, "unknown", "NF"))
    with fp, fv:
        for line, (prow, vrow) in enumerate(zip(pixel_rows, vote_rows), start=2):
            where = f"{path.name}:{line}"
            split, px = _usage_and_pixels(vrow["Usage"], prow["pixels"], report, where)
            if px is None:
                continue
            try:
                votes = np.array([float(vrow[n]) for n in FERPLUS_VOTES], dtype=np.float32)
            except (TypeError, ValueError):
                report.add_bad("unreadable votes", where)
                continue
            if not (vrow["Image name"] or "").strip():
                report.add_excluded("not a face (FER+ gives no image name)")
                continue
            kept = np.zeros(len(labels), np.float32)
            for v, idx in zip(votes, vote_map):
                if idx is not None:
                    kept[idx] += v
            if target in ("majority", "plurality"):
                try:
                    others = np.array([float(vrow["unknown"] or 0), float(vrow["NF"] or 0)], np.float32)
                except (TypeError, ValueError):
                    report.add_bad("unreadable votes", where)
                    continue
                winner, why = ferplus_winner(np.concatenate([votes, others]), target)
                if winner is None:
                    report.add_excluded(why)
                    continue
                idx = vote_map[winner]
                if idx is None:
                    report.add_excluded(f"{FERPLUS_VOTES[winner]} (not in the label set)")
                    continue
                targets[split].append(idx)
            else:
                if kept.sum() == 0:
                    report.add_excluded("no votes for the label set's classes")
                    continue
                targets[split].append(kept / kept.sum())
            images[split].append(px.reshape(48, 48, 1))
        if next(pixel_rows, None) is not None or next(vote_rows, None) is not None:
            raise DatasetError(f"{path} and {pixels_path} have different row counts; FER+ rows must align with FER2013")
    out = {}
    for split in images:
        imgs = torch.from_numpy(np.stack(images[split])) if images[split] else torch.zeros(0, 48, 48, 1, dtype=torch.uint8)
        if target != "probability":
            t = torch.tensor(targets[split], dtype=torch.long)
        else:
            t = torch.from_numpy(np.stack(targets[split])) if targets[split] else torch.zeros(0, len(labels))
        out[split] = ArrayDataset(imgs, t, labels, "gray", report, f"ferplus/{split}")
    return out


def _affectnet_image_dir(root: Path, first: str) -> Path:
    for d in (root / "Manually_Annotated_Images", root / "Manually_Annotated" / "Manually_Annotated_Images",
              root / "Manually_Annotated_compressed" / "Manually_Annotated_Images", root / "images", root):
        if (d / first).exists():
            return d
    raise DatasetError(f"{root}: cannot find AffectNet images (looked for {first} under "
                       f"Manually_Annotated_Images/, Manually_Annotated/Manually_Annotated_Images/, images/, .)")


def load_affectnet(root: str | Path, labels=AFFECTNET8, color: str = "rgb", size: int = 224, **_) -> dict:
    """Original AffectNet: training.csv and validation.csv, faces cropped to their boxes.

    The validation set is the test set (the test set was never released), so val and test are the same.
    """
    root = _require(Path(root), "AffectNet folder")
    columns = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
    out = {}
    for split, name in (("train", "training.csv"), ("val", "validation.csv")):
        path = root / name
        if not path.exists():
            continue
        label_map = [canonical_index(n, labels) for n in AFFECTNET_ORDER]
        report = Report()
        paths, targets, boxes = [], [], []
        image_dir = None
        f, reader = _open_csv(path, columns)
        with f:
            for line, row in enumerate(reader, start=2):
                where = f"{name}:{line}"
                try:
                    expression = int(row["expression"])
                    box = tuple(int(float(row[k])) for k in ("face_x", "face_y", "face_width", "face_height"))
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
        out[split] = ImageFileDataset(paths, targets, labels, color, size, boxes, report, f"affectnet/{split}")
    return _val_is_test(out, f"{root}: no training.csv or validation.csv (original AffectNet layout)")


def _val_is_test(splits: dict, missing: str) -> dict:
    """AffectNet's test set was never released: its validation set is the test set too (the paper's
    protocol). `missing` is the error when the layout has neither split."""
    if not splits:
        raise DatasetError(missing)
    if "val" in splits:
        splits["test"] = splits["val"]
    return splits


def _affectnet_target(expression: int, label_map: list, report: Report, where: str) -> int | None:
    """Canonical index of an AffectNet expression code, or None with the reason counted in `report`.

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


def load_affectnet2021(root: str | Path, labels=AFFECTNET8, color: str = "rgb", size: int = 224, **_) -> dict:
    """AffectNet 2021 re-release: {train_set,val_set}/images/<id>.jpg + annotations/<id>_exp.npy."""
    root = _require(Path(root), "AffectNet folder")
    label_map = [canonical_index(n, labels) for n in AFFECTNET_ORDER]
    out = {}
    for split, name in (("train", "train_set"), ("val", "val_set")):
        image_dir, ann_dir = root / name / "images", root / name / "annotations"
        if not image_dir.is_dir():
            continue
        _require(ann_dir, "AffectNet annotations folder")
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
        out[split] = ImageFileDataset(paths, targets, labels, color, size, None, report, f"affectnet2021/{split}")
    return _val_is_test(out, f"{root}: expected train_set/images and val_set/images (AffectNet 2021 layout)")


def load_rafdb(root: str | Path, labels=FER7, color: str = "rgb", size: int = 224, **_) -> dict:
    """RAF-DB basic: train_*/test_* rows of EmoLabel/list_patition_label.txt; val is the test set."""
    root = _require(Path(root), "RAF-DB folder")
    list_path = _require(root / "EmoLabel" / "list_patition_label.txt", "RAF-DB label list")
    image_dir = _require(root / "Image" / "aligned", "RAF-DB aligned images")
    label_map = [canonical_index(n, labels) for n in RAFDB_ORDER]
    report = Report()
    items = {"train": ([], []), "test": ([], [])}
    for line, text in enumerate(list_path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{list_path.name}:{line}"
        parts = text.split()
        split = parts[0].split("_")[0] if parts else ""
        try:
            label = int(parts[1])
            if not 1 <= label <= 7:
                raise ValueError
        except (IndexError, ValueError):
            report.add_bad("unknown label", where)
            continue
        if split not in items:
            report.add_bad("name is neither train_* nor test_*", where)
            continue
        p = image_dir / f"{Path(parts[0]).stem}_aligned{Path(parts[0]).suffix}"
        if not p.exists():
            report.add_bad("missing image", p.name)
            continue
        if label_map[label - 1] is None:
            report.add_excluded(f"{RAFDB_ORDER[label - 1]} (not in the label set)")
            continue
        items[split][0].append(str(p))
        items[split][1].append(label_map[label - 1])
    out = {s: ImageFileDataset(p, t, labels, color, size, None, report, f"rafdb/{s}") for s, (p, t) in items.items()}
    out["val"] = out["test"]
    return out


def load_synthetic(root: str | Path = "", labels=FER7, color: str = "rgb", size: int = 64, n_train: int = 7000,
                   n_val: int = 1400, n_test: int = 1400, seed: int = 0, **_) -> dict[str, ArrayDataset]:
    """Procedurally drawn faces at `size`, drawn once into memory; the splits use disjoint seeds."""
    from fer_ros.synthetic import SPLIT_SEEDS, render_faces

    out = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        images, targets = render_faces(n, labels, size, seed * 10 + SPLIT_SEEDS[split], gray=color == "gray",
                                       progress=n >= 2000 and sys.stderr.isatty())
        out[split] = ArrayDataset(torch.from_numpy(images), torch.from_numpy(targets), labels, color,
                                  name=f"synthetic/{split}")
    return out


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
    if _split_dirs(root):
        return "fer2013_folder"
    found = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "nothing"
    raise DatasetError(f"{root}: unrecognised data set layout (found {found}); expected fer2013.csv, "
                       "fer2013new.csv, training.csv/validation.csv (AffectNet), train_set/val_set (AffectNet 2021), "
                       "EmoLabel/ (RAF-DB) or train/ val/ test/ folders per class")


def load_splits(fmt: str, root: str | Path, labels: str | tuple[str, ...] = "fer7", **options) -> dict:
    """{split: dataset} for a format (or "auto") at root; options go to the loader (color, size, ...)."""
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
        raise DatasetError(f"{root} holds a folder where the {fmt} format expects a file") from None


def subset(dataset, indices: torch.Tensor, name: str = ""):
    """The same kind of data set holding only `indices` (sharing the report)."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    if isinstance(dataset, ArrayDataset):
        return ArrayDataset(dataset.images[idx], dataset.targets[idx], dataset.classes, dataset.color,
                            dataset.report, name or dataset.name)
    return ImageFileDataset([dataset.paths[i] for i in idx.tolist()], dataset.targets[idx].tolist(), dataset.classes,
                            dataset.color, dataset.size, None if dataset.boxes is None else
                            [dataset.boxes[i] for i in idx.tolist()], dataset.report, name or dataset.name)


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
    return subset(dataset, keep, f"{dataset.name} (rest)"), subset(dataset, held, f"{dataset.name} (held out)")


def split_names(splits: dict) -> str:
    return ", ".join(f"{k} ({len(v)})" for k, v in splits.items())


def pick_split(splits: dict, name: str):
    if name not in splits:
        raise DatasetError(f"no split {name!r}; this data set has {split_names(splits)}")
    return splits[name]


def describe(dataset) -> str:
    counts = dataset.class_counts().tolist()
    return f"{len(dataset)} images: " + ", ".join(f"{c} {n}" for c, n in zip(dataset.classes, counts))


def all_reports(splits: dict) -> Report:
    """One report over every split (loaders that share one report across splits count it once)."""
    total, seen = Report(), set()
    for ds in splits.values():
        if id(ds.report) not in seen:
            seen.add(id(ds.report))
            total.merge(ds.report)
    return total


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
