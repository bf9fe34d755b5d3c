"""Frame -> faces -> crops -> probabilities -> smoothed results: the one pipeline.

The node, the bag evaluator, the demo and the benchmarks all call `Pipeline.process`; none of
them repeats a step. It knows nothing of ROS: frames are RGB arrays, times are seconds.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from fer_ros.faces import Box, DetectorOptions, crop, expand_box, make_detector
from fer_ros.tracking import FaceTracker

UNKNOWN = "unknown"


@dataclass
class FaceResult:
    box: Box
    face_id: int
    probabilities: np.ndarray  # float32, in the order of Pipeline.labels, sums to 1
    label: str  # arg-max label, or "unknown" below the confidence threshold
    confidence: float  # arg-max probability


@dataclass
class FrameResult:
    faces: list[FaceResult] = field(default_factory=list)  # largest box first
    detect_ms: float = 0.0
    classify_ms: float = 0.0
    detected: bool = True  # False when the boxes were followed rather than searched for


class Pipeline:
    """Runs detection every `detect_every` frames and follows the faces in between.

    Following re-runs the detector only on a window around each known face, which costs a
    fraction of a full-frame search; a face not found in its window is dropped (it left or
    turned away), and a frame that ends up with no faces triggers a full search next time.
    """

    def __init__(self, engine, detector, tracker: FaceTracker | None = None, margin: float = 0.2,
                 confidence_threshold: float = 0.0, detect_every: int = 1):
        self.engine = engine
        self.detector = detector
        self.tracker = tracker or FaceTracker()
        self.margin = margin
        self.confidence_threshold = confidence_threshold
        self.detect_every = max(1, int(detect_every))
        self.frame_count = 0
        self.boxes: list[Box] = []

    @property
    def labels(self) -> list[str]:
        return list(self.engine.labels)

    def reset(self) -> None:
        self.frame_count = 0
        self.boxes = []
        self.tracker.reset()

    def find_faces(self, rgb: np.ndarray) -> tuple[list[Box], bool]:
        full_search = self.detector.name == "none" or self.frame_count % self.detect_every == 0 \
            or not self.boxes
        self.frame_count += 1
        if full_search:
            return self.detector(rgb), True
        height, width = rgb.shape[:2]
        followed = []
        for box in self.boxes:
            wx, wy, ww, wh = expand_box(box, 0.5, width, height)
            found = self.detector(crop(rgb, (wx, wy, ww, wh))) if ww and wh else []
            if found:
                x, y, w, h = found[0]
                followed.append((x + wx, y + wy, w, h))
        return followed, False

    def process(self, rgb: np.ndarray, now: float | None = None) -> FrameResult:
        """Classify every face of one RGB frame; `now` (seconds) ages out lost faces."""
        now = time.monotonic() if now is None else now
        t0 = time.perf_counter()
        boxes, detected = self.find_faces(rgb)
        self.boxes = boxes
        t1 = time.perf_counter()
        height, width = rgb.shape[:2]
        regions = [expand_box(box, self.margin, width, height) for box in boxes]
        keep = [i for i, r in enumerate(regions) if r[2] > 1 and r[3] > 1]
        boxes = [boxes[i] for i in keep]
        probs = self.engine.predict([crop(rgb, regions[i]) for i in keep]) if keep else None
        t2 = time.perf_counter()
        result = FrameResult(detect_ms=(t1 - t0) * 1e3, classify_ms=(t2 - t1) * 1e3, detected=detected)
        labels = self.labels
        for box, track, p in zip(boxes, self.tracker.match(boxes, now), probs if probs is not None else []):
            p = self.tracker.smooth(track, np.asarray(p, dtype=np.float32))
            best = int(np.argmax(p))
            confidence = float(p[best])
            label = labels[best] if confidence >= self.confidence_threshold else UNKNOWN
            result.faces.append(FaceResult(box=box, face_id=track.face_id, probabilities=p,
                                           label=label, confidence=confidence))
        return result


@dataclass
class PipelineOptions:
    """Everything that shapes the pipeline; the node's parameters of the same names fill it."""

    detector: str = "haar"
    detect_scale: float = 0.5
    detect_every: int = 3
    min_face_size: int = 48
    max_faces: int = 5
    face_margin: float = 0.2
    haar_scale_factor: float = 1.2
    haar_min_neighbors: int = 5
    yunet_model: str = ""
    smoothing: str = "none"
    smoothing_alpha: float = 0.5
    smoothing_window: int = 5
    track_iou: float = 0.3
    track_timeout: float = 1.0
    confidence_threshold: float = 0.0

    @classmethod
    def from_params(cls, params: dict) -> "PipelineOptions":
        """Pick this class's fields out of a flat parameter dict (e.g. fer_node's ros__parameters)."""
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in params.items() if k in names})


def build_pipeline(engine, options: PipelineOptions) -> Pipeline:
    detector = make_detector(DetectorOptions(
        kind=options.detector, scale=options.detect_scale, min_face_size=options.min_face_size,
        max_faces=options.max_faces, haar_scale_factor=options.haar_scale_factor,
        haar_min_neighbors=options.haar_min_neighbors, yunet_model=options.yunet_model))
    tracker = FaceTracker(smoothing=options.smoothing, alpha=options.smoothing_alpha,
                          window=options.smoothing_window, min_iou=options.track_iou,
                          timeout=options.track_timeout)
    return Pipeline(engine, detector, tracker, margin=options.face_margin,
                    confidence_threshold=options.confidence_threshold, detect_every=options.detect_every)


def engine_from_params(params: dict, warn=print):
    """The inference engine fer_node's parameters describe: checkpoint, device (with the optional
    CPU fallback), precision, backend, threads, cpu_spin. Shared by the node and bag-eval."""
    from fer_ros.engine import Engine

    device = params.get("device", "auto")
    if device == "cuda" and params.get("allow_cpu_fallback"):
        import torch
        if not torch.cuda.is_available():
            warn("device cuda requested but no GPU is available: running on the CPU")
            device = "cpu"
    return Engine.from_checkpoint(params["checkpoint"], device=device, precision=params.get("precision", "auto"),
                                  threads=params.get("threads") or None, backend=params.get("backend", "auto"),
                                  spin=params.get("cpu_spin", False))
