"""Face detectors: where the faces are in a frame.

Each detector maps an RGB frame to `Face`s (a box in the frame's pixels, and the five landmarks
when the detector gives them), largest first. `make_detector` builds one from plain options, so
the node, the bag evaluator, the Python API and the benchmarks configure detection the same way.

`auto` (the default) is YuNet from the `yuface` wheel where it imports (x86-64, CPython <= 3.11),
else OpenCV's Haar cascade. YuNet finds turned, tilted and small faces that the 2001 cascade
misses, in a fraction of its time (benchmarks/faces.py).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.errors import ConfigError
from fer_ros.inference.search import search, search_scale
from fer_ros.options import Checked, option

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

DETECTORS = ("auto", "yuface", "yunet", "haar", "none", "hri")
YUNET_SCORE_THRESHOLD = 0.7  # OpenCV's own default for FaceDetectorYN
# yuface at 0.5 (its own default) found 31 of 32 faces with no false box in the detector study;
# the benchmark frames gave no false box either (benchmarks/results/faces.json).
YUFACE_SCORE_THRESHOLD = 0.5
HAAR_WINDOW = 24  # the frontal cascade's window: it finds no face smaller in what it searches
FOLLOW_MIN_SIDE = 36  # pixels a followed face keeps in Haar's shrunk window


@dataclass(frozen=True)
class Face:
    """One detected face. `landmarks`: (5, 2) float32 in the frame's pixels, in the image's
    left-to-right order: eye, eye, nose tip, mouth corner, mouth corner (None when the detector
    gives none)."""

    box: Box
    landmarks: np.ndarray | None = None
    score: float = 1.0

    def moved(self, dx: float, dy: float) -> Face:
        """The same face in a frame whose origin is (-dx, -dy) from this one's."""
        x, y, w, h = self.box
        landmarks = None if self.landmarks is None else self.landmarks + np.float32((dx, dy))
        return Face((int(x + dx), int(y + dy), w, h), landmarks, self.score)


@dataclass(frozen=True)
class DetectorOptions(Checked):
    detector: str = option(
        "auto",
        "Face detector: auto (yuface where it imports, else haar), yuface (YuNet "
        "CNN from the yuface wheel), yunet (OpenCV's FaceDetectorYN, needs yunet_model), haar "
        "(OpenCV cascade), none (frames are face crops) or hri (fer_node only: faces from a "
        "ROS4HRI face detector's /humans/faces/<id>/ images)",
        choices=DETECTORS,
    )
    yunet_model: str = option("", "Local path of a YuNet .onnx file (detector yunet)")
    # A detector's cost grows with the pixel count: the whole-frame search runs on a shrunk copy
    # when min_face_size allows it.
    detect_scale: float = option(
        0.5,
        "Search the whole frame shrunk by at least this factor (speed); min_face_size may "
        "ask for a larger search",
        0.05,
        1.0,
    )
    min_face_size: int = option(
        20,
        "Smallest face to find and report, pixels of the full frame (the whole-frame "
        "search runs at least as large as finds it reliably, enlarged if need be)",
        8,
        4096,
    )
    max_faces: int = option(5, "At most this many faces per frame, largest first", 1, 64)
    haar_scale_factor: float = option(1.2, "Haar cascade scale step", 1.01, 2.0)
    haar_min_neighbors: int = option(5, "Haar cascade neighbours needed to accept a face", 1, 50)


def shrink(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """A copy shrunk by `scale` (clamped to 0.05-1) to search in, and the scale used."""
    scale = min(1.0, max(scale, 0.05))
    if scale < 1.0:
        height, width = image.shape[:2]
        if round(width * scale) and round(height * scale):  # the size OpenCV derives from fx, fy
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:  # a 16384x1 frame is legal, but OpenCV refuses to make a side 0 pixels
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def grow(boxes, scale: float) -> list[tuple[float, float, float, float]]:
    """Boxes found on a shrunk copy, back in the full frame's pixels."""
    return [(x / scale, y / scale, w / scale, h / scale) for x, y, w, h in boxes]


def clip_box(box, width: int, height: int) -> Box:
    """A box as whole pixels inside a width x height frame (a CNN's box may cross the frame's
    edge)."""
    x, y, w, h = box
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def largest_first(faces, max_faces: int) -> list[Face]:
    return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)[:max_faces]


