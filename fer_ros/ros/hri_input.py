"""`detector: hri`: faces from an existing ROS4HRI face detector instead of fer_node's own.

A REP-155 face detector (e.g. ros4hri's hri_face_detect) publishes the ids of the faces it follows
on `/humans/faces/tracked` (hri_msgs/IdsList) and each face's image on `/humans/faces/<id>/cropped`
(the face cut from the camera frame) or `/humans/faces/<id>/aligned` (the face turned upright), as
sensor_msgs/Image. fer_node subscribes to the image of every tracked id (`hri_face_image` chooses
which), classifies the newest image of each face in one batch with the same engine, and publishes:

  /humans/faces/<id>/expression  hri_msgs/Expression, header of that face's image
  emotion                        EmotionStamped per face, header of that face's image; `face` is
  the
                                 whole face image, `face_id` a number fer_node gives each ROS4HRI
                                 id
  emotions                       EmotionArray of the faces classified together, header of the
  newest image

The detector owns `/humans/faces/tracked` and the faces' `roi`: fer_node publishes neither in this
mode. A face's subscription and publisher go when its id leaves the tracked list.

The tracked list is a peer's message, so nothing in it may stop the node or swamp it: at most
`hri_max_faces` ids are followed (those already followed first, then new ones in the list's order;
the rest ignored), an id that cannot be one token of a topic name ("1", "bad id!") is refused, each
with a throttled warning, and any other failure to follow the list is logged and survived. A face
that leaves the list is forgotten (number, smoothing): if its id returns it is a new face.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time

from rclpy.exceptions import InvalidTopicNameException
from rclpy.validate_full_topic_name import validate_full_topic_name
from sensor_msgs.msg import Image

from fer_ros.errors import FrameError, one_line
from fer_ros.inference.tracking import Track
from fer_ros.ros.images import message_to_rgb
from fer_ros.ros.messages import emotion_messages, stamp_ns
from fer_ros.ros.standard import HRI_EXPRESSIONS

FACE_IMAGES = ("cropped", "aligned")
NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # one token of a ROS name: /humans/faces/<id>/
THROTTLE_S = 5.0  # a peer that repeats a bad list 10 times a second is told once per this


def topic_token(face) -> bool:
    """Whether a ROS4HRI id can stand in /humans/faces/<id>/... : one name token (REP-155's ids
    are; a detector that numbers its faces sends "1", which rcl refuses), within rcl's length."""
    if not isinstance(face, str) or not NAME_TOKEN.fullmatch(face):
        return False
    try:
        validate_full_topic_name(f"/humans/faces/{face}/expression")  # the longest of its topics
    except InvalidTopicNameException:
        return False
    return True


def shown(ids: list, most: int = 3) -> str:
    """A few ids for a log line, quoted (a peer's text may hold anything) and cut short."""
    text = ", ".join(repr(face)[:40] for face in ids[:most])
    return text + (f" and {len(ids) - most} more" if len(ids) > most else "")


