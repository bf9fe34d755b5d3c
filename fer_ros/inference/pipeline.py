"""Frame -> faces -> crops -> probabilities -> smoothed results: the one pipeline.

The node, the bag evaluator, the demo and the benchmarks all call `Pipeline.process`; none of
them repeats a step. It knows nothing of ROS: frames are RGB arrays, times are seconds.
"""

import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from fer_ros.inference.crops import CROPS, face_crop
from fer_ros.inference.faces import (
    Box,
    DetectorOptions,
    Face,
    crop,
    expand_box,
    largest_first,
    make_detector,
    resolve_detector,
)
from fer_ros.inference.tracking import FaceTracker, TrackerOptions, iou
from fer_ros.options import option

UNKNOWN = "unknown"
FOLLOW_SIZE = 1.3  # how much a followed face may shrink or grow from one frame to the next
NEW_FACE_IOU = 0.3  # a searched box overlapping a followed one less than this is a new face


@dataclass
class FaceResult:
    box: Box
    face_id: int
    probabilities: np.ndarray  # float32, in the order of Pipeline.labels, sums to 1
    label: str  # arg-max label, or "unknown" below the confidence threshold or when too_small
    confidence: float  # arg-max probability
    landmarks: np.ndarray | None = (
        None  # (5, 2) frame pixels when the detector gives them (faces.Face)
    )
    score: float = (
        1.0  # the detector's confidence in the box (1 for detectors that give none: Haar)
    )
    # Narrower than min_classify_size: label "unknown"; probabilities and confidence are still
    # the model's (kept for whoever wants them), but they are a guess, not a reading.
    too_small: bool = False


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

    detect_every: int = option(
        3, "Search the whole frame every N frames; follow faces in between", 1, 100
    )
    face_crop: str = option(
        "framed",
        "How a face is cropped for the model: framed (as its training faces were "
        "framed), box (the detector's box) or aligned (landmarks onto the training faces' "
        "median positions)",
        choices=CROPS,
    )
    face_margin: float = option(0.0, "Grow each face crop by this fraction per side", 0.0, 1.0)
    confidence_threshold: float = option(
        0.0, "Below this probability the label is 'unknown'", 0.0, 1.0
    )
    # The default is the knee of accuracy against face width (docs/faces.md "How small a face can
    # be read"): 16 -> 20 px gains 9 points, 20 -> 24 px only 2.
    min_classify_size: int = option(
        20,
        "A face narrower than this (pixels of the full frame) is still reported, its label "
        "'unknown' (too small to read); 0 = off",
        0,
        4096,
    )
    detect_async: bool = option(
        True,
        "While faces are followed, run the periodic full-frame search on a "
        "second thread instead of inside a frame (shorter latency tail)",
    )


def check_detector(options: PipelineOptions) -> None:
    """Build (and drop) the detector `options` name: raises what a Pipeline of them would raise
    (a YuNet model that is not there, an unknown detector), without an engine."""
    make_detector(replace(options, detector=resolve_detector(options.detector)[0]))


class BackgroundSearch:
    """One full-frame search at a time on its own thread, with its own detector (a cascade is not
    safe to share between threads). OpenCV releases the GIL while it searches, so on a 2-core
    machine the search runs beside the frame path instead of inside one frame: that search was
    the whole of the node's latency tail (a slow frame every `detect_every`; docs/benchmarks.md).

    A search that raises is a missed search, not a crash and not an empty result: `take` then has
    nothing (the faces followed so far stay), and `take_failures` tells the caller how many failed
    and the newest error, which fer_node counts on /diagnostics and logs."""

    def __init__(self, options: DetectorOptions):
        self.detector = make_detector(options)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.found: list[Face] | None = None
        self.failures = 0
        self.error: Exception | None = None  # the newest failure, traceback included

    def submit(self, rgb: np.ndarray) -> bool:
        """Start a search of `rgb` (which must not change afterwards) unless one is running."""
        with self.lock:
            if self.thread is not None:
                return False
            self.thread = threading.Thread(
                target=self._run, args=(rgb,), name="fer_ros-search", daemon=True
            )
            self.thread.start()
        return True

    def _run(self, rgb: np.ndarray) -> None:
        try:
            found = self.detector(rgb)
        except Exception as err:  # told through take_failures; the frames go on
            with self.lock:
                self.failures, self.error, self.thread = self.failures + 1, err, None
            return
        with self.lock:
            self.found, self.thread = found, None

    def take(self) -> list[Face] | None:
        """The boxes of a search that finished since the last call, or None."""
        with self.lock:
            found, self.found = self.found, None
        return found

    def take_failures(self) -> tuple[int, Exception | None]:
        """(searches failed since the last call, the newest one's error)."""
        with self.lock:
            failed, error = self.failures, self.error
            self.failures, self.error = 0, None
        return failed, error

    def close(self, timeout: float = 1.0) -> None:
        with self.lock:
            thread = self.thread
        if thread is not None:
            thread.join(timeout)