class WholeImage:
    """No detection: the frame already is a face crop."""

    name = "none"
    releases_gil = False  # it never searches: there is nothing to put on a second thread

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Face]:
        height, width = rgb.shape[:2]
        return [Face((0, 0, width, height))]


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python 4.x (no download)."""

    name = "haar"
    # OpenCV releases the GIL while it searches: a second thread runs beside the frames.
    releases_gil = True

    def __init__(self, options: DetectorOptions):
        data = getattr(cv2, "data", None)
        path = Path(data.haarcascades) / "haarcascade_frontalface_default.xml" if data else None
        if path is None or not path.is_file():
            raise ConfigError(
                "OpenCV's Haar cascades are missing: install opencv-python-headless<5 "
                "(OpenCV 5 removed them), or use detector 'yuface', 'yunet' or 'none'"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        self.options = options

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Face]:
        """`sizes`: only faces whose side lies in (smallest, largest) full-frame pixels, when
        known. A cascade's cost is its pyramid levels, so a bounded range costs a few levels, not
        all."""
        opts = self.options
        smallest, largest = sizes if sizes else (opts.min_face_size, 0)
        # A bounded search is a small window around a known face: shrink it no further than keeps
        # that face well above the cascade's 24-pixel window, where it is found reliably. The
        # whole frame is shrunk no further than keeps a face of min_face_size at that window.
        want = max(
            opts.detect_scale,
            (FOLLOW_MIN_SIDE / max(smallest, 1.0)) if sizes else HAAR_WINDOW / opts.min_face_size,
        )
        gray, scale = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), want)
        min_side = max(int(round(max(smallest, opts.min_face_size) * scale)), 12)
        max_side = int(round(largest * scale)) if largest else 0
        if max_side and max_side < min_side:
            return []
        found = self.cascade.detectMultiScale(
            gray,
            scaleFactor=opts.haar_scale_factor,
            minNeighbors=opts.haar_min_neighbors,
            minSize=(min_side, min_side),
            maxSize=(max_side, max_side),
        )
        height, width = rgb.shape[:2]
        faces = [
            Face(clip_box(b, width, height)) for b in grow(np.asarray(found).reshape(-1, 4), scale)
        ]
        return largest_first(faces, opts.max_faces)


def cnn_faces(
    rows: np.ndarray, options: DetectorOptions, shape, sizes: tuple[float, float] | None
) -> list[Face]:
    """Rows of (score 0-1, x, y, w, h, 10 landmark values) in the frame's pixels -> Faces of at
    least min_face_size (and inside `sizes` when given), largest first."""
    height, width = shape[:2]
    smallest, largest = sizes if sizes else (options.min_face_size, float("inf"))
    smallest = max(smallest, options.min_face_size)
    faces = []
    for row in np.asarray(rows, np.float32).reshape(-1, 15):
        x, y, w, h = (float(v) for v in row[1:5])
        if not smallest <= max(w, h) <= largest:
            continue
        box = clip_box((x, y, w, h), width, height)
        if box[2] > 1 and box[3] > 1:
            faces.append(Face(box, row[5:15].reshape(5, 2).copy(), float(row[0])))
    return largest_first(faces, options.max_faces)


def cnn_search(detect, rgb: np.ndarray, options: DetectorOptions, sizes) -> list[Face]:
    """A CNN's faces in `rgb`: searched at the scale (and in the tiles) `search` chooses."""
    scale = search_scale(options.detect_scale, options.min_face_size, rgb.shape, sizes)
    if min(rgb.shape[:2]) * scale < 8:
        return []
    rows = search(detect, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), scale)
    return cnn_faces(rows, options, rgb.shape, sizes)


_yuface_lock = threading.Lock()
_yuface_detect = None


def load_yuface():
    """yuface's detect function, imported once. It bundles its own OpenMP runtime, which reads
    OMP_NUM_THREADS when it loads: one thread unless the environment says otherwise, so a search
    beside the frames keeps to one core and the model keeps the rest."""
    global _yuface_detect
    with _yuface_lock:
        if _yuface_detect is None:
            had = "OMP_NUM_THREADS" in os.environ
            if not had:
                os.environ["OMP_NUM_THREADS"] = "1"
            try:
                import yuface
            except (ImportError, OSError) as err:
                raise ConfigError(
                    f"detector 'yuface' needs the yuface package (pip install yuface; wheels for "
                    f"x86-64 CPython 3.10/3.11 only): {err}"
                ) from None
            finally:
                if not had:
                    del os.environ["OMP_NUM_THREADS"]
            yuface.detect(
                np.zeros((64, 64, 3), np.uint8)
            )  # its weights are set up on the first call: here, once
            _yuface_detect = yuface_without_the_gil(
                Path(yuface.__file__).parent / "libfacedetection.so"
            )
        return _yuface_detect


# libfacedetection's C++ entry point in the pinned yuface wheel: facedetect_cnn(result_buffer, bgr,
# width, height, step). yuface's own binding holds the GIL for the whole search; called through
# ctypes it lets go, so a search on a second thread runs beside the frames (as OpenCV's do).
FACEDETECT_CNN = "_Z14facedetect_cnnPhS_iii"
FACEDETECT_BUFFER = (
    0x20000  # bytes: an int count, then 16 int16 per face (libfacedetection's examples' size)
)


