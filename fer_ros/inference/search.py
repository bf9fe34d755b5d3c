"""How large a CNN face detector searches a frame.

A CNN finds a face reliably once the face is CNN_MIN_SIDE pixels wide in the image it searches, so
the whole-frame search runs at the scale that brings a face of `min_face_size` to that width: below
1 (a cheaper search) for a large `min_face_size`, above 1 (the frame enlarged) for a small one.
Rows are (score 0-1, x, y, w, h, 10 landmark coordinates).

Large frames are searched whole: libfacedetection's README advises inputs of at most 960 pixels a
side, but overlapping tiles of that size found no more faces in HD frames, at the same cost
(docs/faces.md).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

# The smallest face YuNet finds reliably in the image it searches, with the head around it
# (benchmarks/faces.py, small_faces). Bringing 20 px faces to 24 px instead (x1.2 at 640x480)
# found a few more of them but raised the node's latency tail with two faces past its target
# (docs/faces.md).
CNN_MIN_SIDE = 20
# A followed face's window is searched with the face at this width: YuNet's smallest anchors are
# 10-16 px, so it is still found reliably, and the window costs well under a millisecond.
FOLLOW_CNN_SIDE = 64
# Enlarging past twice adds pixels, not detail: the smallest faces stay min_face_size's business.
MAX_ENLARGE = 2.0
# A 4K frame enlarged for 20 px faces would be a dozen megapixels a search; past this the search
# shrinks instead, and the smallest face it finds grows (docs/faces.md).
MAX_SEARCH_PIXELS = 4_000_000


def search_scale(
    detect_scale: float, min_face_size: int, shape, sizes: tuple[float, float] | None
) -> float:
    """The scale a CNN searches at: for the whole frame (`sizes` None), `detect_scale` or as much
    larger as brings a face of `min_face_size` to CNN_MIN_SIDE; for a followed face's window,
    the scale that brings its last size to FOLLOW_CNN_SIDE. Never past MAX_ENLARGE, nor past
    MAX_SEARCH_PIXELS."""
    if sizes is None:
        scale = max(detect_scale, CNN_MIN_SIDE / min_face_size)
    else:
        scale = FOLLOW_CNN_SIDE / max(sizes[0], 1.0)
    pixels = max(shape[0] * shape[1], 1)
    return max(0.05, min(scale, MAX_ENLARGE, (MAX_SEARCH_PIXELS / pixels) ** 0.5))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """`image` scaled by `scale` (no sides of 0 pixels: a 16384x1 frame is legal)."""
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=method)


def search(detect: Callable[[np.ndarray], np.ndarray], bgr: np.ndarray, scale: float):
    """Rows found in `bgr` searched at `scale`, in `bgr`'s pixels. `detect(image)` returns rows
    in `image`'s pixels."""
    rows = np.asarray(detect(resize(bgr, scale)), np.float32).reshape(-1, 15).copy()
    rows[:, 1:15] /= scale  # the box and the landmarks
    return rows
