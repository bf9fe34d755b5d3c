"""Frames arriving faster than they are processed: the mailbox, the rate and age limits,
per-stage timing, the statistics and the debug drawing, without ROS.

fer_node parks each message here from its subscription callback, and its one worker thread takes
the oldest waiting. The mailbox holds `depth` frames (the node's `qos_depth`, 1 by default): a
frame arriving at a full mailbox pushes out the oldest (counted as dropped), so at depth 1 a slow
model never builds a backlog, and a deeper mailbox lets a replay answer every frame. The worker
then reads top to bottom: `too_old`, decode (the caller's), `classify` (the pipeline, timed stage
by stage), publish (the caller's), `count_answered`. bag-eval runs the same steps over a recording
through `process`. Times are monotonic seconds unless named `_ns` (nanoseconds of the caller's
clock, `now_ns`: a ROS clock, or a bag's; 0 while that clock has not started).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from fer_ros.inference.pipeline import FrameResult
from fer_ros.metrics import percentile

SAMPLES = 300  # recent latencies and stage times kept for the percentiles


class RateLimiter:
    """Spaces the starts of frame processing to at most `rate` a second (`max_rate`)."""

    def __init__(self, clock=time.monotonic):
        self.clock, self.last = clock, None

    def wait(self, rate: float) -> float:
        """Seconds to wait before the next start; 0 when the rate is off or the gap is long
        already."""
        if rate <= 0 or self.last is None:
            return 0.0
        return max(0.0, self.last + 1.0 / rate - self.clock())

    def start(self) -> float:
        """Record a start now; returns its time."""
        self.last = self.clock()
        return self.last


@dataclass
class Window:
    """The counters of one diagnostics period, and the totals and percentiles at its end."""

    seconds: float
    input_rate: float
    processed_rate: float
    bad: int
    stale: int
    seconds_since_frame: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    latency_samples: int
    values: dict[str, str]  # the totals and percentiles as /diagnostics shows them


class Stats:
    """Counters and recent timings; not thread-safe by itself (FrameStream guards it)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.received = self.processed = self.dropped = self.bad = self.stale = (
            self.debug_images
        ) = 0
        self.latency_ms: deque[float] = deque(maxlen=SAMPLES)
        self.detect_ms: deque[float] = deque(maxlen=SAMPLES)
        self.classify_ms: deque[float] = deque(maxlen=SAMPLES)
        self.last_frame: float | None = None  # time of the last frame received
        self.window_start = clock()
        self.window_received = self.window_processed = self.window_bad = self.window_stale = 0

    def count_received(self, at: float, dropped: int = 0) -> None:
        self.received += 1
        self.window_received += 1
        self.last_frame = at
        self.dropped += dropped

    def count_bad(self) -> None:
        self.bad += 1
        self.window_bad += 1

    def count_stale(self) -> None:
        self.stale += 1
        self.window_stale += 1

    def count_processed(
        self, latencies_ms=(), detect_ms: float | None = None, classify_ms: float | None = None
    ):
        """One frame answered; NaN latencies (a clock not started) are not samples."""
        self.processed += 1
        self.window_processed += 1
        self.latency_ms.extend(v for v in latencies_ms if not math.isnan(v))
        if detect_ms is not None:
            self.detect_ms.append(detect_ms)
        if classify_ms is not None:
            self.classify_ms.append(classify_ms)

    def close_window(self) -> Window:
        """The period since the last call, summed up; the next period starts now."""
        now = self.clock()
        elapsed = max(now - self.window_start, 1e-6)
        latency_p50, latency_p95 = percentile(self.latency_ms, 50), percentile(self.latency_ms, 95)
        window = Window(
            seconds=elapsed,
            input_rate=self.window_received / elapsed,
            processed_rate=self.window_processed / elapsed,
            bad=self.window_bad,
            stale=self.window_stale,
            seconds_since_frame=None if self.last_frame is None else now - self.last_frame,
            latency_p50_ms=latency_p50,
            latency_p95_ms=latency_p95,
            latency_samples=len(self.latency_ms),
            values={
                "input_rate_hz": f"{self.window_received / elapsed:.1f}",
                "processed_rate_hz": f"{self.window_processed / elapsed:.1f}",
                "frames_received": str(self.received),
                "frames_processed": str(self.processed),
                "frames_dropped": str(self.dropped),
                "frames_bad": str(self.bad),
                "frames_stale": str(self.stale),
                "debug_images": str(self.debug_images),
                "latency_p50_ms": f"{latency_p50:.1f}",
                "latency_p95_ms": f"{latency_p95:.1f}",
                "detect_p50_ms": f"{percentile(self.detect_ms, 50):.1f}",
                "classify_p50_ms": f"{percentile(self.classify_ms, 50):.1f}",
            },
        )
        self.window_start = now
        self.window_received = self.window_processed = self.window_bad = self.window_stale = 0
        return window


