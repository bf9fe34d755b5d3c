"""`detector: hri`: faces from an existing ROS4HRI face detector instead of fer_node's own.

A REP-155 face detector (e.g. ros4hri's hri_face_detect) publishes the ids of the faces it follows on
`/humans/faces/tracked` (hri_msgs/IdsList) and each face's image on `/humans/faces/<id>/cropped` (the
face cut from the camera frame) or `/humans/faces/<id>/aligned` (the face turned upright), as
sensor_msgs/Image. fer_node subscribes to the image of every tracked id (`hri_face_image` chooses
which), classifies the newest image of each face in one batch with the same engine, and publishes:

  /humans/faces/<id>/expression  hri_msgs/Expression, header of that face's image
  emotion                        EmotionStamped per face, header of that face's image; `face` is the
                                 whole face image, `face_id` a number fer_node gives each ROS4HRI id
  emotions                       EmotionArray of the faces classified together, header of the newest image

The detector owns `/humans/faces/tracked` and the faces' `roi`: fer_node publishes neither in this mode.
A face's subscription and publisher go when its id leaves the tracked list.
"""

from __future__ import annotations

import dataclasses
import threading

from sensor_msgs.msg import Image

from fer_ros.errors import FrameError
from fer_ros.inference.tracking import Track
from fer_ros.ros.images import message_to_rgb
from fer_ros.ros.messages import emotion_messages, stamp_ns
from fer_ros.ros.standard import HRI_EXPRESSIONS

FACE_IMAGES = ("cropped", "aligned")


class HriFaces:
    """The newest face image of every tracked ROS4HRI id, for one worker to take in a batch."""

    def __init__(self, node, hri_msgs, kind: str, qos, on_image):
        """`on_image()` is called (from the executor) whenever a face image arrives."""
        self.node, self.hri, self.kind, self.qos, self.on_image = node, hri_msgs, kind, qos, on_image
        self.lock = threading.Lock()
        self.pending: dict[str, tuple] = {}  # id -> (image message, receipt on the node clock, monotonic)
        self.subscriptions: dict[str, object] = {}
        self.publishers: dict[str, object] = {}
        self.numbers: dict[str, int] = {}  # ROS4HRI id -> EmotionStamped.face_id
        self.tracked = node.create_subscription(hri_msgs.IdsList, "/humans/faces/tracked", self.on_tracked, 10)

    def topic(self, face: str) -> str:
        return f"/humans/faces/{face}/{self.kind}"

    def on_tracked(self, msg) -> None:
        live = set(msg.ids)
        for face in live - set(self.subscriptions):
            self.subscriptions[face] = self.node.create_subscription(
                Image, self.topic(face), lambda m, face=face: self.arrived(face, m), self.qos)
            self.publishers[face] = self.node.create_publisher(self.hri.Expression,
                                                               f"/humans/faces/{face}/expression", 10)
            self.numbers.setdefault(face, len(self.numbers) + 1)
        for face in set(self.subscriptions) - live:
            self.node.destroy_subscription(self.subscriptions.pop(face))
            self.node.destroy_publisher(self.publishers.pop(face))
            with self.lock:
                self.pending.pop(face, None)

    def arrived(self, face: str, msg) -> None:
        import time

        with self.lock:
            replaced = face in self.pending
            self.pending[face] = (msg, self.node.get_clock().now(), time.monotonic())
        self.on_image(replaced)

    def take(self) -> dict[str, tuple]:
        """Every face's newest image since the last call (ids no longer tracked are gone)."""
        with self.lock:
            pending, self.pending = self.pending, {}
        return pending

    def answer(self, pipeline, tracks: dict, model_id: str, classes, dropped) -> tuple[list, float]:
        """The newest image of every face classified in one batch, each face's Expression published:
        (EmotionStamped per face, classify ms). `tracks` (ROS4HRI id -> smoothing state) is the
        caller's; `dropped(face, error)` hears of an image that cannot be read."""
        faces, crops = [], []
        for face, (msg, receipt, _) in sorted(self.take().items()):
            try:
                crops.append(message_to_rgb(msg))
                faces.append((face, msg, receipt))
            except FrameError as err:
                dropped(face, err)
        if not crops:
            return [], 0.0
        batch = pipeline.classify_crops(crops, [tracks.setdefault(face, Track(
            face_id=self.numbers.get(face, 0), box=(0, 0, 0, 0), last_seen=0.0)) for face, _, _ in faces])
        out = []
        for (face, msg, receipt), result in zip(faces, batch.faces):
            now = self.node.get_clock().now()
            _, (stamped,) = emotion_messages(dataclasses.replace(batch, faces=[result]), msg.header, pipeline.labels,
                                             model_id, classes, (now.nanoseconds - stamp_ns(msg.header)) * 1e-6,
                                             (now - receipt).nanoseconds * 1e-6)
            out.append(stamped)
            name, pub = HRI_EXPRESSIONS.get(result.label), self.publishers.get(face)
            if name is not None and pub is not None:
                pub.publish(self.hri.Expression(header=msg.header, expression=getattr(self.hri.Expression, name),
                                                confidence=float(result.confidence)))
        return out, batch.classify_ms

    def close(self) -> None:
        for sub in self.subscriptions.values():
            self.node.destroy_subscription(sub)
        for pub in self.publishers.values():
            self.node.destroy_publisher(pub)
        self.node.destroy_subscription(self.tracked)
        self.subscriptions.clear()
        self.publishers.clear()
        with self.lock:
            self.pending.clear()
