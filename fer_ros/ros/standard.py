"""The robot stack's vocabulary: vision_msgs detections and ROS4HRI (REP-155) face topics.

vision_msgs and hri_msgs come with a ROS distribution (they are not published as wheels); each
output is built only when its package imports, and otherwise says once why it is off. Both are
filled from the same pipeline result the node's own EmotionArray carries.

vision_msgs: `~/detections` (Detection2DArray: one Detection2D per face, id = face_id, box centre
and size in pixels, one hypothesis per class with its probability, highest first; none for a face
too small to read, narrower than min_classify_size) and a transient-local `~/label_info`
(LabelInfo: class id <-> label, the checkpoint's labels).

ROS4HRI: `/humans/faces/tracked` (IdsList of the faces followed now) and, per face,
`/humans/faces/<id>/roi` (NormalizedRegionOfInterest2D) and `/humans/faces/<id>/expression`
(Expression). Face ids are `face<face_id>` (a topic name token may not start with a digit). A
face's topics are withdrawn when the tracker forgets it.
"""

from __future__ import annotations

import importlib

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

# fer_ros label -> hri_msgs/Expression constant. contempt has no constant and no close one (the
# list's nearest, "skeptical" or "annoyed", mean something else): a contempt face gets no
# expression message.
HRI_EXPRESSIONS = {
    "angry": "ANGRY",
    "disgust": "DISGUSTED",
    "fear": "SCARED",
    "happy": "HAPPY",
    "sad": "SAD",
    "surprise": "SURPRISED",
    "neutral": "NEUTRAL",
}


def optional_msgs(package: str):
    """`<package>.msg`, or None when the package is not installed."""
    try:
        return importlib.import_module(f"{package}.msg")
    except ImportError:
        return None


def hri_id(face_id: int) -> str:
    return f"face{face_id}"


def detections(msgs, result, header, labels):
    """vision_msgs/Detection2DArray of one frame."""
    out = msgs.Detection2DArray(header=header)
    for face in result.faces:
        x, y, w, h = (float(v) for v in face.box)
        det = msgs.Detection2D(header=header, id=str(face.face_id))
        det.bbox.center.position.x, det.bbox.center.position.y = x + w / 2, y + h / 2
        det.bbox.size_x, det.bbox.size_y = w, h
        # A face too small to read is a detection without a class: its probabilities are a guess
        # (vision_msgs scores a class not listed 0: none listed says no class was read).
        ranked = [] if face.too_small else range(len(labels))
        for i in sorted(ranked, key=lambda i: -float(face.probabilities[i])):
            hypothesis = msgs.ObjectHypothesisWithPose()
            hypothesis.hypothesis.class_id = labels[i]
            hypothesis.hypothesis.score = float(face.probabilities[i])
            det.results.append(hypothesis)
        out.detections.append(det)
    return out


def label_info(msgs, labels, threshold: float, header):
    return msgs.LabelInfo(
        header=header,
        threshold=float(threshold),
        class_map=[msgs.VisionClass(class_id=i, class_name=name) for i, name in enumerate(labels)],
    )


class StandardOutputs:
    """Publishers of the vision_msgs and ROS4HRI outputs a node asked for and can have."""

    def __init__(self, node, labels, threshold: float, detections_on: bool, hri_on: bool):
        self.node, self.labels = node, list(labels)
        log = node.get_logger()
        self.vision = optional_msgs("vision_msgs") if detections_on else None
        if detections_on and self.vision is None:
            log.warning(
                "publish_detections is on but vision_msgs is not installed: no ~/detections"
            )
        self.hri = optional_msgs("hri_msgs") if hri_on else None
        if hri_on and self.hri is None:
            log.warning("hri is on but hri_msgs is not installed: no /humans/faces/ topics")
        self.detections_pub = self.label_pub = self.tracked_pub = None
        self.faces: dict[str, tuple] = {}  # hri id -> (roi publisher, expression publisher)
        if self.vision is not None:
            self.detections_pub = node.create_publisher(
                self.vision.Detection2DArray, "~/detections", 10
            )
            latched = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            self.label_pub = node.create_publisher(self.vision.LabelInfo, "~/label_info", latched)
            header = Header(stamp=node.get_clock().now().to_msg())
            self.label_pub.publish(label_info(self.vision, self.labels, threshold, header))
        if self.hri is not None:
            self.tracked_pub = node.create_publisher(self.hri.IdsList, "/humans/faces/tracked", 10)

    def publish(self, result, header, frame_size: tuple[int, int], tracked_ids) -> None:
        """One frame's outputs; `frame_size` is (width, height), `tracked_ids` the face ids the
        tracker still follows (a face missed in this frame keeps its topics until it is
        forgotten)."""
        if self.detections_pub is not None:
            self.detections_pub.publish(detections(self.vision, result, header, self.labels))
        if self.hri is None:
            return
        live = {hri_id(i) for i in tracked_ids}
        for gone in set(self.faces) - live:
            for pub in self.faces.pop(gone):
                self.node.destroy_publisher(pub)
        width, height = frame_size
        for face in result.faces:
            key = hri_id(face.face_id)
            if key not in self.faces:
                base = f"/humans/faces/{key}"
                self.faces[key] = (
                    self.node.create_publisher(
                        self.hri.NormalizedRegionOfInterest2D, f"{base}/roi", 10
                    ),
                    self.node.create_publisher(self.hri.Expression, f"{base}/expression", 10),
                )
            roi_pub, expression_pub = self.faces[key]
            x, y, w, h = face.box
            # c is the detector's confidence in the box; Haar gives none, so a face it found counts
            # as sure.
            roi_pub.publish(
                self.hri.NormalizedRegionOfInterest2D(
                    header=header,
                    xmin=x / width,
                    ymin=y / height,
                    xmax=(x + w) / width,
                    ymax=(y + h) / height,
                    c=float(face.score),
                )
            )
            # "unknown" (below the threshold, or too small to read) and contempt: none
            name = HRI_EXPRESSIONS.get(face.label)
            if name is not None:
                expression_pub.publish(
                    self.hri.Expression(
                        header=header,
                        expression=getattr(self.hri.Expression, name),
                        confidence=float(face.confidence),
                    )
                )
        self.tracked_pub.publish(self.hri.IdsList(header=header, ids=sorted(live)))

    def close(self) -> None:
        for pubs in self.faces.values():
            for pub in pubs:
                self.node.destroy_publisher(pub)
        self.faces.clear()
        for pub in (self.detections_pub, self.label_pub, self.tracked_pub):
            if pub is not None:
                self.node.destroy_publisher(pub)