@dataclass
class Frame:
    """One frame as the worker takes it from the mailbox."""

    item: object  # what was parked: a message, or a caller's marker
    receipt_ns: int  # when it arrived, on the caller's clock (0: that clock has not started)
    received: float  # when it arrived, monotonic
    started: float = 0.0  # when the worker took it, monotonic


@dataclass
class Timing:
    """Where one frame's time went, in ms; NaN where the caller's clock has not started."""

    transport_ms: float  # image stamp -> receipt
    queue_ms: float  # receipt -> the worker took it
    decode_ms: float
    detect_ms: float
    classify_ms: float
    total_ms: float  # image stamp -> answer: the result's age (latency_ms)
    processing_ms: float  # receipt -> answer: the caller's own work
    publish_ms: float = 0.0
    faces: int = 0
    full_search: bool = False


def offline_frame(item, receipt_ns: int, clock=time.monotonic) -> Frame:
    """A frame that did not wait in a mailbox (a recording's): received and taken now."""
    now = clock()
    return Frame(item, receipt_ns, now, now)


class FrameStream:
    """The mailbox between a receiving thread and one worker, and what happens to a frame taken
    from it. `pipeline` is the one `classify` runs; `replace_pipeline` stages another, which
    `take` swaps in with the next frame (so a frame never sees two pipelines). `now_ns` reads the
    caller's clock, the one `receipt_ns` is on (the default, 0: a clock that never started)."""

    def __init__(self, pipeline=None, clock=time.monotonic, now_ns: Callable[[], int] = lambda: 0):
        self.pipeline = pipeline
        self.clock, self.now_ns = clock, now_ns
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.pending: deque[Frame] = deque(maxlen=1)
        self.next_pipeline = None
        self.running = False
        self.limiter = RateLimiter(clock)
        self.stats = Stats(clock)

    # -- the mailbox --------------------------------------------------------------------------

    def start(self, depth: int = 1) -> None:
        """Open the mailbox, holding at most `depth` frames: `take` waits for frames until
        `stop`."""
        with self.lock:
            self.pending = deque(maxlen=max(1, int(depth)))
            self.stats.last_frame = self.clock()  # "no frames for N s" counts from here
            self.running = True

    def stop(self) -> None:
        """Close the mailbox: a waiting frame is discarded and `take` returns None from now on."""
        with self.lock:
            self.running = False
            self.pending.clear()
            self.wake.notify_all()

    def put(self, item, receipt_ns: int, dropped: int | None = None) -> None:
        """Park a frame for the worker. `dropped`: how many frames it replaces (by default the
        oldest waiting one when the mailbox is full)."""
        with self.lock:
            received = self.clock()
            full = len(self.pending) == self.pending.maxlen
            self.stats.count_received(received, int(full) if dropped is None else dropped)
            self.pending.append(Frame(item, receipt_ns, received))
            self.wake.notify()

    def take(self, max_rate: float = 0.0) -> Frame | None:
        """Block until a frame is waiting (starting at most `max_rate` a second); None once
        stopped."""
        with self.lock:
            while self.running and not self.pending:
                self.wake.wait(timeout=0.5)
            if not self.running:
                return None
            wait = self.limiter.wait(max_rate)
            if wait > 0:
                self.wake.wait_for(lambda: not self.running, timeout=wait)
                if not self.running:
                    return None
            frame = self.pending.popleft()
            pipeline, self.next_pipeline = self.next_pipeline, None
        if pipeline is not None:
            previous, self.pipeline = self.pipeline, pipeline
            previous.close()
        frame.started = self.limiter.start()
        return frame

    def replace_pipeline(self, pipeline) -> None:
        """Stage `pipeline` for the next frame (one staged earlier and not yet taken is closed)."""
        with self.lock:
            superseded, self.next_pipeline = self.next_pipeline, pipeline
        if superseded is not None:
            superseded.close()

    def close_pipelines(self) -> None:
        """Close the running and the staged pipeline (the engine is the caller's)."""
        with self.lock:
            pipelines, self.next_pipeline = (self.pipeline, self.next_pipeline), None
        for pipeline in pipelines:
            if pipeline is not None:
                pipeline.close()
        self.pipeline = None

    # -- one frame ----------------------------------------------------------------------------

    def count(self, what: str) -> None:
        """Count a frame as `bad` (malformed, failed) or a `debug_images` drawing."""
        with self.lock:
            if what == "bad":
                self.stats.count_bad()
            else:
                self.stats.debug_images += 1

    def too_old(self, stamp_ns: int, now_ns: int, max_age_ms: float) -> bool:
        """With `max_age_ms`, a frame whose result would come too late is counted as stale (not
        while the clock has not started: there is no age to measure)."""
        if max_age_ms > 0 and now_ns > 0 and (now_ns - stamp_ns) * 1e-6 > max_age_ms:
            with self.lock:
                self.stats.count_stale()
            return True
        return False

    def classify(
        self, frame: Frame, rgb: np.ndarray, stamp_ns: int, max_age_ms: float = 0.0
    ) -> tuple[FrameResult, Timing] | None:
        """The pipeline on a frame the caller has just decoded into `rgb`, timed stage by stage;
        None when the answer came too late for `max_age_ms` (counted as stale)."""
        return self._classify(frame, rgb, stamp_ns, self.now_ns, max_age_ms)

    def _classify(self, frame, rgb, stamp_ns, now_ns, max_age_ms):
        decoded = self.clock()
        # With the caller's clock not started (use_sim_time before /clock) faces age on the
        # monotonic clock, and the latency (a difference of stamps on that clock) is unknown: NaN.
        clock_started = frame.receipt_ns > 0
        result = self.pipeline.process(
            rgb, now=frame.receipt_ns * 1e-9 if clock_started else frame.received
        )
        now = now_ns()
        if self.too_old(
            stamp_ns, now, max_age_ms
        ):  # the work took too long: a late answer is worse than none
            return None
        nan = float("nan")
        timing = Timing(
            transport_ms=(frame.receipt_ns - stamp_ns) * 1e-6 if clock_started else nan,
            queue_ms=(frame.started - frame.received) * 1e3,
            decode_ms=(decoded - frame.started) * 1e3,
            detect_ms=result.detect_ms,
            classify_ms=result.classify_ms,
            total_ms=(now - stamp_ns) * 1e-6 if clock_started and now > 0 else nan,
            processing_ms=(self.clock() - frame.received) * 1e3,
            faces=len(result.faces),
            full_search=result.detected,
        )
        return result, timing

    def count_answered(self, timing: Timing) -> None:
        """A frame's results are out: its latency and stage times join the statistics."""
        with self.lock:
            self.stats.count_processed([timing.total_ms], timing.detect_ms, timing.classify_ms)

    def process(
        self,
        frame: Frame,
        stamp_ns: int,
        decode: Callable,
        now_ns: Callable[[], int],
        publish: Callable,
        max_age_ms: float = 0.0,
    ):
        """Every step of one frame in one call, for bag-eval (which decodes and writes in line):
        `too_old`, `decode(item) -> rgb`, the pipeline, `publish(rgb, result, timing)` (timed),
        `count_answered`. Returns (rgb, result, timing), or None for a frame dropped as too old.
        `now_ns()` reads the clock of `frame.receipt_ns`."""
        if self.too_old(stamp_ns, now_ns(), max_age_ms):  # already too old to be worth the work
            return None
        rgb = decode(frame.item)
        answered = self._classify(frame, rgb, stamp_ns, now_ns, max_age_ms)
        if answered is None:
            return None
        result, timing = answered
        publishing = self.clock()
        publish(rgb, result, timing)
        timing.publish_ms = (self.clock() - publishing) * 1e3
        self.count_answered(timing)
        return rgb, result, timing

    def count_processed(self, latencies_ms=(), classify_ms: float | None = None) -> None:
        """A frame answered outside `classify` (a batch of ROS4HRI face images)."""
        with self.lock:
            self.stats.count_processed(latencies_ms, None, classify_ms)

    def close_window(self) -> Window:
        with self.lock:
            return self.stats.close_window()


def draw_results(rgb: np.ndarray, faces) -> np.ndarray:
    """A copy of the frame with each face's box and `#id label confidence` drawn (the debug
    image)."""
    canvas = rgb.copy()
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
        text = f"#{face.face_id} {face.label} {face.confidence:.2f}"
        cv2.putText(
            canvas, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1
        )
    return canvas
