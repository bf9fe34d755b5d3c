"""fer_node: camera frames in, EmotionArray / EmotionStamped out (plus vision_msgs and ROS4HRI).

A thin lifecycle adapter around `fer_ros.inference.pipeline`: configure loads the checkpoint, activate
subscribes, deactivate unsubscribes, cleanup frees the model (and the GPU). With `autostart`
(the default) the node configures and activates itself.

Frames are handed from the subscription callback to one worker thread through a one-slot
mailbox: a newer frame replaces a waiting one (counted as dropped), so a slow model never
builds a backlog and the newest frame is always the next one processed.

Shutdown: SIGINT and SIGTERM only set a flag; the main loop then stops the worker and frees the
engine. A second signal while that runs (a terminal's Ctrl-C reaches both `ros2 launch` and the
node, and launch forwards its own) changes nothing, so cleanup always completes with exit code 0.
"""

import dataclasses
import gc
import signal
import sys
import threading
import time
from collections import deque

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.errors import FrameError, one_line
from fer_ros.inference.engine import Engine, EngineOptions
from fer_ros.inference.pipeline import FrameResult, Pipeline, PipelineOptions, check_detector
from fer_ros.inference.tracking import Track
from fer_ros.metrics import percentile
from fer_ros.msg import EmotionArray, EmotionStamped, FrameTiming
from fer_ros.options import from_params, specs
from fer_ros.ros.dds import active_profile, tune_allocator
from fer_ros.ros.diagnostics import Health, silent_publishers, status
from fer_ros.ros.hri_input import HriFaces
from fer_ros.ros.images import fill_image, message_to_rgb
from fer_ros.ros.messages import emotion_messages, rclpy_classes, stamp_ns
from fer_ros.ros.params import PARAMS, NodeOptions, as_declared, descriptor
from fer_ros.ros.standard import HRI_EXPRESSIONS, StandardOutputs, optional_msgs


PIPELINE_PARAMS = {spec.name for spec in specs(PipelineOptions)}  # a change rebuilds the pipeline
HRI_BATCH = object()  # the mailbox's message when the faces come from a ROS4HRI detector (detector hri)


class RateLimiter:
    """Spaces the starts of frame processing to at most `rate` a second (`max_rate`)."""

    def __init__(self, clock=time.monotonic):
        self.clock, self.last = clock, None

    def wait(self, rate: float) -> float:
        """Seconds to wait before the next start; 0 when the rate is off or the gap is already long."""
        if rate <= 0 or self.last is None:
            return 0.0
        return max(0.0, self.last + 1.0 / rate - self.clock())

    def start(self) -> float:
        """Record a start now; returns its time."""
        self.last = self.clock()
        return self.last


class Stats:
    """Counters and recent timings for /diagnostics; guarded by the node's lock."""

    def __init__(self):
        self.received = self.processed = self.dropped = self.bad = self.stale = self.debug_images = 0
        self.latency_ms = deque(maxlen=300)
        self.detect_ms = deque(maxlen=300)
        self.classify_ms = deque(maxlen=300)
        self.last_frame = None  # monotonic time of the last frame received
        self.window_start = time.monotonic()
        self.window_received = self.window_processed = self.window_bad = self.window_stale = 0

    def count_bad(self) -> None:
        self.bad += 1
        self.window_bad += 1

    def count_stale(self) -> None:
        self.stale += 1
        self.window_stale += 1


class FerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("fer_node", **kwargs)
        # `-p max_age_ms:=150` (and `ros2 param set ... 150`) arrive as an INTEGER, which rclpy refuses
        # for a DOUBLE parameter: whole numbers are taken for floating-point parameters, at start-up
        # (the overrides) and at run time (before rclpy checks the type: a pre-set callback).
        overrides = getattr(self, "_parameter_overrides", None)
        if isinstance(overrides, dict):
            overrides.update({name: as_declared(given) for name, given in overrides.items() if name in PARAMS})
        for name, spec in PARAMS.items():
            self.declare_parameter(name, spec.default, descriptor(spec))
        if hasattr(self, "add_pre_set_parameters_callback"):  # rclpy of Iron and later
            self.add_pre_set_parameters_callback(lambda params: [as_declared(p) for p in params])
        # One callback checks a change by building what it needs (a new pipeline): what cannot be
        # applied is refused, with the reason, so the node always runs what `param get` says. The
        # worker swaps the new pipeline in at its next frame.
        self.add_on_set_parameters_callback(self._check_parameters)
        self.next_pipeline = None  # built for an accepted change, not yet taken by the worker
        self.engine = None
        self.pipeline = None
        self.outputs = None
        self.subscriptions_ = []
        self.hri_faces = None  # detector hri: the ROS4HRI faces subscribed to
        self.hri_tracks: dict = {}  # detector hri: ROS4HRI id -> smoothing state
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.pending = None  # (msg, receipt on the node clock, receipt monotonic) waiting for the worker
        self.limiter = RateLimiter()
        self.worker = None
        self.running = False
        self.configure_error = ""
        self.stats = Stats()
        self.message_classes = rclpy_classes()
        self.emotions_pub = self.emotion_pub = self.debug_pub = self.debug_jpeg_pub = self.timing_pub = None
        # Diagnostics from the start: a node that cannot configure says why on /diagnostics.
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer = self.diagnostics_timer(self.param("diagnostics_period"))

    def diagnostics_timer(self, period: float):
        """On the steady clock: a timer on the node's clock stands still under use_sim_time until
        /clock runs, and diagnostics are what must say that it does not."""
        return self.create_timer(period, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # -- parameters ---------------------------------------------------------------------------

    def param(self, name: str):
        return self.get_parameter(name).value

    def _check_parameters(self, params) -> SetParametersResult:
        configured = self.engine is not None
        for p in params:
            spec = PARAMS.get(p.name)
            if spec is None:
                continue
            if reason := spec.problem(p.value):
                return SetParametersResult(successful=False, reason=reason)
            if configured and not spec.live:
                return SetParametersResult(successful=False, reason=f"{p.name} applies at configure: "
                                           "deactivate and clean up the node, then set it")
            if p.name == "detector" and configured and (p.value == "hri") != (self.param("detector") == "hri"):
                return SetParametersResult(successful=False, reason="detector hri (or leaving it) applies at "
                                           "configure: deactivate and clean up the node, then set it")
        if any(p.name in PIPELINE_PARAMS for p in params):
            try:
                self.prepare_pipeline(params)
            except Exception as err:  # the change cannot work: refused, the node keeps what it runs
                names = ", ".join(p.name for p in params)
                return SetParametersResult(successful=False, reason=f"{names} not applied: {one_line(err)}")
        for p in params:
            if p.name == "diagnostics_period":  # the timer exists from construction: restart it
                self.destroy_timer(self.diag_timer)
                self.diag_timer = self.diagnostics_timer(p.value)
        return SetParametersResult(successful=True)

    def prepare_pipeline(self, params) -> None:
        """Build the pipeline the parameters would give (raises if it cannot be built); when
        configured, hand it to the worker. Unconfigured, configure builds it: only the detector is
        checked."""
        options = self.pipeline_options({p.name: p.value for p in params})
        if self.engine is None:
            check_detector(options)
            return
        pipeline = Pipeline(self.engine, options)
        with self.lock:
            superseded, self.next_pipeline = self.next_pipeline, pipeline
        if superseded is not None:
            superseded.close()

    def options(self, cls, changed: dict | None = None):
        """The node's parameters as one of the options dataclasses (same names, no mapping), with
        `changed` values over the stored ones."""
        return from_params(cls, {name: self.param(name) for name in PARAMS} | (changed or {}))

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.engine = Engine.from_options(self.options(EngineOptions), warn=self.get_logger().warning)
            self.pipeline = self.make_pipeline()
            if self.pipeline.detector_note:
                self.get_logger().info(self.pipeline.detector_note)
            self.engine.warmup()
            if self.param("detect_threads"):
                cv2.setNumThreads(self.param("detect_threads"))
        except Exception as err:  # one clear line, not a traceback: this is a user's setting
            self.configure_error = one_line(err)
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self.release_engine()
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = ""
        node = self.options(NodeOptions)
        self.emotions_pub = self.create_publisher(EmotionArray, "emotions", 10)
        self.emotion_pub = self.create_publisher(EmotionStamped, "emotion", 10)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", qos_profile_sensor_data)
        self.debug_jpeg_pub = self.create_publisher(CompressedImage, "~/debug_image/compressed",
                                                    qos_profile_sensor_data)
        self.timing_pub = self.create_publisher(FrameTiming, "~/timing", 100)
        # With detector hri the face detector owns /humans/faces/tracked and the rois.
        self.outputs = StandardOutputs(self, self.engine.labels, self.param("confidence_threshold"),
                                       node.publish_detections, node.hri and not self.hri_mode)
        # Everything made so far (the model, the ROS objects) lives until cleanup: the garbage collector
        # need not walk it again on every collection of what the frames allocate.
        gc.collect()
        gc.freeze()
        self.get_logger().info(f"loaded {self.engine.model_id} on {self.engine.device} "
                               f"({self.engine.backend}); labels: {', '.join(self.engine.labels)}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        node = self.options(NodeOptions)
        qos = QoSProfile(depth=node.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT if node.qos_reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        if self.hri_mode:
            self.hri_faces = HriFaces(self, optional_msgs("hri_msgs"), node.hri_face_image, qos, self.on_hri_image)
            self.subscriptions_ = [self.hri_faces.tracked]
        elif node.image_transport == "compressed":
            self.subscriptions_ = [self.create_subscription(CompressedImage, "image/compressed", self.on_frame, qos)]
        else:
            self.subscriptions_ = [self.create_subscription(Image, "image", self.on_frame, qos)]
        with self.lock:
            self.stats.last_frame = time.monotonic()  # "no frames for N s" counts from activation
            self.running = True
        self.worker = threading.Thread(target=self.work, name="fer_worker", daemon=True)
        self.worker.start()
        topics = ", ".join(s.topic_name for s in self.subscriptions_)
        self.get_logger().info(f"listening on {topics}; publishing {self.emotions_pub.topic_name} and "
                               f"{self.emotion_pub.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        if self.hri_faces is not None:
            self.hri_faces.close()  # its own subscriptions, the tracked list's included
        else:
            for sub in self.subscriptions_:
                self.destroy_subscription(sub)
        self.hri_faces, self.subscriptions_ = None, []
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS

    def release_engine(self) -> None:
        """Free the model and every output publisher (configure creates them again)."""
        if self.outputs is not None:
            self.outputs.close()
        for pub in (self.emotions_pub, self.emotion_pub, self.debug_pub, self.debug_jpeg_pub, self.timing_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self.emotions_pub = self.emotion_pub = self.debug_pub = self.debug_jpeg_pub = self.timing_pub = None
        self.outputs = None
        for pipeline in (self.pipeline, self.next_pipeline):
            if pipeline is not None:
                pipeline.close()
        self.next_pipeline = None
        if self.engine is not None:
            self.engine.close()
        self.engine = self.pipeline = None

    def stop_worker(self) -> None:
        with self.lock:
            self.running = False
            self.pending = None
            self.wake.notify_all()
        if self.worker is not None:
            self.worker.join(timeout=10.0)
            self.worker = None

    # -- frames -------------------------------------------------------------------------------

    def on_frame(self, msg) -> None:
        receipt, received = self.get_clock().now(), time.monotonic()
        with self.lock:
            self.stats.received += 1
            self.stats.window_received += 1
            self.stats.last_frame = received
            if self.pending is not None:
                self.stats.dropped += 1
            self.pending = (msg, receipt, received)
            self.wake.notify()

    def on_hri_image(self, replaced: bool) -> None:
        """A ROS4HRI face image arrived (detector hri): wake the worker for the batch of newest faces."""
        with self.lock:
            self.stats.received += 1
            self.stats.window_received += 1
            self.stats.last_frame = time.monotonic()
            self.stats.dropped += replaced
            self.pending = (HRI_BATCH, self.get_clock().now(), time.monotonic())
            self.wake.notify()

    def next_frame(self):
        """Block until a frame is waiting (honouring max_rate); None when the worker must stop."""
        with self.lock:
            while self.running and self.pending is None:
                self.wake.wait(timeout=0.5)
            if not self.running:
                return None
            wait = self.limiter.wait(self.param("max_rate"))
            if wait > 0:
                self.wake.wait_for(lambda: not self.running, timeout=wait)
                if not self.running:
                    return None
            frame, self.pending = self.pending, None
            pipeline, self.next_pipeline = self.next_pipeline, None
        if pipeline is not None:  # built and checked when the change was accepted
            previous, self.pipeline = self.pipeline, pipeline
            previous.close()
        return (*frame, self.limiter.start())

    @property
    def hri_mode(self) -> bool:
        return self.param("detector") == "hri"

    def pipeline_options(self, changed: dict | None = None) -> PipelineOptions:
        """The pipeline's options the parameters describe; with detector hri the crops come from the
        ROS4HRI detector, so the pipeline's own detector is `none` (only its engine and smoothing run)."""
        options = self.options(PipelineOptions, changed)
        if options.detector == "hri":
            if optional_msgs("hri_msgs") is None:
                raise ValueError("detector hri needs hri_msgs (a ROS 2 install's ros-<distro>-hri-msgs)")
            options = dataclasses.replace(options, detector="none")
        return options

    def make_pipeline(self) -> Pipeline:
        return Pipeline(self.engine, self.pipeline_options())

    def work(self) -> None:
        while True:
            frame = self.next_frame()
            if frame is None:
                return
            try:
                self.process_frame(*frame)
            except FrameError as err:
                with self.lock:
                    self.stats.count_bad()
                self.get_logger().warning(f"dropped a frame: {err}", throttle_duration_sec=5.0)
            except Exception as err:  # a bug or a backend failure must not stop the stream
                with self.lock:
                    self.stats.count_bad()
                self.get_logger().error(f"dropped a frame: {type(err).__name__}: {err}",
                                        throttle_duration_sec=5.0)

    def too_old(self, stamp: int) -> bool:
        """With max_age_ms, a frame whose result would come too late is dropped and counted (not
        while the node's clock has not started: there is no age to measure)."""
        max_age = self.param("max_age_ms")
        now = self.get_clock().now().nanoseconds
        if max_age > 0 and now > 0 and (now - stamp) * 1e-6 > max_age:
            with self.lock:
                self.stats.count_stale()
            return True
        return False

    def process_frame(self, msg, receipt, received: float, started: float) -> None:
        """One frame through the pipeline; `received` and `started` are monotonic seconds (callback,
        worker), `receipt` the node clock's time of the callback."""
        if msg is HRI_BATCH:
            self.process_hri_faces(started)
            return
        stamp = stamp_ns(msg.header)
        if self.too_old(stamp):  # already too old to be worth the work
            return
        rgb = message_to_rgb(msg, self.param("max_pixels"))
        decoded = time.monotonic()
        # Under use_sim_time before /clock runs the node's clock reads 0: faces then age on the
        # steady clock, and the latency (a difference of stamps on that clock) is unknown: NaN.
        clock_started = receipt.nanoseconds > 0
        result = self.pipeline.process(rgb, now=receipt.nanoseconds * 1e-9 if clock_started else received)
        if self.too_old(stamp):  # the work took too long: a late answer is worse than none
            return
        now = self.get_clock().now().nanoseconds
        latency = (now - stamp) * 1e-6 if clock_started and now > 0 else float("nan")
        processing = (time.monotonic() - received) * 1e3  # the node's own work, whatever the ROS clock
        publishing = time.monotonic()
        array, faces = emotion_messages(result, msg.header, self.pipeline.labels, self.engine.model_id,
                                        self.message_classes, latency, processing)
        self.emotions_pub.publish(array)
        if faces:
            self.emotion_pub.publish(faces[0])
        self.outputs.publish(result, msg.header, (rgb.shape[1], rgb.shape[0]),
                             [t.face_id for t in self.pipeline.tracker.tracks])
        if self.timing_pub.get_subscription_count() > 0:
            self.timing_pub.publish(FrameTiming(
                header=msg.header,
                transport_ms=(receipt.nanoseconds - stamp) * 1e-6 if clock_started else float("nan"),
                queue_ms=(started - received) * 1e3, decode_ms=(decoded - started) * 1e3,
                detect_ms=result.detect_ms, classify_ms=result.classify_ms,
                publish_ms=(time.monotonic() - publishing) * 1e3, total_ms=latency, faces=len(result.faces),
                full_search=result.detected))
        with self.lock:
            self.stats.processed += 1
            self.stats.window_processed += 1
            if latency == latency:  # not NaN
                self.stats.latency_ms.append(latency)
            self.stats.detect_ms.append(result.detect_ms)
            self.stats.classify_ms.append(result.classify_ms)
        if self.param("publish_debug_image"):
            self.publish_debug_image(msg.header, rgb, result)

    def process_hri_faces(self, started: float) -> None:
        """detector hri: the newest image of every ROS4HRI face, classified in one batch."""
        faces, crops = [], []
        for face, (msg, receipt, _) in sorted(self.hri_faces.take().items()):
            try:
                crops.append(message_to_rgb(msg))
                faces.append((face, msg, receipt))
            except FrameError as err:
                with self.lock:
                    self.stats.count_bad()
                self.get_logger().warning(f"dropped the image of face {face}: {err}", throttle_duration_sec=5.0)
        if not crops:
            return
        t0 = time.perf_counter()
        probs = self.engine.predict(crops)
        classify_ms = (time.perf_counter() - t0) * 1e3
        out = []
        for (face, msg, receipt), crop, p in zip(faces, crops, probs):
            track = self.hri_tracks.setdefault(face, Track(face_id=self.hri_faces.numbers.get(face, 0), box=(0, 0, 0, 0),
                                                             last_seen=0.0))
            result = self.pipeline.result((0, 0, crop.shape[1], crop.shape[0]), track, p)
            now = self.get_clock().now()
            _, (stamped,) = emotion_messages(FrameResult(faces=[result], detected=False, classify_ms=classify_ms),
                                             msg.header, self.pipeline.labels, self.engine.model_id,
                                             self.message_classes, (now.nanoseconds - stamp_ns(msg.header)) * 1e-6,
                                             (now - receipt).nanoseconds * 1e-6)
            self.emotion_pub.publish(stamped)
            out.append(stamped)
            name, pub = HRI_EXPRESSIONS.get(result.label), self.hri_faces.publisher(face)
            if name is not None and pub is not None:
                hri = self.hri_faces.hri
                pub.publish(hri.Expression(header=msg.header, expression=getattr(hri.Expression, name),
                                           confidence=float(result.confidence)))
        self.emotions_pub.publish(self.message_classes.array(header=max((f.header for f in out),
                                                                        key=stamp_ns), faces=out))
        with self.lock:
            self.stats.processed += 1
            self.stats.window_processed += 1
            self.stats.latency_ms.extend(f.latency_ms for f in out)
            self.stats.classify_ms.append(classify_ms)

    def publish_debug_image(self, header, rgb: np.ndarray, result) -> None:
        """Boxes and labels drawn on the frame, raw and JPEG: each only while someone subscribes."""
        want_raw = self.debug_pub.get_subscription_count() > 0
        want_jpeg = self.debug_jpeg_pub.get_subscription_count() > 0
        if not (want_raw or want_jpeg):
            return
        with self.lock:
            self.stats.debug_images += 1
        canvas = rgb.copy()
        for face in result.faces:
            x, y, w, h = face.box
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
            text = f"#{face.face_id} {face.label} {face.confidence:.2f}"
            cv2.putText(canvas, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        if want_raw:
            out = fill_image(Image(), canvas, "rgb8")
            out.header = header
            self.debug_pub.publish(out)
        if want_jpeg:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            if ok:
                self.debug_jpeg_pub.publish(CompressedImage(header=header, format="jpeg", data=data.tobytes()))

    # -- diagnostics --------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        node = self.options(NodeOptions)
        matched = sum(sub.get_publisher_count() for sub in self.subscriptions_)
        clock_started = self.get_clock().now().nanoseconds > 0
        transport = f"this node: qos_reliability {node.qos_reliability}, Fast DDS profile {active_profile()}"
        with self.lock:
            s = self.stats
            now = time.monotonic()
            elapsed = max(now - s.window_start, 1e-6)
            input_rate, processed_rate = s.window_received / elapsed, s.window_processed / elapsed
            health = Health(configure_error=self.configure_error, active=self.running,
                            seconds_since_frame=None if s.last_frame is None else now - s.last_frame,
                            processed_rate=processed_rate, full_period=elapsed >= 0.9 * node.diagnostics_period,
                            latency_p95_ms=percentile(s.latency_ms, 95), latency_samples=len(s.latency_ms),
                            bad_frames=s.window_bad, stale_frames=s.window_stale, clock_started=clock_started,
                            matched_publishers=matched, transport=transport)
            values = {
                "node": self.get_fully_qualified_name(),
                "input_rate_hz": f"{input_rate:.1f}", "processed_rate_hz": f"{processed_rate:.1f}",
                "frames_received": str(s.received), "frames_processed": str(s.processed),
                "frames_dropped": str(s.dropped), "frames_bad": str(s.bad), "frames_stale": str(s.stale),
                "clock": "started" if clock_started else "not started (latency and max_age_ms skipped)",
                "debug_images": str(s.debug_images),
                "latency_p50_ms": f"{percentile(s.latency_ms, 50):.1f}",
                "latency_p95_ms": f"{health.latency_p95_ms:.1f}",
                "detect_p50_ms": f"{percentile(s.detect_ms, 50):.1f}",
                "classify_p50_ms": f"{percentile(s.classify_ms, 50):.1f}",
                # Matched on the writer's side: a result published before a new subscriber is
                # matched here is not delivered to it (volatile topics).
                "emotions_subscribers": str(self.emotions_pub.get_subscription_count() if self.emotions_pub else 0),
                "emotion_subscribers": str(self.emotion_pub.get_subscription_count() if self.emotion_pub else 0),
            }
            s.window_start, s.window_received, s.window_processed, s.window_bad, s.window_stale = now, 0, 0, 0, 0
        engine, pipeline = self.engine, self.pipeline
        if engine is not None:
            values.update(device=engine.device, backend=engine.backend, model=engine.model_id)
        if pipeline is not None:
            values.update(detector=pipeline.detector_name, face_crop=pipeline.options.face_crop)
        if hint := silent_publishers(health, node.stale_after):
            self.get_logger().warning(hint, throttle_duration_sec=10.0)
        msg = DiagnosticArray(status=[status(self.get_fully_qualified_name(), health, values, values.get("device", ""),
                                             node.stale_after, node.expected_rate, node.max_latency_ms)])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args=None) -> int:
    tune_allocator()
    # Signals only set a flag: the loop below then cleans up, and a second signal cannot cut it short.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = FerNode()
    except (InvalidParameterTypeException, InvalidParameterValueException) as err:
        # A bad value on the command line or in a params file: one line, not a traceback.
        print(f"fer_node: {one_line(err)}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.param("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        while code == 0 and not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.stop_worker()
        node.release_engine()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        # Cleanup is done; only exiting remains. rclpy's shutdown "uninstalls" its signal handlers even
        # when none were installed, and Python's own finalisation puts Python-level handlers back to
        # the default action, so a late second Ctrl-C would kill the process (exit -2). Ignoring at
        # the OS level survives both.
        rclpy.try_shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
