"""A short video of a real face, built from scikit-image's astronaut photo (NASA, public domain).

The head drifts across a cluttered background while it grows, shrinks and tilts, so the detector
and the tracker have work; the first and last frames are empty, so "nobody there" shows too. The
demo analyses it with `fer-ros video`; the tests feed it to the video tool and the camera
publisher. A showcase, not an accuracy claim: one smiling face, moved about.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import FerRosError

HEAD = (120, 10, 210, 240)  # x, y, width, height of the head and shoulders in the 512x512 photo
EMPTY_SHARE = 0.1  # of the frames at each end, with nobody in them


def astronaut() -> np.ndarray:
    try:
        import skimage.data
    except ImportError:
        raise FerRosError(
            "the astronaut clip needs scikit-image (pip install scikit-image)"
        ) from None
    return skimage.data.astronaut()


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An indoor-ish BGR backdrop: a soft gradient under a few muted rectangles."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 90 + 60 * (x / width) * 0.5 + 40 * (y / height)
    frame = np.repeat(base[:, :, None], 3, axis=2) * np.float32((0.9, 1.0, 1.05))
    frame = frame.clip(0, 255).astype(np.uint8)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = (
            int(rng.integers(width // 10, width // 3)),
            int(rng.integers(height // 10, height // 3)),
        )
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(frame, (x0, y0), (x0 + w, y0 + h), colour, -1)
    return cv2.GaussianBlur(frame, (0, 0), 3)


def pose(i: int, frames: int) -> tuple[float, float, float, float] | None:
    """(centre x, centre y as fractions of the frame, scale, angle in degrees) of frame i, or None
    for an empty frame."""
    empty = max(1, round(frames * EMPTY_SHARE))
    if i < empty or i >= frames - empty:
        return None
    u = (i - empty) / max(1, frames - 2 * empty - 1)  # 0 -> 1 while the face is there
    cx = 0.3 + 0.4 * u
    cy = 0.5 + 0.08 * np.sin(2 * np.pi * u)
    scale = 0.75 + 0.5 * np.sin(np.pi * u)  # grows as it comes closer, shrinks as it goes
    angle = 15 * np.sin(3 * np.pi * u)
    return cx, cy, scale, angle


def frames(count: int = 75, width: int = 640, height: int = 480):
    """The clip's frames, BGR, one at a time."""
    x, y, w, h = HEAD
    head = cv2.cvtColor(astronaut()[y : y + h, x : x + w], cv2.COLOR_RGB2BGR)
    backdrop = background(width, height)
    size = min(width, height) / 480  # the same motion at any frame size
    for i in range(count):
        frame = backdrop.copy()
        where = pose(i, count)
        if where is not None:
            cx, cy, scale, angle = where
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale * size)
            m[:, 2] += (cx * width - w / 2, cy * height - h / 2)
            cv2.warpAffine(
                head,
                m,
                (width, height),
                dst=frame,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_TRANSPARENT,
            )
        yield frame


def write_clip(
    path, count: int = 75, width: int = 640, height: int = 480, fps: float = 15.0
) -> Path:
    """Write the clip as Motion-JPEG in an AVI (OpenCV encodes it without FFmpeg); returns the
    path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise FerRosError(f"cannot write a video at {path}")
    try:
        for frame in frames(count, width, height):
            writer.write(frame)
    finally:
        writer.release()
    return path
