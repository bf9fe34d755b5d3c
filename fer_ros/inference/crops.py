"""Detected face -> the crop the model is given: the one crop function.

The training faces (FER2013, muxspace) come pre-cropped, with no boxes, and a detector's box is not
their framing: YuNet's box is narrow and tall and sits inside the crop, Haar's fills it. So each
detector has a `Framing`, measured on training faces padded into a larger canvas and on whole
photos (benchmarks/crop_framing.py, results in benchmarks/results/crop_framing.json): the training
crop is a square `side` times the box's size, centred `shift` (in crop sides) from the box's
centre. Inverting it gives the crop the model saw while training; training augmentation jitters
scale and position around that same point.

Modes (`face_crop`):
  framed   the training framing, grown by `face_margin` per side (default)
  box      the detector's box grown by `face_margin` per side (fer_ros up to 0.1's rule)
  aligned  eyes, nose and mouth mapped by a similarity transform onto where they sit, on median, in
           the training crops (detectors with landmarks; others fall back to framed)
Parts of a crop outside the frame repeat the frame's edge, as training augmentation does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.inference.faces import Face, crop, expand_box

CROPS = ("framed", "box", "aligned")


@dataclass(frozen=True)
class Framing:
    side: float  # crop side / the box's geometric-mean side
    shift: tuple[float, float]  # crop centre - box centre, in crop sides


# benchmarks/results/crop_framing.json. Haar: its box on padded training faces ("pooled": FER2013
# and muxspace weighed equally); it fills the crop, as the box FER2013's faces were registered with
# did. YuNet: chained through Haar's box on whole photos ("yuface_chained_through_haar"). Measured
# on padded faces directly, YuNet's box gave a crop 12 % larger than Haar's on whole photos,
# scoring 5 points lower on taiwanese_dev: the canvas' repeated edges bias where a CNN puts its
# box.
FRAMINGS = {
    "yuface": Framing(1.0491, (-0.012, -0.0045)),
    "haar": Framing(1.0227, (-0.0018, -0.0018)),
}
FRAMINGS["yunet"] = FRAMINGS["yuface"]  # the same network
# Median landmark positions in the training crops (crop side = 1), yuface on padded faces.
TEMPLATE = np.float32(
    [[0.3164, 0.3863], [0.6658, 0.3937], [0.4748, 0.5777], [0.3455, 0.7361], [0.6323, 0.7322]]
)


def framed_region(face: Face, framing: Framing, margin: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square training-framed crop of `face`, in frame pixels."""
    x, y, w, h = face.box
    side = framing.side * float(np.sqrt(w * h)) * (1.0 + 2.0 * margin)
    return x + w / 2 + framing.shift[0] * side, y + h / 2 + framing.shift[1] * side, side


def square_crop(rgb: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """The square of `side` centred at (cx, cy); the frame's edge repeated where it reaches
    outside."""
    height, width = rgb.shape[:2]
    s = max(2, int(round(side)))
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    inside = rgb[max(0, y0) : max(0, min(height, y0 + s)), max(0, x0) : max(0, min(width, x0 + s))]
    if inside.shape[0] == s and inside.shape[1] == s:
        return inside  # a view: no copy when the crop lies inside the frame
    if inside.size == 0:
        return np.empty((0, 0) + rgb.shape[2:], rgb.dtype)
    top, left = max(0, -y0), max(0, -x0)
    return cv2.copyMakeBorder(
        inside,
        top,
        s - inside.shape[0] - top,
        left,
        s - inside.shape[1] - left,
        cv2.BORDER_REPLICATE,
    )


def aligned_crop(rgb: np.ndarray, face: Face, side: float, margin: float) -> np.ndarray:
    """The face warped so its five landmarks land where TEMPLATE puts them in a crop of `side`
    grown by `margin` per side (rotation, scale and shift only)."""
    s = max(2, int(round(side)))
    target = (0.5 + (TEMPLATE - 0.5) / (1.0 + 2.0 * margin)) * s  # (5, 2) pixels of the crop
    matrix, _ = cv2.estimateAffinePartial2D(
        face.landmarks.astype(np.float32), target, method=cv2.LMEDS
    )
    if matrix is None:
        return np.empty((0, 0) + rgb.shape[2:], rgb.dtype)
    return cv2.warpAffine(
        rgb, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def face_crop(
    rgb: np.ndarray, face: Face, detector: str, mode: str = "framed", margin: float = 0.0
) -> np.ndarray:
    """The crop of `face` (found by `detector`, by name) that the model is given; may be empty for
    a degenerate box. `detector` none: the frame itself."""
    height, width = rgb.shape[:2]
    framing = FRAMINGS.get(detector)
    if mode == "box" or framing is None:
        return crop(rgb, expand_box(face.box, margin, width, height))
    cx, cy, side = framed_region(face, framing, margin)
    if mode == "aligned" and face.landmarks is not None:
        return aligned_crop(rgb, face, side, margin)
    return square_crop(rgb, cx, cy, side)
