"""RAF-DB basic: EmoLabel/list_patition_label.txt and the aligned faces in Image/aligned/."""

from __future__ import annotations

from pathlib import Path

from fer_ros.labels import FER7
from fer_ros.training.datasets.common import canonical_index, require
from fer_ros.training.datasets.report import Report
from fer_ros.training.datasets.sets import ImageFileDataset

RAFDB_ORDER = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")  # labels 1..7


def load_rafdb(root: str | Path, labels=FER7, color: str = "rgb", size: int = 224, **_) -> dict:
    """RAF-DB basic: train_*/test_* rows of EmoLabel/list_patition_label.txt; val is the test
    set."""
    root = require(Path(root), "RAF-DB folder")
    list_path = require(root / "EmoLabel" / "list_patition_label.txt", "RAF-DB label list")
    image_dir = require(root / "Image" / "aligned", "RAF-DB aligned images")
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
    out = {
        s: ImageFileDataset(p, t, labels, color, size, None, report, f"rafdb/{s}")
        for s, (p, t) in items.items()
    }
    out["val"] = out["test"]
    return out
