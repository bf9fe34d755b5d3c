"""fer_node's outputs: the publishers configure creates and cleanup withdraws, and how one
answered frame becomes messages on them.

Every message copies the frame's header. The results (`emotions`, `emotion`, vision_msgs and
ROS4HRI) go out first, timed as `publish_ms`; then, only while someone subscribes, `~/timing`
and the debug image.
"""

import time

import cv2
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.inference.stream import draw_results
from fer_ros.msg import EmotionArray, EmotionStamped, FrameTiming
from fer_ros.ros.images import fill_image
from fer_ros.ros.messages import emotion_messages, rclpy_classes, stamp_ns
from fer_ros.ros.standard import StandardOutputs

TIMING_FIELDS = (
    "transport_ms",
    "queue_ms",
    "decode_ms",
    "detect_ms",
    "classify_ms",
    "publish_ms",
    "total_ms",
    "faces",
    "full_search",
)


class Outputs:
    """The publishers of one configured engine. `detections` and `hri` ask for the vision_msgs and
    the ROS4HRI outputs (published when those messages are installed)."""

    def __init__(self, node, engine, threshold: float, detections: bool, hri: bool):
        self.node, self.labels, self.model_id = node, list(engine.labels), engine.model_id
        self.classes = rclpy_classes()
        self.emotions = node.create_publisher(EmotionArray, "emotions", 10)
        self.emotion = node.create_publisher(EmotionStamped, "emotion", 10)
        self.debug = node.create_publisher(Image, "~/debug_image", qos_profile_sensor_data)
        self.debug_jpeg = node.create_publisher(
            CompressedImage, "~/debug_image/compressed", qos_profile_sensor_data
        )
        self.timing = node.create_publisher(FrameTiming, "~/timing", 100)
        self.standard = StandardOutputs(node, self.labels, threshold, detections, hri)

    def publish(self, header, rgb, result, timing, tracked_ids) -> None:
        """A frame's results: the EmotionArray, the largest face's EmotionStamped and the
        standard topics; `timing.publish_ms` is set to what that took."""
        started = time.monotonic()
        array, faces = emotion_messages(
            result,
            header,
            self.labels,
            self.model_id,
            self.classes,
            timing.total_ms,
            timing.processing_ms,
        )
        self.emotions.publish(array)
        if faces:
            self.emotion.publish(faces[0])
        self.standard.publish(result, header, (rgb.shape[1], rgb.shape[0]), tracked_ids)
        timing.publish_ms = (time.monotonic() - started) * 1e3

    def publish_faces(self, faces) -> None:
        """detector hri: each face's EmotionStamped (header of its own image) and one EmotionArray
        of them all, with the newest header."""
        for stamped in faces:
            self.emotion.publish(stamped)
        newest = max((f.header for f in faces), key=stamp_ns)
        self.emotions.publish(self.classes.array(header=newest, faces=faces))

    def publish_timing(self, header, timing) -> None:
        if self.timing.get_subscription_count() > 0:
            fields = {k: getattr(timing, k) for k in TIMING_FIELDS}
            self.timing.publish(FrameTiming(header=header, **fields))

    def publish_debug_image(self, header, rgb, result) -> bool:
        """Boxes and labels drawn on the frame, raw and JPEG, each only while someone subscribes;
        True when it was drawn."""
        want_raw = self.debug.get_subscription_count() > 0
        want_jpeg = self.debug_jpeg.get_subscription_count() > 0
        if not (want_raw or want_jpeg):
            return False
        canvas = draw_results(rgb, result.faces)
        if want_raw:
            out = fill_image(Image(), canvas, "rgb8")
            out.header = header
            self.debug.publish(out)
        if want_jpeg:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            if ok:
                self.debug_jpeg.publish(
                    CompressedImage(header=header, format="jpeg", data=data.tobytes())
                )
        return True

    def topics(self) -> str:
        return f"{self.emotions.topic_name} and {self.emotion.topic_name}"

    def subscribers(self) -> dict[str, str]:
        """Subscribers matched on the writers' side, for /diagnostics: a result published before
        a new subscriber is matched here is not delivered to it (volatile topics)."""
        return {
            "emotions_subscribers": str(self.emotions.get_subscription_count()),
            "emotion_subscribers": str(self.emotion.get_subscription_count()),
        }

    def close(self) -> None:
        self.standard.close()
        for pub in (self.emotions, self.emotion, self.debug, self.debug_jpeg, self.timing):
            self.node.destroy_publisher(pub)
