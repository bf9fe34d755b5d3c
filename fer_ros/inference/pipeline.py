"""Frame -> faces -> crops -> probabilities -> smoothed results: the one pipeline.

The node, the bag evaluator, the demo and the benchmarks all call `Pipeline.process`; none of
them repeats a step. It knows nothing of ROS: frames are RGB arrays, times are seconds.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from fer_ros.inference.faces import Box, DetectorOptions, crop, expand_box, make_detector
from fer_ros.inference.tracking import FaceTracker, TrackerOptions
from fer_ros.options import option

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


@dataclass(frozen=True)
class PipelineOptions(DetectorOptions, TrackerOptions):
    """Everything that shapes the pipeline: the detector's and the tracker's options plus these.
    fer_node's parameters and bag-eval's params file fill it by the same names."""

    detect_every: int = option(3, "Search the whole frame every N frames; follow faces in between", 1, 100)
    face_margin: float = option(0.2, "Grow each face box by this fraction per side before cropping", 0.0, 1.0)
    confidence_threshold: float = option(0.0, "Below this probability the label is 'unknown'", 0.0, 1.0)


class Pipeline:
    """Runs detection every `detect_every` frames and follows the faces in between.

    Following re-runs the detector only on a window around each known face, which costs a
    fraction of a full-frame search; a face not found in its window is dropped (it left or
    turned away), and a frame that ends up with no faces triggers a full search next time.
    """

    def __init__(self, engine, options: PipelineOptions = PipelineOptions()):
        self.engine = engine
        self.options = options
        self.detector = make_detector(options)
        self.tracker = FaceTracker(options)
        self.frame_count = 0
        self.boxes: list[Box] = []

    @property
    def labels(self) -> list[str]:
        return list(self.engine.labels)

    def find_faces(self, rgb: np.ndarray) -> tuple[list[Box], bool]:
        full_search = self.detector.name == "none" or self.frame_count % self.options.detect_every == 0 \
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
        regions = [expand_box(box, self.options.face_margin, width, height) for box in boxes]
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
            label = labels[best] if confidence >= self.options.confidence_threshold else UNKNOWN
            result.faces.append(FaceResult(box=box, face_id=track.face_id, probabilities=p,
                                           label=label, confidence=confidence))
        return result
