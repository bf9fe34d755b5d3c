"""fer_ros from Python, without ROS: the very pipeline fer_node runs, on photos and frame
sequences.

    from fer_ros.api import Recognizer

    with Recognizer() as recognizer:                      # the shipped model, the node's defaults
        for face in recognizer("photo.jpg"):              # a path, an RGB array, or bgr=True
            print(face.face_id, face.box, face.label, face.confidence, face.probabilities)

Options are fer_node's own parameters under their own names (`Recognizer(detector="haar",
smoothing="ema")`), checked by the same specs; a name the node does not know is refused. A single
call treats its image as a photo of its own: every face is searched for, ids start from 1.
`recognizer.stream(frames, fps=30)` (or calls with `time=` in seconds) runs a sequence with the
node's tracking kept: faces followed between full searches, stable ids, per-face smoothing.
A Recognizer may be shared by threads: one call runs at a time (the others wait), so a photo
never meets another thread's tracking state. Nothing here imports rclpy.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from fer_ros.errors import ConfigError
from fer_ros.inference.frames import read_image, to_rgb
from fer_ros.options import short_repr


@dataclass(frozen=True)
class DetectedFace:
    """One face of one frame."""

    box: tuple[int, int, int, int]  # x, y, width, height in the image's pixels
    face_id: int  # stable while the face is followed through a stream, from 1
    label: str  # the most probable expression; "unknown" below confidence_threshold, or too_small
    confidence: float  # that expression's probability
    probabilities: dict[
        str, float
    ]  # every expression the model knows -> probability (they sum to 1)
    landmarks: tuple[tuple[float, float], ...] | None = (
        None  # eyes, nose tip, mouth corners (yuface, yunet)
    )
    # Narrower than min_classify_size: found, but too small to read, so its label is "unknown";
    # confidence and probabilities are still the model's, a guess rather than a reading.
    too_small: bool = False

    def row(self) -> dict:
        """A flat dict for a table (csv.DictWriter, pandas.DataFrame): box, id, label, too_small,
        p_<expression>."""
        x, y, w, h = self.box
        return {
            "face_id": self.face_id,
            "x": x,
            "y": y,
            "width": w,
            "height": h,
            "label": self.label,
            "confidence": self.confidence,
            "too_small": self.too_small,
            **{f"p_{k}": v for k, v in self.probabilities.items()},
        }


def option_names() -> list[str]:
    """The node parameters a Recognizer takes: the engine's and the pipeline's (not the ROS-only
    ones)."""
    from fer_ros.inference.engine import EngineOptions
    from fer_ros.inference.pipeline import PipelineOptions
    from fer_ros.options import specs

    return [s.name for s in specs(EngineOptions) + specs(PipelineOptions)]


def check_time(time) -> None:
    """`time=` is None or a finite number of seconds: NaN would compare false with every earlier
    frame's time and keep one stream going through every later call."""
    if time is not None and not _finite(time):
        raise ConfigError(f"time must be a finite number of seconds, not {short_repr(time)}")


def _finite(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


class Recognizer:
    """Faces and their expressions in images, by fer_node's pipeline (detector, crop, engine,
    tracking, smoothing). `checkpoint`: a fer_ros .safetensors file (None: the shipped model)."""

    def __init__(self, checkpoint: str | Path | None = None, **options):
        from fer_ros.inference.load import load_pipeline

        known = option_names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                f"a Recognizer takes fer_node's parameters: {', '.join(known)}"
            )
        if "checkpoint" in options and checkpoint is not None:
            raise ConfigError("checkpoint given twice (as the first argument and as checkpoint=)")
        params = dict(options)
        if checkpoint is not None:
            params["checkpoint"] = str(checkpoint)
        self.engine, self.pipeline = load_pipeline(params)
        self.labels: list[str] = self.pipeline.labels
        self.detector: str = self.pipeline.detector_name  # what `auto` chose
        self.model_id: str = (
            self.engine.model_id
        )  # <checkpoint name>@<sha256 prefix>, as the node reports
        self.last = None  # the pipeline's FrameResult of the latest call (of any thread)
        self._time = None
        # The pipeline holds per-stream state (tracks, smoothing, the clock): one call at a time.
        self._lock = threading.Lock()

    def __call__(
        self, image, *, bgr: bool = False, time: float | None = None
    ) -> list[DetectedFace]:
        """The faces of one image, largest first. `image`: a path, or an (H, W[, 3|4]) uint8 array,
        RGB unless `bgr` (OpenCV's order). Without `time` the image stands alone; with `time`
        (seconds, increasing) it is the next frame of a stream and faces keep their ids."""
        check_time(time)
        if isinstance(image, (str, Path)):
            rgb = read_image(image)
        else:
            rgb = to_rgb(image, "bgr" if bgr else "rgb")
        with self._lock:
            if time is None or self._time is None or time < self._time:
                self.pipeline.reset()  # a photo of its own, or a new stream (time went back)
            self._time = time
            now = 0.0 if time is None else float(time)
            self.last = result = self.pipeline.process(rgb, now=now)
        return [self._face(f) for f in result.faces]

    def stream(
        self, frames: Iterable, fps: float = 30.0, *, bgr: bool = False
    ) -> Iterator[list[DetectedFace]]:
        """The faces of each frame of a sequence (arrays or paths) taken `fps` frames per second
        apart, tracked from frame to frame; a new stream starts from scratch."""
        if not (_finite(fps) and fps > 0):
            raise ConfigError(f"fps must be a positive number, not {short_repr(fps)}")
        with self._lock:
            self.pipeline.reset()
            self._time = None
        for index, frame in enumerate(frames):
            yield self(frame, bgr=bgr, time=index / fps)

    def _face(self, result) -> DetectedFace:
        landmarks = None
        if result.landmarks is not None:
            landmarks = tuple((float(x), float(y)) for x, y in np.asarray(result.landmarks))
        return DetectedFace(
            box=tuple(int(v) for v in result.box),
            face_id=int(result.face_id),
            label=result.label,
            confidence=float(result.confidence),
            probabilities={k: float(p) for k, p in zip(self.labels, result.probabilities)},
            landmarks=landmarks,
            too_small=bool(result.too_small),
        )

    def close(self) -> None:
        """Free the model (and GPU memory), once no other thread's call is running."""
        with self._lock:
            self.pipeline.close()
            self.engine.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        engine = f"{self.engine.device}/{self.engine.backend}"
        return f"Recognizer({self.model_id}, detector {self.detector}, {engine})"
