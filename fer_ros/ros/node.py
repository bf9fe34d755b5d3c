"""fer_node: camera frames in, EmotionArray / EmotionStamped out (plus vision_msgs and ROS4HRI).

A thin lifecycle adapter: configure builds the engine and pipeline (`fer_ros.inference.load`),
activate subscribes, deactivate unsubscribes, cleanup frees the model (and the GPU). With
`autostart` (the default) the node configures and activates itself. The subscription callback parks
each frame in a `fer_ros.inference.stream.FrameStream`, which owns the one-slot mailbox, the rate
and age limits, the timing and the statistics; one worker thread takes the newest frame from it.

Shutdown: SIGINT and SIGTERM only set a flag; the main loop then stops the worker and frees the
engine. A second signal while that runs (a terminal's Ctrl-C reaches both `ros2 launch` and the
node, and launch forwards its own) changes nothing, so cleanup always completes with exit code 0.
"""

import dataclasses
import gc
import signal
import sys
import threading

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.errors import one_line
from fer_ros.inference.engine import EngineOptions
from fer_ros.inference.load import build_pipeline
from fer_ros.inference.pipeline import Pipeline, PipelineOptions, check_detector
from fer_ros.inference.stream import FrameStream, draw_results
from fer_ros.msg import EmotionArray, EmotionStamped, FrameTiming
from fer_ros.options import from_params, specs
from fer_ros.ros.dds import active_profile, tune_allocator
from fer_ros.ros.diagnostics import Health, silent_publishers, status
from fer_ros.ros.hri_input import HriFaces
from fer_ros.ros.images import fill_image, message_to_rgb
from fer_ros.ros.messages import emotion_messages, rclpy_classes, stamp_ns
from fer_ros.ros.params import PARAMS, NodeOptions, as_declared, descriptor
from fer_ros.ros.standard import StandardOutputs, optional_msgs


