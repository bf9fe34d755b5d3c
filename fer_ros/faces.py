"""Face detectors: where the faces are in a frame.

Each detector maps an RGB frame to boxes (x, y, w, h) in the frame's pixels, largest first.
`make_detector` builds one from plain options, so the node, the bag evaluator and the demo
configure detection the same way.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

DETECTORS = ("haar", "yunet", "none")


@dataclass
class DetectorOptions:
    kind: str = "haar"
    # Detection runs on a frame shrunk by this factor: Haar cost grows with pixel count.
    scale: float = 0.5
    min_face_size: int = 48  # pixels in the full-size frame
    max_faces: int = 5
    haar_scale_factor: float = 1.2
    haar_min_neighbors: int = 5
    yunet_model: str = ""
    yunet_score_threshold: float = 0.7


def shrink(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Detection cost grows with pixel count: search a copy shrunk by `scale` (clamped to 0.05-1)."""
    scale = min(1.0, max(scale, 0.05))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, scale


def grow(boxes, scale: float) -> list[tuple[float, float, float, float]]:
    """Boxes found on a shrunk copy, back in the full frame's pixels."""
    return [(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in boxes]


def largest_first(boxes, max_faces: int) -> list[Box]:
    boxes = sorted((tuple(int(v) for v in box) for box in boxes), key=lambda b: b[2] * b[3], reverse=True)
    return boxes[:max_faces]


class WholeImage:
    """No detection: the frame already is a face crop."""

    name = "none"

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        height, width = rgb.shape[:2]
        return [(0, 0, width, height)]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python 4.x (no download)."""

    name = "haar"

    def __init__(self, options: DetectorOptions):
        data = getattr(cv2, "data", None)
        path = Path(data.haarcascades) / "haarcascade_frontalface_default.xml" if data else None
        if path is None or not path.is_file():
            raise RuntimeError("OpenCV's Haar cascades are missing: install opencv-python-headless<5 "
                               "(OpenCV 5 removed them), or use detector 'yunet' or 'none'")
        self.cascade = cv2.CascadeClassifier(str(path))
        self.options = options

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        opts = self.options
        gray, scale = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), opts.scale)
        min_side = max(int(round(opts.min_face_size * scale)), 12)
        found = self.cascade.detectMultiScale(gray, scaleFactor=opts.haar_scale_factor,
                                              minNeighbors=opts.haar_min_neighbors,
                                              minSize=(min_side, min_side))
        return largest_first(grow(np.asarray(found).reshape(-1, 4), scale), opts.max_faces)


class YuNetDetector:
    """OpenCV's YuNet CNN detector (cv2.FaceDetectorYN) from a local ONNX file."""

    name = "yunet"

    def __init__(self, options: DetectorOptions):
        path = Path(options.yunet_model).expanduser()
        if not options.yunet_model or not path.is_file():
            raise ValueError(f"detector 'yunet' needs yunet_model, the path of a local YuNet .onnx file "
                             f"(got {options.yunet_model!r})")
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), options.yunet_score_threshold)
        except cv2.error as err:
            raise ValueError(f"cannot load YuNet model {path}: {err}") from None
        self.options = options

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        opts = self.options
        bgr, scale = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), opts.scale)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.net.detect(bgr)
        if faces is None:
            return []
        boxes = [b for b in grow(faces[:, :4], scale) if min(b[2], b[3]) >= opts.min_face_size]
        return largest_first(boxes, opts.max_faces)


def make_detector(options: DetectorOptions):
    if options.kind == "haar":
        return HaarDetector(options)
    if options.kind == "yunet":
        return YuNetDetector(options)
    if options.kind == "none":
        return WholeImage()
    raise ValueError(f"unknown detector {options.kind!r}; choose one of {', '.join(DETECTORS)}")


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """Grow a box by `margin` of its size on every side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return rgb[y:y + h, x:x + w]
