"""fer_node: camera frames in, EmotionArray / EmotionStamped out (plus vision_msgs and ROS4HRI).

ROS wiring only. Configure builds the engine and pipeline (`fer_ros.inference.load`) and the
publishers (`ros/publishing.py`); activate subscribes and starts the worker thread; deactivate
stops it and unsubscribes; cleanup frees the model. `autostart` (the default) does the first two.

A frame, top to bottom: the subscription callback parks it in the frame stream's mailbox
(`fer_ros.inference.stream`, no ROS; `qos_depth` frames); the worker decodes it, the stream runs
and times the pipeline, the worker publishes. Failures are worded by `ros/failures.py` (the debug
switch); /diagnostics by `ros/diagnostics.py`; signals and exit codes by `ros/process.py`.
"""

import gc
import sys
import threading

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.errors import FrameError, one_line
from fer_ros.inference.engine import EngineOptions
from fer_ros.inference.load import build_pipeline
from fer_ros.inference.pipeline import Pipeline, PipelineOptions, check_detector
from fer_ros.inference.stream import FrameStream
from fer_ros.options import from_params, specs
from fer_ros.ros.diagnostics import Reporter
from fer_ros.ros.failures import described, summary
from fer_ros.ros.hri_input import HriFaces
from fer_ros.ros.images import message_to_rgb
from fer_ros.ros.messages import stamp_ns
from fer_ros.ros.node_params import declare_all, image_qos, pipeline_options, refusal
from fer_ros.ros.params import PARAMS, NodeOptions, as_declared
from fer_ros.ros.process import run
from fer_ros.ros.publishing import Outputs
from fer_ros.ros.standard import optional_msgs

PIPELINE_PARAMS = {spec.name for spec in specs(PipelineOptions)}  # a change rebuilds the pipeline
# The mailbox's item when the faces come from a ROS4HRI detector (detector hri).
HRI_BATCH = object()
THROTTLE_S = 5.0


class FerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("fer_node", **kwargs)
        declare_all(self)
        if hasattr(self, "add_pre_set_parameters_callback"):  # rclpy of Iron and later
            self.add_pre_set_parameters_callback(lambda params: [as_declared(p) for p in params])
        self.add_on_set_parameters_callback(self.check_parameters)
        self.engine = self.outputs = self.hri_faces = self.worker = None
        self.subscriptions_ = []
        self.hri_tracks: dict = {}  # detector hri: ROS4HRI id -> smoothing state
        self.stream = FrameStream(now_ns=self.now_ns)
        self.configure_error = ""
        self.diagnostics = Reporter(self, self.param("diagnostics_period"))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # -- parameters ---------------------------------------------------------------------------

    def param(self, name: str):
        return self.get_parameter(name).value

    def values(self, changed: dict | None = None) -> dict:
        return {name: self.param(name) for name in PARAMS} | (changed or {})

    def options(self, cls):  # the options dataclasses take the parameters by their own names
        return from_params(cls, self.values())

    @property
    def hri_mode(self) -> bool:
        return self.param("detector") == "hri"

    def check_parameters(self, params) -> SetParametersResult:
        """A change is checked by building what it needs (a new pipeline, which the worker swaps
        in at its next frame): what cannot be applied is refused with the reason, so the node
        always runs what `param get` says."""
        if reason := refusal(params, self.engine is not None, self.hri_mode):
            return SetParametersResult(successful=False, reason=reason)
        changed = {p.name: p.value for p in params}
        if changed.keys() & PIPELINE_PARAMS:
            try:
                options = pipeline_options(self.values(changed))
                if self.engine is None:  # configure builds it: only the detector is checked
                    check_detector(options)
                else:
                    self.stream.replace_pipeline(Pipeline(self.engine, options))
            except Exception as err:  # refused: the node keeps what it runs
                reason = f"{', '.join(changed)} not applied: {one_line(err)}"
                return SetParametersResult(successful=False, reason=reason)
        if "diagnostics_period" in changed:  # the timer exists from construction: restart it
            self.diagnostics.restart(changed["diagnostics_period"])
        return SetParametersResult(successful=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log, node = self.get_logger(), self.options(NodeOptions)
        try:
            pipeline = pipeline_options(self.values())
            self.engine, self.stream.pipeline = build_pipeline(
                self.options(EngineOptions), pipeline, node.detect_threads, log.warning, log.info
            )
            # With detector hri the face detector owns /humans/faces/tracked and the rois.
            hri = node.hri and not self.hri_mode
            threshold = self.param("confidence_threshold")
            self.outputs = Outputs(self, self.engine, threshold, node.publish_detections, hri)
        except Exception as err:  # reported; the node stays up and says why
            # A user's error (FerRosError) is one clear line; a bug logs its traceback too.
            self.configure_error = summary(err)
            log.error(described("configure failed", err, always=True))
            self.release_engine()
            self.diagnostics.publish()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = ""
        # What exists now (the model, the ROS objects) lives until cleanup: the garbage collector
        # need not walk it again on every collection of what the frames allocate.
        gc.collect()
        gc.freeze()
        engine, labels = self.engine, ", ".join(self.engine.labels)
        where = f"{engine.device} ({engine.backend})"
        log.info(f"loaded {engine.model_id} on {where}; labels: {labels}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        node = self.options(NodeOptions)
        qos = image_qos(node)
        if self.hri_mode:
            given = (node.hri_face_image, qos, self.on_face_image, node.hri_max_faces)
            self.hri_faces = HriFaces(self, optional_msgs("hri_msgs"), *given)
            self.subscriptions_ = [self.hri_faces.tracked]
        else:
            compressed = node.image_transport == "compressed"
            kind, topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
            self.subscriptions_ = [self.create_subscription(kind, topic, self.on_frame, qos)]
        self.stream.start(1 if self.hri_mode else node.qos_depth)  # one ROS4HRI batch answers all
        self.worker = threading.Thread(target=self.work, name="fer_worker", daemon=True)
        self.worker.start()
        topics = ", ".join(s.topic_name for s in self.subscriptions_)
        self.get_logger().info(f"listening on {topics}; publishing {self.outputs.topics()}")
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
        self.outputs = None
        self.stream.close_pipelines()
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        # What configure froze is collectable again: frozen, the objects holding the DDS
        # participant were never finalized, and each exit leaked its shared-memory segment.
        gc.unfreeze()

    def stop_worker(self) -> None:
        """Close the mailbox and wait for the worker to finish its frame."""
        self.stream.stop()
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.join(10.0)

    # -- frames -------------------------------------------------------------------------------

    def on_frame(self, msg) -> None:
        """The subscription callback: park the frame for the worker."""
        self.stream.put(msg, self.now_ns())

    def on_face_image(self, replaced: bool) -> None:
        """detector hri: a face image arrived; one batch answers every face that has one."""
        self.stream.put(HRI_BATCH, self.now_ns(), int(replaced))

    def work(self) -> None:
        """The worker thread, until the mailbox closes: each waiting frame, answered. A frame that
        fails is counted bad and logged (each kind throttled on its own), and the next is taken."""
        while (frame := self.stream.take(self.param("max_rate"))) is not None:
            try:
                self.answer_faces() if frame.item is HRI_BATCH else self.answer(frame)
            except FrameError as err:  # malformed: the sender's doing
                self.stream.count("bad")
                self.get_logger().warning(
                    described("dropped a frame", err), throttle_duration_sec=THROTTLE_S
                )
            except Exception as err:  # a bug or a backend failure: never the end
                self.stream.count("bad")
                self.get_logger().error(
                    described("dropped a frame", err), throttle_duration_sec=THROTTLE_S
                )

    def answer(self, frame) -> None:
        """One camera frame: decoded, classified, published; dropped when it is too old."""
        header, max_age_ms = frame.item.header, self.param("max_age_ms")
        if self.stream.too_old(stamp_ns(header), self.now_ns(), max_age_ms):
            return
        rgb = message_to_rgb(frame.item, self.param("max_pixels"))
        answered = self.stream.classify(frame, rgb, stamp_ns(header), max_age_ms)
        if answered is None:  # too old once classified: a late answer is worse than none
            return
        result, timing = answered
        tracked = [t.face_id for t in self.stream.pipeline.tracker.tracks]
        self.outputs.publish(header, rgb, result, timing, tracked)
        self.stream.count_answered(timing)
        self.outputs.publish_timing(header, timing)
        if self.param("publish_debug_image"):
            if self.outputs.publish_debug_image(header, rgb, result):
                self.stream.count("debug_images")

    def answer_faces(self) -> None:
        """detector hri: the newest image of every ROS4HRI face, classified in one batch."""
        pipeline, classes = self.stream.pipeline, self.outputs.classes
        faces, classify_ms = self.hri_faces.answer(
            pipeline, self.hri_tracks, self.engine.model_id, classes, self.face_image_dropped
        )
        if faces:
            self.outputs.publish_faces(faces)
            self.stream.count_processed([f.latency_ms for f in faces], classify_ms)

    def face_image_dropped(self, face: str, err: Exception) -> None:
        self.stream.count("bad")
        message = described(f"dropped the image of face {face}", err)
        self.get_logger().warning(message, throttle_duration_sec=THROTTLE_S)


def main(args=None) -> int:
    return run(FerNode, args)


if __name__ == "__main__":
    sys.exit(main())
