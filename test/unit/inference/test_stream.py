"""fer_ros.inference.stream without ROS or DDS: the mailbox, the rate and age limits, the timing,
the statistics and the debug drawing, on a fake clock and a stand-in pipeline."""

import math
import threading

import numpy as np
import pytest

from fer_ros.inference.pipeline import FaceResult, FrameResult
from fer_ros.inference.stream import FrameStream, RateLimiter, Stats, draw_results


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


class StandIn:
    """A pipeline that finds one face and takes `seconds` of the fake clock to do it."""

    def __init__(self, clock, seconds=0.0):
        self.clock, self.seconds, self.calls, self.closed = clock, seconds, [], False

    def process(self, rgb, now):
        self.calls.append(now)
        self.clock.now += self.seconds
        face = FaceResult(
            box=(2, 3, 10, 12),
            face_id=1,
            probabilities=np.array([0.8, 0.2], np.float32),
            label="happy",
            confidence=0.8,
        )
        return FrameResult(faces=[face], detect_ms=4.0, classify_ms=6.0, detected=True)

    def close(self):
        self.closed = True


def test_rate_limiter_spaces_starts_on_its_clock():
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.wait(2.0) == 0.0  # nothing started yet
    limiter.start()
    now[0] += 0.1
    assert limiter.wait(2.0) == pytest.approx(0.4) and limiter.wait(0.0) == 0.0  # 0: no limit
    now[0] += 0.5
    assert limiter.wait(2.0) == 0.0
    assert limiter.start() == pytest.approx(100.6)
    assert limiter.wait(10.0) == pytest.approx(0.1)


def test_a_newer_frame_replaces_a_waiting_one_and_counts_it_dropped():
    stream = FrameStream(clock=Clock())
    stream.start()
    for name in ("a", "b", "c"):
        stream.put(name, receipt_ns=1)
    frame = stream.take()
    assert frame.item == "c"
    stream.put("d", receipt_ns=1)  # nothing waiting: not a drop
    stream.put("e", receipt_ns=1, dropped=0)  # the caller says it replaces nothing
    assert stream.take().item == "e"
    assert (stream.stats.received, stream.stats.dropped) == (5, 2)


def test_a_deeper_mailbox_keeps_frames_in_order_and_drops_only_the_oldest():
    """qos_depth > 1 (a replay answered frame by frame): frames wait in arrival order, and only a
    frame pushed out of a full mailbox counts as dropped."""
    stream = FrameStream(clock=Clock())
    stream.start(depth=3)
    for name in "abcd":
        stream.put(name, receipt_ns=1)
    assert [stream.take().item for _ in range(3)] == ["b", "c", "d"]
    assert (stream.stats.received, stream.stats.dropped) == (4, 1)
    stream.stop()
    assert stream.take() is None


def test_take_returns_none_once_stopped():
    stream = FrameStream()
    stream.start()
    answer = []
    worker = threading.Thread(target=lambda: answer.append(stream.take()))
    worker.start()
    stream.stop()
    worker.join(5.0)
    assert answer == [None] and not worker.is_alive()


def test_a_staged_pipeline_is_swapped_in_at_the_next_frame():
    clock = Clock()
    old, new, newer = StandIn(clock), StandIn(clock), StandIn(clock)
    stream = FrameStream(old, clock=clock)
    stream.start()
    stream.replace_pipeline(new)
    stream.replace_pipeline(newer)  # supersedes `new` before a frame took it
    assert new.closed and stream.pipeline is old
    stream.put("frame", receipt_ns=1)
    stream.take()
    assert stream.pipeline is newer and old.closed and not newer.closed
    stream.close_pipelines()
    assert newer.closed and stream.pipeline is None


def test_process_times_each_stage_and_counts_the_frame():
    clock = Clock()
    stream = FrameStream(StandIn(clock, seconds=0.05), clock=clock)
    stream.start()
    ros_ns = [10_000_000_000]
    stream.put("msg", receipt_ns=ros_ns[0])
    clock.now += 0.01  # 10 ms in the mailbox
    frame = stream.take()
    published = []

    def decode(item):
        clock.now += 0.002
        return np.zeros((20, 20, 3), np.uint8)

    def publish(rgb, result, timing):
        published.append(timing.total_ms)
        clock.now += 0.001

    def now_ns():
        return ros_ns[0] + int(round((clock.now - frame.received) * 1e9))

    rgb, result, timing = stream.process(frame, ros_ns[0] - 5_000_000, decode, now_ns, publish)
    assert stream.pipeline.calls == [10.0]  # faces age on the receipt's clock
    assert timing.transport_ms == pytest.approx(5.0) and timing.queue_ms == pytest.approx(10.0)
    assert timing.decode_ms == pytest.approx(2.0) and timing.publish_ms == pytest.approx(1.0)
    assert (timing.detect_ms, timing.classify_ms, timing.faces, timing.full_search) == (
        4.0,
        6.0,
        1,
        True,
    )
    assert timing.total_ms == pytest.approx(5 + 10 + 2 + 50) and published == [timing.total_ms]
    assert timing.processing_ms == pytest.approx(10 + 2 + 50)
    assert stream.stats.processed == 1 and list(stream.stats.latency_ms) == [timing.total_ms]


