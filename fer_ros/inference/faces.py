"""Face detectors: where the faces are in a frame.

Each detector maps an RGB frame to boxes (x, y, w, h) in the frame's pixels, largest first.
`make_detector` builds one from plain options, so the node, the bag evaluator and the demo
configure detection the same way.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import ConfigError
from fer_ros.options import option

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

DETECTORS = ("haar", "yunet", "none")
YUNET_SCORE_THRESHOLD = 0.7  # OpenCV's own default for FaceDetectorYN
FOLLOW_MIN_SIDE = 36  # pixels a followed face keeps in the shrunk window (the cascade's window is 24)


@dataclass(frozen=True)
class DetectorOptions:
    detector: str = option("haar", "Face detector: haar (OpenCV cascade), yunet (needs yunet_model) or none "
                           "(frames are face crops)", choices=DETECTORS)
    yunet_model: str = option("", "Local path of a YuNet .onnx file (detector yunet)")
    # Haar's cost grows with the pixel count: detection runs on a shrunk copy of the frame.
    detect_scale: float = option(0.5, "Detect on the frame shrunk by this factor (speed)", 0.05, 1.0)
    min_face_size: int = option(48, "Smallest face to report, pixels of the full frame", 8, 4096)
    max_faces: int = option(5, "At most this many faces per frame, largest first", 1, 64)
    haar_scale_factor: float = option(1.2, "Haar cascade scale step", 1.01, 2.0)
    haar_min_neighbors: int = option(5, "Haar cascade neighbours needed to accept a face", 1, 50)


def shrink(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """A copy shrunk by `scale` (clamped to 0.05-1) to search in, and the scale used."""
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

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Box]:
        height, width = rgb.shape[:2]
        return [(0, 0, width, height)]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python 4.x (no download)."""

    name = "haar"

    def __init__(self, options: DetectorOptions):
        data = getattr(cv2, "data", None)
        path = Path(data.haarcascades) / "haarcascade_frontalface_default.xml" if data else None
        if path is None or not path.is_file():
            raise ConfigError("OpenCV's Haar cascades are missing: install opencv-python-headless<5 "
                               "(OpenCV 5 removed them), or use detector 'yunet' or 'none'")
        self.cascade = cv2.CascadeClassifier(str(path))
        self.options = options

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Box]:
        """`sizes`: only faces whose side lies in (smallest, largest) full-frame pixels, when known.
        A cascade's cost is its pyramid levels, so a bounded range costs a few levels, not all."""
        opts = self.options
        smallest, largest = sizes if sizes else (opts.min_face_size, 0)
        # A bounded search is a small window around a known face: shrink it no further than keeps
        # that face well above the cascade's 24-pixel window, where it is found reliably.
        want = max(opts.detect_scale, FOLLOW_MIN_SIDE / max(smallest, 1.0)) if sizes else opts.detect_scale
        gray, scale = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), want)
        min_side = max(int(round(max(smallest, opts.min_face_size) * scale)), 12)
        max_side = int(round(largest * scale)) if largest else 0
        if max_side and max_side < min_side:
            return []
        found = self.cascade.detectMultiScale(gray, scaleFactor=opts.haar_scale_factor,
                                              minNeighbors=opts.haar_min_neighbors,
                                              minSize=(min_side, min_side), maxSize=(max_side, max_side))
        return largest_first(grow(np.asarray(found).reshape(-1, 4), scale), opts.max_faces)


class YuNetDetector:
    """OpenCV's YuNet CNN detector (cv2.FaceDetectorYN) from a local ONNX file."""

    name = "yunet"

    def __init__(self, options: DetectorOptions):
        path = Path(options.yunet_model).expanduser()
        if not options.yunet_model or not path.is_file():
            raise ConfigError(f"detector 'yunet' needs yunet_model, the path of a local YuNet .onnx file "
                             f"(got {options.yunet_model!r})")
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), YUNET_SCORE_THRESHOLD)
        except cv2.error as err:
            raise ConfigError(f"cannot load YuNet model {path}: {err}") from None
        self.options = options

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Box]:
        opts = self.options  # one pass finds every size: `sizes` changes nothing here
        bgr, scale = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), opts.detect_scale)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self.net.detect(bgr)
        if faces is None:
            return []
        boxes = [b for b in grow(faces[:, :4], scale) if min(b[2], b[3]) >= opts.min_face_size]
        return largest_first(boxes, opts.max_faces)


def make_detector(options: DetectorOptions):
    if options.detector == "haar":
        return HaarDetector(options)
    if options.detector == "yunet":
        return YuNetDetector(options)
    if options.detector == "none":
        return WholeImage()
    raise ConfigError(f"unknown detector {options.detector!r}; choose one of {', '.join(DETECTORS)}")


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