def yuface_without_the_gil(library: Path):
    """A detect(bgr, conf) -> (scores x100, XYWH boxes, 10 landmark coordinates) like
    yuface.detect's,
    calling its library directly; yuface.detect itself where the symbol is not there."""
    import ctypes

    import yuface

    try:
        search = getattr(ctypes.CDLL(str(library)), FACEDETECT_CNN)
    except (OSError, AttributeError):
        return yuface.detect
    search.restype = ctypes.POINTER(ctypes.c_int)
    search.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]

    def detect(bgr: np.ndarray, conf: float):
        bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
        buffer = np.zeros(
            FACEDETECT_BUFFER, np.uint8
        )  # one per call: calls may run on two threads at once
        count = search(
            buffer.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0]
        )[0]
        rows = np.frombuffer(buffer, np.int16, count=16 * count, offset=4).reshape(count, 16)
        rows = rows[rows[:, 0] >= conf * 100]  # scores come x100
        return rows[:, 0].copy(), rows[:, 1:5].copy(), rows[:, 5:15].copy()

    detect.releases_gil = True
    return detect


class YuFaceDetector:
    """YuNet (libfacedetection) with its weights compiled into the `yuface` wheel: nothing to
    download, no model file to bring. Boxes and the five landmarks."""

    name = "yuface"

    def __init__(self, options: DetectorOptions):
        self.detect = load_yuface()
        # yuface's own binding holds the GIL while it searches; load_yuface calls its library
        # through ctypes instead, which lets go of it (unless the pinned wheel's symbol is
        # missing).
        self.releases_gil = getattr(self.detect, "releases_gil", False)
        self.options = options

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Face]:
        return cnn_search(self.rows, rgb, self.options, sizes)

    def rows(self, bgr: np.ndarray) -> np.ndarray:
        if min(bgr.shape[:2]) < 8:
            return np.zeros((0, 15), np.float32)
        scores, boxes, landmarks = self.detect(bgr, YUFACE_SCORE_THRESHOLD)
        if len(boxes) == 0:
            return np.zeros((0, 15), np.float32)
        # scores come x100
        return np.concatenate([scores[:, None] / 100.0, boxes, landmarks], axis=1)


class YuNetDetector:
    """OpenCV's YuNet CNN detector (cv2.FaceDetectorYN) from a local ONNX file."""

    name = "yunet"
    releases_gil = True

    def __init__(self, options: DetectorOptions):
        path = Path(options.yunet_model).expanduser()
        if not options.yunet_model or not path.is_file():
            raise ConfigError(
                f"detector 'yunet' needs yunet_model, the path of a local YuNet .onnx file "
                f"(got {options.yunet_model!r})"
            )
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), YUNET_SCORE_THRESHOLD)
        except cv2.error as err:
            raise ConfigError(f"cannot load YuNet model {path}: {err}") from None
        self.options = options

    def __call__(self, rgb: np.ndarray, sizes: tuple[float, float] | None = None) -> list[Face]:
        return cnn_search(self.rows, rgb, self.options, sizes)

    def rows(self, bgr: np.ndarray) -> np.ndarray:
        if min(bgr.shape[:2]) < 8:
            return np.zeros((0, 15), np.float32)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self.net.detect(bgr)
        if found is None:
            return np.zeros((0, 15), np.float32)
        return np.concatenate([found[:, 14:15], found[:, :14]], axis=1)  # score first


def resolve_detector(name: str) -> tuple[str, str]:
    """The detector `name` stands for, and a line saying why when that was a choice (`auto`)."""
    if name != "auto":
        return name, ""
    try:
        load_yuface()
    except ConfigError as err:
        return "haar", f"detector auto: yuface cannot be used here, using haar ({err})"
    return "yuface", "detector auto: yuface (YuNet)"


def make_detector(options: DetectorOptions):
    name, _ = resolve_detector(options.detector)
    if name == "yuface":
        return YuFaceDetector(options)
    if name == "haar":
        return HaarDetector(options)
    if name == "yunet":
        return YuNetDetector(options)
    if name == "none":
        return WholeImage()
    assert name == "hri", f"DetectorOptions let an unknown detector through: {name!r}"
    raise ConfigError(
        "detector hri takes its faces from a ROS4HRI face detector's topics: only fer_node "
        "can use it; choose auto, yuface, yunet, haar or none here"
    )


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """Grow a box by `margin` of its size on every side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    return clip_box((x - dx, y - dy, w + 2 * dx, h + 2 * dy), width, height)


def crop(rgb: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return rgb[y : y + h, x : x + w]