def test_a_frame_older_than_max_age_is_dropped_before_or_after_the_work():
    clock = Clock()
    stream = FrameStream(StandIn(clock, seconds=0.2), clock=clock)
    stream.start()
    ros = [1_000_000_000]
    for _ in range(2):
        stream.put("msg", receipt_ns=ros[0])
    frame = stream.take()
    # Already 300 ms old: dropped before decoding.
    assert (
        stream.process(frame, ros[0] - 300_000_000, lambda m: 1 / 0, lambda: ros[0], None, 150.0)
        is None
    )
    # 100 ms old, and the pipeline takes 200 ms: dropped after the work.
    now_ns = iter([ros[0], ros[0] + 200_000_000])
    assert (
        stream.process(
            frame,
            ros[0] - 100_000_000,
            lambda m: np.zeros((4, 4, 3), np.uint8),
            lambda: next(now_ns),
            None,
            150.0,
        )
        is None
    )
    assert stream.too_old(0, 0, 150.0) is False  # the clock has not started: no age to measure
    assert (stream.stats.stale, stream.stats.processed, stream.stats.dropped) == (2, 0, 1)


def test_without_a_started_clock_latency_is_nan_and_not_a_sample():
    clock = Clock()
    stream = FrameStream(StandIn(clock), clock=clock)
    stream.start()
    stream.put("msg", receipt_ns=0)
    frame = stream.take()
    _, _, timing = stream.process(
        frame, 0, lambda m: np.zeros((4, 4, 3), np.uint8), lambda: 0, lambda *_: None
    )
    assert stream.pipeline.calls == [frame.received]  # faces age on the monotonic clock
    assert math.isnan(timing.total_ms) and math.isnan(timing.transport_ms)
    assert stream.stats.processed == 1 and len(stream.stats.latency_ms) == 0


def test_window_rates_percentiles_and_reset():
    clock = Clock(0.0)
    stats = Stats(clock)
    for _ in range(4):
        stats.count_received(clock())
    for latency in (10.0, 20.0, 30.0, 40.0, float("nan")):
        stats.count_processed([latency], detect_ms=2.0, classify_ms=3.0)
    stats.count_bad()
    stats.count_stale()
    clock.now = 2.0
    window = stats.close_window()
    assert window.seconds == 2.0 and window.input_rate == 2.0 and window.processed_rate == 2.5
    assert (window.bad, window.stale, window.latency_samples) == (1, 1, 4)
    assert window.latency_p50_ms == pytest.approx(25.0) and window.latency_p95_ms == pytest.approx(
        38.5
    )
    assert window.seconds_since_frame == 2.0
    assert window.values["frames_received"] == "4" and window.values["latency_p95_ms"] == "38.5"
    assert window.values["detect_p50_ms"] == "2.0" and window.values["classify_p50_ms"] == "3.0"
    clock.now = 3.0
    after = stats.close_window()  # a new period: its counters start from 0, the totals stay
    assert (after.input_rate, after.processed_rate, after.bad, after.stale) == (0.0, 0.0, 0, 0)
    assert after.values["frames_processed"] == "5" and after.values["frames_bad"] == "1"


def test_draw_results_marks_only_around_the_box_and_keeps_the_frame():
    rgb = np.full((120, 160, 3), 40, np.uint8)
    face = FaceResult(
        box=(40, 50, 60, 50),
        face_id=3,
        probabilities=np.array([1.0], np.float32),
        label="happy",
        confidence=0.9,
    )
    canvas = draw_results(rgb, [face])
    assert (rgb == 40).all()  # the frame itself is untouched
    changed = (canvas != rgb).any(axis=2)
    assert changed[50:101, 40].all() and changed[100, 40:101].all()  # left and bottom edges
    assert not changed[55:95, 45:95].any() and not changed[110:, :].any()
    assert changed[:50, 40:].any()  # the label above the box


def test_a_worker_reads_top_to_bottom_on_the_callers_clock():
    """The node's worker: take, too_old, decode (its own), classify, publish (its own),
    count_answered; the stream reads the caller's clock (`now_ns`) for the age and the latency."""
    clock, ros_ns = Clock(), [10_000_000_000]
    stream = FrameStream(StandIn(clock, seconds=0.05), clock=clock, now_ns=lambda: ros_ns[0])
    stream.start()
    stream.put("msg", receipt_ns=ros_ns[0])
    clock.now += 0.01  # 10 ms in the mailbox
    frame = stream.take()
    stamp = ros_ns[0] - 5_000_000
    assert not stream.too_old(stamp, ros_ns[0], max_age_ms=100.0)
    clock.now += 0.002  # decoding, the caller's
    ros_ns[0] += 62_000_000  # the pipeline's 50 ms and the 12 ms before it, on the caller's clock
    result, timing = stream.classify(frame, np.zeros((20, 20, 3), np.uint8), stamp, 100.0)
    assert stream.pipeline.calls == [10.0] and len(result.faces) == 1
    assert timing.queue_ms == pytest.approx(10.0) and timing.decode_ms == pytest.approx(2.0)
    assert timing.total_ms == pytest.approx(67.0) and timing.processing_ms == pytest.approx(62.0)
    assert stream.stats.processed == 0  # not answered until its results are out
    stream.count_answered(timing)
    assert stream.stats.processed == 1 and list(stream.stats.latency_ms) == [timing.total_ms]
    stream.stop()
    assert stream.take() is None  # the worker's loop ends


def test_classify_drops_an_answer_that_came_too_late():
    clock, ros_ns = Clock(), [1_000_000_000]
    stream = FrameStream(StandIn(clock), clock=clock, now_ns=lambda: ros_ns[0])
    stream.start()
    stream.put("msg", receipt_ns=ros_ns[0])
    frame = stream.take()
    ros_ns[0] += 200_000_000
    assert stream.classify(frame, np.zeros((4, 4, 3), np.uint8), frame.receipt_ns, 150.0) is None
    assert (stream.stats.stale, stream.stats.processed) == (1, 0)
