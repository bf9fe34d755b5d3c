"""FER+: Microsoft's ten votes per FER2013 face (fer2013new.csv), over fer2013.csv's pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fer_ros.errors import ConfigError, DatasetError
from fer_ros.labels import FER7
from fer_ros.training.datasets.common import canonical_index, open_csv, require
from fer_ros.training.datasets.fer2013 import FER2013_USAGE, gray48_set, usage_and_pixels
from fer_ros.training.datasets.report import Report
from fer_ros.training.datasets.sets import ArrayDataset

FERPLUS_VOTES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)


FERPLUS_TARGETS = ("majority", "plurality", "probability", "mixed")


def ferplus_winner(votes: np.ndarray, rule: str) -> tuple[int | None, str]:
    """(index into FERPLUS_VOTES, "") of the class a FER+ row's 10 votes (8 emotions, unknown, not
    a face) give under `rule`, or (None, why the row is excluded)."""
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


def load_ferplus(
    root: str | Path, labels=FER7, target: str = "majority", vote_share: float = 0.5, **_
) -> dict[str, ArrayDataset]:
    """FER+ votes (fer2013new.csv) over the pixels of fer2013.csv in the same folder, row by row.

    Targets (`data.target`):
      majority     Microsoft's FER+ rule: single votes are dropped as outliers, then the class with
                   more than half of the remaining votes (unknown and not-a-face included) wins;
                   rows without such a class, or won by unknown / not a face, are excluded.
      plurality    the class with the most votes; rows whose top vote is tied, or is unknown / not
      a
                   face, are excluded.
      probability  the vote distribution over the label set's classes (for cross-entropy).
      mixed        (1 - vote_share) x FER2013's own label (one-hot) + vote_share x the vote
                   distribution: the original label keeps PrivateTest's labelling, the votes say
                   what ten people saw (with vote_share <= 0.5 the original label stays the argmax,
                   so validation accuracy is on the original labels).
    """
    path = Path(root)
    if path.is_dir():
        path = path / "fer2013new.csv"
    require(path, "FER+ CSV (fer2013new.csv)")
    pixels_path = require(
        path.parent / "fer2013.csv", "fer2013.csv beside fer2013new.csv (FER+ has votes only)"
    )
    if target not in FERPLUS_TARGETS:
        raise ConfigError(
            f"FER+ target must be one of {', '.join(FERPLUS_TARGETS)}, got {target!r}"
        )
    vote_map = [canonical_index(n, labels) for n in FERPLUS_VOTES]
    report = Report()
    images = {s: [] for s in FER2013_USAGE.values()}
    targets = {s: [] for s in FER2013_USAGE.values()}
    fp, pixel_rows = open_csv(pixels_path, ("emotion", "pixels", "Usage"))
    fv, vote_rows = open_csv(path, ("Usage", "Image name", *FERPLUS_VOTES, "unknown", "NF"))
    with fp, fv:
        for line, (prow, vrow) in enumerate(zip(pixel_rows, vote_rows), start=2):
            where = f"{path.name}:{line}"
            split, px = usage_and_pixels(vrow["Usage"], prow["pixels"], report, where)
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
            value = _vote_target(
                vrow,
                votes,
                vote_map,
                "probability" if target == "mixed" else target,
                len(labels),
                report,
                where,
            )
            if value is None:
                continue
            if target == "mixed":
                value = _mix_original(
                    value, prow.get("emotion"), labels, vote_share, report, where
                )
                if value is None:
                    continue
            targets[split].append(value)
            images[split].append(px.reshape(48, 48, 1))
        if next(pixel_rows, None) is not None or next(vote_rows, None) is not None:
            raise DatasetError(
                f"{path} and {pixels_path} have different row counts; FER+ rows must align with "
                "FER2013"
            )
    return {
        split: gray48_set(
            images[split],
            _stack_targets(targets[split], target, len(labels)),
            labels,
            report,
            f"ferplus/{split}",
        )
        for split in images
    }


def _vote_target(
    vrow: dict,
    votes: np.ndarray,
    vote_map: list,
    target: str,
    n_classes: int,
    report: Report,
    where: str,
):
    """A row's target under `target` (a class index, or the vote distribution over the label set's
    classes), or None with the reason counted in `report`."""
    if target == "probability":
        kept = np.zeros(n_classes, np.float32)
        for v, idx in zip(votes, vote_map):
            if idx is not None:
                kept[idx] += v
        if kept.sum() == 0:
            report.add_excluded("no votes for the label set's classes")
            return None
        return kept / kept.sum()
    try:
        others = np.array([float(vrow["unknown"] or 0), float(vrow["NF"] or 0)], np.float32)
    except (TypeError, ValueError):
        report.add_bad("unreadable votes", where)
        return None
    winner, why = ferplus_winner(np.concatenate([votes, others]), target)
    if winner is None:
        report.add_excluded(why)
        return None
    if vote_map[winner] is None:
        report.add_excluded(f"{FERPLUS_VOTES[winner]} (not in the label set)")
        return None
    return vote_map[winner]


def _mix_original(
    votes: np.ndarray, emotion: str | None, labels, vote_share: float, report: Report, where: str
) -> np.ndarray | None:
    """(1 - vote_share) x the row's FER2013 label (one-hot) + vote_share x its vote
    distribution."""
    try:
        original = canonical_index(FER7[int(emotion)], labels)
    except (TypeError, ValueError, IndexError):
        report.add_bad("unknown label", where)
        return None
    if original is None:
        report.add_excluded("original label not in the label set")
        return None
    mixed = votes * vote_share
    mixed[original] += 1.0 - vote_share
    return mixed


def _stack_targets(targets: list, target: str, n_classes: int) -> torch.Tensor:
    if target not in ("probability", "mixed"):
        return torch.tensor(targets, dtype=torch.long)
    return torch.from_numpy(np.stack(targets)) if targets else torch.zeros(0, n_classes)
