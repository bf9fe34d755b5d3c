"""fer_node: camera frames in, EmotionArray / EmotionStamped out.

A thin lifecycle adapter around `fer_ros.inference.pipeline`: configure loads the checkpoint, activate
subscribes, deactivate unsubscribes, cleanup frees the model (and the GPU). With `autostart`
(the default) the node configures and activates itself.

Frames are handed from the subscription callback to one worker thread through a one-slot
mailbox: a newer frame replaces a waiting one (counted as dropped), so a slow model never
builds a backlog and the newest frame is always the next one processed.
"""

import sys
import threading
import time
from collections import deque

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.errors import FrameError
from fer_ros.inference.engine import Engine, EngineOptions
from fer_ros.inference.pipeline import Pipeline, PipelineOptions
from fer_ros.metrics import percentile
from fer_ros.msg import EmotionArray, EmotionStamped
from fer_ros.options import from_params
from fer_ros.ros.dds import tune_allocator
from fer_ros.ros.images import fill_image, message_to_rgb
from fer_ros.ros.messages import emotion_messages, rclpy_classes, stamp_ns
from fer_ros.ros.params import PARAMS, descriptor


class Stats:
    """Counters and recent timings for /diagnostics; guarded by the node's lock."""

    def __init__(self):
        self.received = self.processed = self.dropped = self.bad = 0
        self.latency_ms = deque(maxlen=300)
        self.detect_ms = deque(maxlen=300)
        self.classify_ms = deque(maxlen=300)
        self.window_start = time.monotonic()
        self.window_received = self.window_processed = self.window_bad = 0


class FerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("fer_node", **kwargs)
        for name, spec in PARAMS.items():
            self.declare_parameter(name, spec.default, descriptor(spec))
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._parameters_changed)
        self.engine = None
        self.pipeline = None
        self.subscriptions_ = []
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.pending = None  # (msg, receipt time) waiting for the worker
        self.worker = None
        self.running = False
        self.settings_changed = False
        self.stats = Stats()
        self.message_classes = rclpy_classes()
        self.emotions_pub = self.emotion_pub = self.debug_pub = self.diag_pub = None
        self.diag_timer = None

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
            if p.name == "detector" and p.value == "yunet" and configured and \
                    not (self.param("yunet_model") or any(q.name == "yunet_model" and q.value for q in params)):
                return SetParametersResult(successful=False, reason="detector yunet needs yunet_model set first")
        return SetParametersResult(successful=True)

    def _parameters_changed(self, params) -> None:
        with self.lock:
            self.settings_changed = True

    def options(self, cls):
        """The node's parameters as one of the options dataclasses (same names, no mapping)."""
        return from_params(cls, {name: self.param(name) for name in PARAMS})

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.engine = Engine.from_options(self.options(EngineOptions), warn=self.get_logger().warning)
            self.pipeline = Pipeline(self.engine, self.options(PipelineOptions))
            self.engine.warmup()
        except Exception as err:  # one clear line, not a traceback: this is a user's setting
            self.get_logger().error(f"configure failed: {err}")
            self.release_engine()
            return TransitionCallbackReturn.FAILURE
        self.emotions_pub = self.create_publisher(EmotionArray, "emotions", 10)
        self.emotion_pub = self.create_publisher(EmotionStamped, "emotion", 10)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", qos_profile_sensor_data)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer = self.create_timer(self.param("diagnostics_period"), self.publish_diagnostics)
        self.get_logger().info(f"loaded {self.engine.model_id} on {self.engine.device} "
                               f"({self.engine.backend}); labels: {', '.join(self.engine.labels)}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = QoSProfile(depth=self.param("qos_depth"), history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.BEST_EFFORT if self.param("qos_reliability") ==
                         "best_effort" else ReliabilityPolicy.RELIABLE)
        self.subscriptions_ = [self.create_subscription(Image, "image", self.on_frame, qos)]
        if self.param("use_compressed"):
            self.subscriptions_.append(
                self.create_subscription(CompressedImage, "image/compressed", self.on_frame, qos))
        self.running = True
        self.worker = threading.Thread(target=self.work, name="fer_worker", daemon=True)
        self.worker.start()
        topics = ", ".join(s.topic_name for s in self.subscriptions_)
        self.get_logger().info(f"listening on {topics}; publishing {self.emotions_pub.topic_name} and "
                               f"{self.emotion_pub.topic_name}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        for sub in self.subscriptions_:
            self.destroy_subscription(sub)
        self.subscriptions_ = []
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_engine()
        for pub in (self.emotions_pub, self.emotion_pub, self.debug_pub, self.diag_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        if self.diag_timer is not None:
            self.destroy_timer(self.diag_timer)
        self.emotions_pub = self.emotion_pub = self.debug_pub = self.diag_pub = self.diag_timer = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_worker()
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS

    def release_engine(self) -> None:
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
        receipt = self.get_clock().now()
        with self.lock:
            self.stats.received += 1
            self.stats.window_received += 1
            if self.pending is not None:
                self.stats.dropped += 1
            self.pending = (msg, receipt)
            self.wake.notify()

    def next_frame(self):
        """Block until a frame is waiting (honouring max_rate); None when the worker must stop."""
        with self.lock:
            while self.running and self.pending is None:
                self.wake.wait(timeout=0.5)
            if not self.running:
                return None
            max_rate = self.param("max_rate")
            if max_rate > 0:
                wait = self.last_start + 1.0 / max_rate - time.monotonic()
                if wait > 0:
                    self.wake.wait_for(lambda: not self.running, timeout=wait)
                    if not self.running:
                        return None
            frame, self.pending = self.pending, None
            changed, self.settings_changed = self.settings_changed, False
        if changed:
            self.apply_settings()
        self.last_start = time.monotonic()
        return frame

    def apply_settings(self) -> None:
        try:
            self.pipeline = Pipeline(self.engine, self.options(PipelineOptions))
        except (ValueError, RuntimeError) as err:
            self.get_logger().error(f"keeping the previous pipeline: {err}")

    def work(self) -> None:
        self.last_start = 0.0
        while True:
            frame = self.next_frame()
            if frame is None:
                return
            msg, receipt = frame
            try:
                self.process_frame(msg, receipt)
            except FrameError as err:
                with self.lock:
                    self.stats.bad += 1
                    self.stats.window_bad += 1
                self.get_logger().warning(f"dropped a frame: {err}", throttle_duration_sec=5.0)
            except Exception as err:  # a bug or a backend failure must not stop the stream
                with self.lock:
                    self.stats.bad += 1
                    self.stats.window_bad += 1
                self.get_logger().error(f"dropped a frame: {type(err).__name__}: {err}",
                                        throttle_duration_sec=5.0)

    def process_frame(self, msg, receipt) -> None:
        rgb = message_to_rgb(msg)
        result = self.pipeline.process(rgb, now=receipt.nanoseconds * 1e-9)
        now = self.get_clock().now()
        latency = (now.nanoseconds - stamp_ns(msg.header)) * 1e-6
        processing = (now - receipt).nanoseconds * 1e-6
        array, faces = emotion_messages(result, msg.header, self.pipeline.labels, self.engine.model_id,
                                        self.message_classes, latency, processing)
        self.emotions_pub.publish(array)
        if faces:
            self.emotion_pub.publish(faces[0])
        with self.lock:
            self.stats.processed += 1
            self.stats.window_processed += 1
            self.stats.latency_ms.append(latency)
            self.stats.detect_ms.append(result.detect_ms)
            self.stats.classify_ms.append(result.classify_ms)
        if self.param("publish_debug_image") and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(self.debug_image(msg.header, rgb, result))

    def debug_image(self, header, rgb: np.ndarray, result) -> Image:
        canvas = rgb.copy()
        for face in result.faces:
            x, y, w, h = face.box
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
            text = f"#{face.face_id} {face.label} {face.confidence:.2f}"
            cv2.putText(canvas, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        out = fill_image(Image(), canvas, "rgb8")
        out.header = header
        return out

    # -- diagnostics --------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        with self.lock:
            s = self.stats
            elapsed = max(time.monotonic() - s.window_start, 1e-6)
            input_rate, processed_rate = s.window_received / elapsed, s.window_processed / elapsed
            recent_bad = s.window_bad
            values = {
                "input_rate_hz": f"{input_rate:.1f}", "processed_rate_hz": f"{processed_rate:.1f}",
                "frames_received": str(s.received), "frames_processed": str(s.processed),
                "frames_dropped": str(s.dropped), "frames_bad": str(s.bad),
                "latency_p50_ms": f"{percentile(s.latency_ms, 50):.1f}",
                "latency_p95_ms": f"{percentile(s.latency_ms, 95):.1f}",
                "detect_p50_ms": f"{percentile(s.detect_ms, 50):.1f}",
                "classify_p50_ms": f"{percentile(s.classify_ms, 50):.1f}",
            }
            s.window_start, s.window_received, s.window_processed, s.window_bad = time.monotonic(), 0, 0, 0
        engine = self.engine
        if engine is not None:
            values.update(device=engine.device, backend=engine.backend, model=engine.model_id)
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: emotion recognition",
                                  hardware_id=values.get("device", ""))
        if not self.running:
            status.level, status.message = DiagnosticStatus.WARN, "inactive"
        elif recent_bad:
            status.level, status.message = DiagnosticStatus.WARN, f"{recent_bad} malformed frames dropped"
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args=None) -> int:
    tune_allocator()
    rclpy.init(args=args)
    node = FerNode()
    code = 0
    try:
        if node.param("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                code = 1
        if code == 0:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop_worker()
        node.release_engine()
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