class Pipeline:
    """Runs detection every `detect_every` frames and follows the faces in between.

    Following re-runs the detector only on a window around each known face, which costs a
    fraction of a full-frame search; a face not found in its window is dropped (it left or
    turned away), and a frame that ends up with no faces triggers a full search next time.
    With `detect_async`, the periodic search (looking for new faces while others are followed)
    runs on a second thread; the faces it finds that are not followed yet are located in the
    current frame by a window search and join from then on. A frame with nothing to follow is
    still searched at once.
    """

    def __init__(self, engine, options: PipelineOptions = PipelineOptions()):
        self.engine = engine
        self.options = options
        # `auto` is resolved once, here: the note says what it chose (callers log it).
        self.detector_name, self.detector_note = resolve_detector(options.detector)
        self.detector = make_detector(replace(options, detector=self.detector_name))
        self.tracker = FaceTracker(options)
        self.frame_count = 0
        self.faces: list[Face] = []
        # A search beside the frames needs a detector that lets go of the GIL while it works.
        use_thread = options.detect_async and self.detector.releases_gil
        self.search = (
            BackgroundSearch(replace(options, detector=self.detector_name)) if use_thread else None
        )

    @property
    def labels(self) -> list[str]:
        return list(self.engine.labels)

    def find_faces(self, rgb: np.ndarray) -> tuple[list[Face], bool]:
        periodic = self.frame_count % self.options.detect_every == 0
        self.frame_count += 1
        if self.detector.name == "none" or not self.faces or (periodic and self.search is None):
            return self.detector(rgb), True
        followed = self.follow(rgb, self.faces)
        found = self.search.take() if self.search is not None else None
        if found:
            new = [
                f for f in found if all(iou(f.box, known.box) < NEW_FACE_IOU for known in followed)
            ]
            followed = largest_first(followed + self.follow(rgb, new), self.options.max_faces)
        if periodic and self.search is not None:
            self.search.submit(rgb)
        return followed, found is not None

    def follow(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """Each face searched for again in a window around where it was."""
        height, width = rgb.shape[:2]
        followed = []
        for face in faces:
            wx, wy, ww, wh = expand_box(face.box, 0.5, width, height)
            side = max(face.box[2], face.box[3])
            # A face changes size little between two frames: searching 1/FOLLOW_SIZE..FOLLOW_SIZE
            # times its last size skips most of a cascade's pyramid and lets a CNN search a shrunk
            # window (the full search still sees every size).
            sizes = (side / FOLLOW_SIZE, side * FOLLOW_SIZE)
            found = self.detector(crop(rgb, (wx, wy, ww, wh)), sizes) if ww and wh else []
            if found:
                followed.append(found[0].moved(wx, wy))
        return followed

    def reset(self) -> None:
        """Forget every face followed so far: the next frame starts a new stream (a full search,
        ids from 1)."""
        self.close()
        if self.search is not None:
            self.search.take()
        self.tracker = FaceTracker(self.options)
        self.frame_count = 0
        self.faces = []

    def take_search_failures(self) -> tuple[int, Exception | None]:
        """(background searches failed since the last call, the newest one's error); (0, None)
        without a background search."""
        return self.search.take_failures() if self.search is not None else (0, None)

    def close(self) -> None:
        """Wait for a background search in flight (at most a second)."""
        if self.search is not None:
            self.search.close()

    def process(self, rgb: np.ndarray, now: float | None = None) -> FrameResult:
        """Classify every face of one RGB frame; `now` (seconds) ages out lost faces."""
        now = time.monotonic() if now is None else now
        t0 = time.perf_counter()
        faces, detected = self.find_faces(rgb)
        self.faces = faces
        t1 = time.perf_counter()
        opts = self.options
        crops = [
            face_crop(rgb, face, self.detector_name, opts.face_crop, opts.face_margin)
            for face in faces
        ]
        keep = [i for i, c in enumerate(crops) if c.shape[0] > 1 and c.shape[1] > 1]
        faces = [faces[i] for i in keep]
        probs = self.engine.predict([crops[i] for i in keep]) if keep else None
        t2 = time.perf_counter()
        result = FrameResult(
            detect_ms=(t1 - t0) * 1e3, classify_ms=(t2 - t1) * 1e3, detected=detected
        )
        tracks = self.tracker.match([face.box for face in faces], now)
        for face, track, p in zip(faces, tracks, probs if probs is not None else []):
            result.faces.append(self.result(face.box, track, p, face.landmarks, face.score))
        return result

    def classify_crops(self, crops: list[np.ndarray], tracks) -> FrameResult:
        """Images that are face crops already (one per track: a ROS4HRI detector's), classified in
        one batch; each keeps its track's smoothing. min_classify_size measures the crop itself:
        the frame it was cut from is not known here."""
        t0 = time.perf_counter()
        probs = self.engine.predict(crops)
        result = FrameResult(detected=False, classify_ms=(time.perf_counter() - t0) * 1e3)
        for crop_, track, p in zip(crops, tracks, probs):
            result.faces.append(self.result((0, 0, crop_.shape[1], crop_.shape[0]), track, p))
        return result

    def result(self, box: Box, track, probs, landmarks=None, score: float = 1.0) -> FaceResult:
        """One face's answer: its track's smoothing applied, the arg-max label ('unknown' below the
        confidence threshold, and for a face narrower than min_classify_size, which is also marked
        too_small). Confidence stays the arg-max probability either way, as the messages say."""
        p = self.tracker.smooth(track, np.asarray(probs, dtype=np.float32))
        best = int(np.argmax(p))
        confidence = float(p[best])
        too_small = box[2] < self.options.min_classify_size
        sure = confidence >= self.options.confidence_threshold and not too_small
        label = self.labels[best] if sure else UNKNOWN
        return FaceResult(
            box=box,
            face_id=track.face_id,
            probabilities=p,
            label=label,
            confidence=confidence,
            landmarks=landmarks,
            score=score,
            too_small=too_small,
        )
