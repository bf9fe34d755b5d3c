"""Frames from a video file or a V4L2 camera, through OpenCV's VideoCapture, with one set of
checks.

`fer-ros video` (offline analysis) and `fer-ros camera` (the ROS publisher) read through here; a
camera is the same loop over a capture that never ends. What a person can get wrong (a missing
file, something that is not a video, a camera that is not there, an absurd frame size) raises
FrameError: one line, exit 2.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import FrameError
from fer_ros.inference.frames import check_size

DEFAULT_FPS = 30.0  # for a file or camera that reports no rate


@contextmanager
def quiet_stderr():
    """OpenCV and FFmpeg print their own complaints ("moov atom not found", "can't open camera by
    index") straight to file descriptor 2 while a source is opened; the error raised here already
    says it in one line, so theirs are silenced for that moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Frame:
    index: int  # in the source, from 0 (a looped file starts again at 0)
    # Seconds into the source: index / fps for a file, since the first frame for a camera.
    time: float
    bgr: np.ndarray  # (H, W, 3) uint8, as OpenCV decodes it


class VideoSource:
    """An opened VideoCapture. `live`: a camera (frames come at its own pace) rather than a
    file."""

    def __init__(self, capture: cv2.VideoCapture, name: str, live: bool):
        self.capture, self.name, self.live = capture, name, live
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps_reported = bool(fps and math.isfinite(fps) and 0 < fps < 1000)
        self.fps = float(fps) if self.fps_reported else DEFAULT_FPS
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = (
            int(count) if not live and count and math.isfinite(count) and count > 0 else 0
        )
        with quiet_stderr():
            self.first = self._read()  # a source that gives no frame is refused here, not half-way
        if self.first is None:
            capture.release()
            raise FrameError(
                f"{name}: no frame could be decoded (corrupt or empty video, or a codec OpenCV "
                "lacks)"
            )
        self.height, self.width = self.first.shape[:2]
        self.frames_read = (
            0  # the most frames one pass got through (a truncated file: fewer than frame_count)
        )

    def _read(self, decode: bool = True):
        """The next frame (BGR), True for one skipped without decoding it, None at the end."""
        if not self.capture.grab():
            return None
        if not decode:
            return True
        ok, bgr = self.capture.retrieve()
        if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            return None
        check_size(bgr.shape[1], bgr.shape[0], f"{self.name}: frame")
        return bgr

    def frames(
        self, start: float = 0.0, end: float | None = None, every: int = 1, loop: bool = False
    ) -> Iterator[Frame]:
        """Frames from `start` to `end` seconds (end None: to the end), every `every`-th counted
        from `start`. A camera's time is seconds since its first frame. `loop` starts a file again
        at its end (or at `end`)."""
        import time

        began = time.monotonic()
        first = (
            0 if self.live else math.ceil(start * self.fps - 1e-9)
        )  # the first frame at or after start

        def wanted(index: int) -> bool:  # the others are skipped without being decoded
            return index >= first and (index - first) % every == 0

        while True:
            index, yielded = 0, False
            bgr, self.first = (
                (self.first, None) if self.first is not None else (self._read(), None)
            )
            while bgr is not None:
                t = time.monotonic() - began if self.live else index / self.fps
                if end is not None and t >= end and not self.live:
                    break
                if isinstance(bgr, np.ndarray) and wanted(index):
                    yield Frame(index, t, bgr)
                    yielded = True
                index += 1
                self.frames_read = max(self.frames_read, index)
                bgr = self._read(decode=wanted(index))
            if not loop or self.live or not yielded:
                return
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def truncated(self) -> bool:
        """Whether a full pass ended well before the frame count the file's header gives."""
        return bool(self.frame_count) and self.frames_read < 0.98 * self.frame_count - 1

    def close(self) -> None:
        self.capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(path) -> VideoSource:
    """A video file (anything VideoCapture reads: MP4, AVI, MKV, MJPEG, an image sequence
    pattern)."""
    path = Path(path)
    if "%" not in path.name and not path.is_file():
        raise FrameError(f"no video file {path}")
    with quiet_stderr():
        capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameError(f"{path} is not a video OpenCV can read (corrupt, or a codec it lacks)")
    return VideoSource(capture, str(path), live=False)


def open_camera(device: str, width: int = 0, height: int = 0, fps: float = 0.0) -> VideoSource:
    """A V4L2 camera: an index (0 for /dev/video0) or a device path. width/height/fps: what to ask
    the driver for (0: its default)."""
    target = int(device) if str(device).isdigit() else str(device)
    with quiet_stderr():
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
    if not capture.isOpened():
        raise FrameError(
            f"cannot open camera {device} (V4L2): is it connected, and may this user read it?"
        )
    for prop, value in (
        (cv2.CAP_PROP_FRAME_WIDTH, width),
        (cv2.CAP_PROP_FRAME_HEIGHT, height),
        (cv2.CAP_PROP_FPS, fps),
    ):
        if value:
            capture.set(prop, value)
    return VideoSource(capture, f"camera {device}", live=True)