class HriFaces:
    """The newest face image of every tracked ROS4HRI id, for one worker to take in a batch."""

    def __init__(self, node, hri_msgs, kind: str, qos, on_image, max_faces: int = 32):
        """`on_image()` is called (from the executor) whenever a face image arrives; at most
        `max_faces` ids are followed at once."""
        self.node, self.hri, self.kind, self.qos = node, hri_msgs, kind, qos
        self.on_image, self.max_faces = on_image, max_faces
        self.lock = threading.Lock()
        # id -> (image message, receipt on the node clock, monotonic)
        self.pending: dict[str, tuple] = {}
        self.subscriptions: dict[str, object] = {}
        self.publishers: dict[str, object] = {}
        self.numbers: dict[str, int] = {}  # ROS4HRI id -> EmotionStamped.face_id, while followed
        self.last_number = 0
        # The ids followed, for the worker thread: the executor replaces it whole, never edits it.
        self.followed: frozenset[str] = frozenset()
        self.last_tracked: float | None = None  # time.monotonic() of the last tracked list
        self.tracked = node.create_subscription(
            hri_msgs.IdsList, "/humans/faces/tracked", self.on_tracked, 10
        )

    def image_publishers(self) -> int:
        """Publishers matched with the followed faces' image topics (the tracked list is not an
        image)."""
        return sum(sub.get_publisher_count() for sub in self.subscriptions.values())

    def topic(self, face: str) -> str:
        return f"/humans/faces/{face}/{self.kind}"

    def on_tracked(self, msg) -> None:
        """The edge between a peer's message and the node: whatever the list holds, it runs on."""
        self.last_tracked = time.monotonic()
        try:
            self.follow(self.admit(msg.ids))
        except Exception as err:  # a peer's message must never end the node
            self.node.get_logger().error(
                f"tracked faces not followed: {one_line(err)}", throttle_duration_sec=THROTTLE_S
            )

    def admit(self, ids) -> set[str]:
        """The ids to follow: those followed already, then new ones in the list's order, up to
        max_faces; ids that cannot be a topic name's token are refused. Each kind of id left out
        is one throttled warning."""
        ids = list(dict.fromkeys(ids))  # once each, in order
        live = {face for face in ids if face in self.subscriptions}  # checked when admitted
        refused, ignored = [], 0
        for face in ids:
            if face in live:
                continue
            if len(live) >= self.max_faces:  # unchecked past the bound: a long list stays cheap
                ignored += 1
            elif topic_token(face):
                live.add(face)
            else:
                refused.append(face)
        log = self.node.get_logger()
        if refused:
            log.warning(
                f"refused {len(refused)} tracked face ids that cannot be a topic name's "
                f"token (a letter or _, then letters, digits or _): {shown(refused)}",
                throttle_duration_sec=THROTTLE_S,
            )
        if ignored:
            log.warning(
                f"following {len(live)} faces (hri_max_faces {self.max_faces}); ignored "
                f"{ignored} more tracked ids",
                throttle_duration_sec=THROTTLE_S,
            )
        return live

    def follow(self, live: set[str]) -> None:
        """Subscribe to the image of every id in `live` not followed yet; drop those not in it."""
        for face in set(self.subscriptions) - live:
            self.drop(face)
        for face in live - set(self.subscriptions):
            self.add(face)
        self.followed = frozenset(self.subscriptions)

    def add(self, face: str) -> None:
        try:
            self.subscriptions[face] = self.node.create_subscription(
                Image, self.topic(face), lambda m, face=face: self.arrived(face, m), self.qos
            )
            self.publishers[face] = self.node.create_publisher(
                self.hri.Expression, f"/humans/faces/{face}/expression", 10
            )
        except Exception as err:  # one face that cannot be followed is not the end
            self.drop(face)
            self.node.get_logger().warning(
                f"cannot follow face {shown([face])}: {one_line(err)}",
                throttle_duration_sec=THROTTLE_S,
            )
            return
        self.last_number += 1
        self.numbers[face] = self.last_number

    def drop(self, face: str) -> None:
        """Forget a face: its subscription, publisher, number and waiting image (an id that
        returns is a new face)."""
        if face in self.subscriptions:
            self.node.destroy_subscription(self.subscriptions.pop(face))
        if face in self.publishers:
            self.node.destroy_publisher(self.publishers.pop(face))
        self.numbers.pop(face, None)
        with self.lock:
            self.pending.pop(face, None)

    def arrived(self, face: str, msg) -> None:
        with self.lock:
            replaced = face in self.pending
            self.pending[face] = (msg, self.node.get_clock().now(), time.monotonic())
        self.on_image(replaced)

    def take(self) -> dict[str, tuple]:
        """Every face's newest image since the last call (ids no longer tracked are gone)."""
        with self.lock:
            pending, self.pending = self.pending, {}
        return pending

    def answer(
        self, pipeline, tracks: dict, model_id: str, classes, dropped
    ) -> tuple[list, float]:
        """The newest image of every face classified in one batch, each face's Expression
        published: (EmotionStamped per face, classify ms). `tracks` (ROS4HRI id -> smoothing state)
        is the caller's; `dropped(face, error)` hears of an image that cannot be read."""
        followed = self.followed
        for face in [face for face in tracks if face not in followed]:  # smoothing of faces gone
            del tracks[face]
        faces, crops = [], []
        for face, (msg, receipt, _) in sorted(self.take().items()):
            if face not in followed:  # it left the list after its image arrived
                continue
            try:
                crops.append(message_to_rgb(msg))
                faces.append((face, msg, receipt))
            except FrameError as err:
                dropped(face, err)
        if not crops:
            return [], 0.0
        batch = pipeline.classify_crops(
            crops,
            [
                tracks.setdefault(
                    face, Track(face_id=self.numbers.get(face, 0), box=(0, 0, 0, 0), last_seen=0.0)
                )
                for face, _, _ in faces
            ],
        )
        out = []
        for (face, msg, receipt), result in zip(faces, batch.faces):
            now = self.node.get_clock().now()
            _, (stamped,) = emotion_messages(
                dataclasses.replace(batch, faces=[result]),
                msg.header,
                pipeline.labels,
                model_id,
                classes,
                (now.nanoseconds - stamp_ns(msg.header)) * 1e-6,
                (now - receipt).nanoseconds * 1e-6,
            )
            out.append(stamped)
            name, pub = HRI_EXPRESSIONS.get(result.label), self.publishers.get(face)
            if name is not None and pub is not None:
                pub.publish(
                    self.hri.Expression(
                        header=msg.header,
                        expression=getattr(self.hri.Expression, name),
                        confidence=float(result.confidence),
                    )
                )
        return out, batch.classify_ms

    def close(self) -> None:
        for sub in self.subscriptions.values():
            self.node.destroy_subscription(sub)
        for pub in self.publishers.values():
            self.node.destroy_publisher(pub)
        self.node.destroy_subscription(self.tracked)
        self.subscriptions.clear()
        self.publishers.clear()
        self.numbers.clear()
        self.followed = frozenset()
        with self.lock:
            self.pending.clear()
