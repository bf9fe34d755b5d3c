"""Follow faces across frames: stable ids by box overlap, and per-face smoothing of probabilities.

Expressions flicker from frame to frame; smoothing per face (not per frame) keeps two people's
expressions from bleeding into each other.
"""

from dataclasses import dataclass, field

import numpy as np

from fer_ros.inference.faces import Box
from fer_ros.options import Checked, option

SMOOTHING = ("none", "ema", "window")


@dataclass(frozen=True)
class TrackerOptions(Checked):
    smoothing: str = option(
        "none", "Per-face temporal smoothing: none, ema or window", choices=SMOOTHING
    )
    smoothing_alpha: float = option(0.5, "Weight of the newest frame for ema smoothing", 0.01, 1.0)
    smoothing_window: int = option(5, "Frames averaged for window smoothing", 1, 300)
    track_iou: float = option(
        0.3, "Box overlap (IoU) that keeps a face's id across frames", 0.0, 1.0
    )
    track_timeout: float = option(
        1.0, "Seconds a lost face keeps its id and smoothing state", 0.0, 60.0
    )


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    face_id: int
    box: Box
    last_seen: float
    history: list = field(default_factory=list)  # recent probability vectors (window mode)
    average: np.ndarray | None = None  # running estimate (ema mode)


class FaceTracker:
    """Assigns ids to boxes by greedy IoU matching and smooths each face's probabilities."""

    def __init__(self, options: TrackerOptions = TrackerOptions()):
        self.options = options
        self.tracks: list[Track] = []
        self.next_id = 1

    def match(self, boxes: list[Box], now: float) -> list[Track]:
        """One track per box (same order), creating tracks for new faces, forgetting stale ones."""
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.options.track_timeout]
        pairs = sorted(
            (
                (iou(box, t.box), i, j)
                for i, box in enumerate(boxes)
                for j, t in enumerate(self.tracks)
            ),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used = set()
        for overlap, i, j in pairs:
            if overlap < self.options.track_iou:
                break
            if i in assigned or j in used:
                continue
            assigned[i] = self.tracks[j]
            used.add(j)
        result = []
        for i, box in enumerate(boxes):
            track = assigned.get(i)
            if track is None:
                track = Track(face_id=self.next_id, box=box, last_seen=now)
                self.next_id += 1
                self.tracks.append(track)
            track.box, track.last_seen = box, now
            result.append(track)
        return result

    def smooth(self, track: Track, probs: np.ndarray) -> np.ndarray:
        opts = self.options
        if opts.smoothing == "ema":
            track.average = (
                probs.copy()
                if track.average is None
                else opts.smoothing_alpha * probs + (1.0 - opts.smoothing_alpha) * track.average
            )
            out = track.average
        elif opts.smoothing == "window":
            track.history = (track.history + [probs])[-opts.smoothing_window :]
            out = np.mean(track.history, axis=0)
        else:
            out = probs
        return (out / out.sum()).astype(np.float32)