PIPELINE_PARAMS = {spec.name for spec in specs(PipelineOptions)}  # a change rebuilds the pipeline
HRI_BATCH = object()  # the mailbox's message when the faces come from a ROS4HRI detector (detector hri)
TIMING_FIELDS = ("transport_ms", "queue_ms", "decode_ms", "detect_ms", "classify_ms", "publish_ms", "total_ms",
                 "faces", "full_search")


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
        self.engine = self.outputs = self.hri_faces = None  # hri_faces: detector hri's input
        self.subscriptions_ = []
        self.hri_tracks: dict = {}  # detector hri: ROS4HRI id -> smoothing state
        self.stream = FrameStream()
        self.configure_error = ""
        self.message_classes = rclpy_classes()
        self.emotions_pub = self.emotion_pub = self.debug_pub = self.debug_jpeg_pub = self.timing_pub = None
        # Diagnostics from the start: a node that cannot configure says why on /diagnostics.
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.diag_timer = self.diagnostics_timer(self.param("diagnostics_period"))

    def diagnostics_timer(self, period: float):
        """On the steady clock: a timer on the node's clock stands still under use_sim_time until
        /clock runs, and diagnostics are what must say that it does not."""
        return self.create_timer(period, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def pipeline(self) -> Pipeline | None:
        return self.stream.pipeline

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
            if p.name == "detector" and configured and (p.value == "hri") != self.hri_mode:
                return SetParametersResult(successful=False, reason="detector hri (or leaving it) applies at "
                                           "configure: deactivate and clean up the node, then set it")
        if any(p.name in PIPELINE_PARAMS for p in params):
            try:  # built (and checked) now; when configured, the worker swaps it in at its next frame
                options = self.pipeline_options({p.name: p.value for p in params})
                if self.engine is None:  # configure builds it: only the detector is checked
                    check_detector(options)
                else:
                    self.stream.replace_pipeline(Pipeline(self.engine, options))
            except Exception as err:  # the change cannot work: refused, the node keeps what it runs
                names = ", ".join(p.name for p in params)
                return SetParametersResult(successful=False, reason=f"{names} not applied: {one_line(err)}")
        for p in params:
            if p.name == "diagnostics_period":  # the timer exists from construction: restart it
                self.destroy_timer(self.diag_timer)
                self.diag_timer = self.diagnostics_timer(p.value)
        return SetParametersResult(successful=True)

    def options(self, cls, changed: dict | None = None):
        """The node's parameters as one of the options dataclasses (same names, no mapping), with
        `changed` values over the stored ones."""
        return from_params(cls, {name: self.param(name) for name in PARAMS} | (changed or {}))

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

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.engine, self.stream.pipeline = build_pipeline(
                self.options(EngineOptions), self.pipeline_options(), self.param("detect_threads"),
                warn=self.get_logger().warning, note=self.get_logger().info)
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
            def arrived(replaced: bool) -> None:
                self.stream.put(HRI_BATCH, self.now_ns(), int(replaced))

            self.hri_faces = HriFaces(self, optional_msgs("hri_msgs"), node.hri_face_image, qos,
                                      arrived, node.hri_max_faces)
            self.subscriptions_ = [self.hri_faces.tracked]
        elif node.image_transport == "compressed":
            self.subscriptions_ = [self.create_subscription(CompressedImage, "image/compressed", self.on_frame, qos)]
        else:
            self.subscriptions_ = [self.create_subscription(Image, "image", self.on_frame, qos)]
        self.stream.start(self.process_frame, lambda: self.param("max_rate"), self.dropped)
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
        self.stream.close_pipelines()
        if self.engine is not None:
            self.engine.close()
        self.engine = None

    def stop_worker(self) -> None:
        self.stream.stop()

    # -- frames -------------------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_frame(self, msg) -> None:
        self.stream.put(msg, self.now_ns())

    def dropped(self, text: str, bug: bool) -> None:
        (self.get_logger().error if bug else self.get_logger().warning)(text, throttle_duration_sec=5.0)

    def process_frame(self, frame) -> None:
        if frame.item is HRI_BATCH:
            self.process_hri_faces()
            return
        header = frame.item.header
        done = self.stream.process(frame, stamp_ns(header), lambda msg: message_to_rgb(msg, self.param("max_pixels")),
                                   self.now_ns, lambda rgb, result, timing: self.publish_results(header, rgb, result,
                                                                                                 timing),
                                   self.param("max_age_ms"))
        if done is None:  # too old
            return
        rgb, result, timing = done
        if self.timing_pub.get_subscription_count() > 0:
            self.timing_pub.publish(FrameTiming(header=header, **{k: getattr(timing, k) for k in TIMING_FIELDS}))
        if self.param("publish_debug_image"):
            self.publish_debug_image(header, rgb, result)

    def publish_results(self, header, rgb, result, timing) -> None:
        array, faces = emotion_messages(result, header, self.pipeline.labels, self.engine.model_id,
                                        self.message_classes, timing.total_ms, timing.processing_ms)
        self.emotions_pub.publish(array)
        if faces:
            self.emotion_pub.publish(faces[0])
        self.outputs.publish(result, header, (rgb.shape[1], rgb.shape[0]),
                             [t.face_id for t in self.pipeline.tracker.tracks])

    def process_hri_faces(self) -> None:
        """detector hri: the newest image of every ROS4HRI face, classified in one batch."""
        def dropped(face, err):
            self.stream.count("bad")
            self.get_logger().warning(f"dropped the image of face {face}: {err}", throttle_duration_sec=5.0)

        out, classify_ms = self.hri_faces.answer(self.pipeline, self.hri_tracks, self.engine.model_id,
                                                 self.message_classes, dropped)
        if not out:
            return
        for stamped in out:
            self.emotion_pub.publish(stamped)
        self.emotions_pub.publish(self.message_classes.array(header=max((f.header for f in out), key=stamp_ns),
                                                             faces=out))
        self.stream.count_processed([f.latency_ms for f in out], classify_ms)

    def publish_debug_image(self, header, rgb, result) -> None:
        """Boxes and labels drawn on the frame, raw and JPEG: each only while someone subscribes."""
        want_raw = self.debug_pub.get_subscription_count() > 0
        want_jpeg = self.debug_jpeg_pub.get_subscription_count() > 0
        if not (want_raw or want_jpeg):
            return
        self.stream.count("debug_images")
        canvas = draw_results(rgb, result.faces)
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
        clock_started = self.now_ns() > 0
        window = self.stream.close_window()
        health = Health(configure_error=self.configure_error, active=self.stream.running,
                        seconds_since_frame=window.seconds_since_frame, processed_rate=window.processed_rate,
                        full_period=window.seconds >= 0.9 * node.diagnostics_period,
                        latency_p95_ms=window.latency_p95_ms, latency_samples=window.latency_samples,
                        bad_frames=window.bad, stale_frames=window.stale, clock_started=clock_started,
                        matched_publishers=matched, transport=f"this node: qos_reliability {node.qos_reliability}, "
                                                              f"Fast DDS profile {active_profile()}")
        values = {"node": self.get_fully_qualified_name(), **window.values,
                  "clock": "started" if clock_started else "not started (latency and max_age_ms skipped)",
                  # Matched on the writer's side: a result published before a new subscriber is
                  # matched here is not delivered to it (volatile topics).
                  "emotions_subscribers": str(self.emotions_pub.get_subscription_count() if self.emotions_pub else 0),
                  "emotion_subscribers": str(self.emotion_pub.get_subscription_count() if self.emotion_pub else 0)}
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


def spin_once(executor, node) -> None:
    """One turn of the executor. A callback that raises (a peer's message that no check foresaw) is
    logged, throttled, and the node runs on: nothing from the network ends the process."""
    try:
        executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        raise
    except Exception as err:  # noqa: BLE001 - see the docstring
        node.get_logger().error(f"a callback failed, the node runs on: {type(err).__name__}: "
                                f"{one_line(err)}", throttle_duration_sec=5.0)


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
            spin_once(executor, node)
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
