"""How a face too small to read reaches the robot stack's outputs: a box without a class on
vision_msgs, a roi without an expression on ROS4HRI, and 'unknown' on the node's own messages.

vision_msgs and hri_msgs are not wheels (test/ros/test_standard_outputs.py runs them over DDS in a
layer it builds); here stand-ins with their field names take their place, so the conversion is
checked without a node."""

from types import SimpleNamespace

import numpy as np
import pytest
from std_msgs.msg import Header

from fer_ros.inference.pipeline import UNKNOWN, FaceResult, FrameResult
from fer_ros.labels import FER7
from fer_ros.ros import standard
from fer_ros.ros.messages import emotion_messages, rclpy_classes

PROBS = np.float32([0.05, 0.05, 0.05, 0.6, 0.1, 0.1, 0.05])


def message(**fields):
    """A stand-in message class: keyword fields, others made fresh by their factories."""

    def make(**given):
        return SimpleNamespace(**{name: new() for name, new in fields.items()}, **given)

    return make


def point():
    return SimpleNamespace(x=0.0, y=0.0)


VISION = SimpleNamespace(
    Detection2DArray=message(detections=list),
    Detection2D=message(
        results=list,
        bbox=lambda: SimpleNamespace(
            center=SimpleNamespace(position=point()), size_x=0.0, size_y=0.0
        ),
    ),
    ObjectHypothesisWithPose=message(hypothesis=lambda: SimpleNamespace(class_id="", score=0.0)),
)
HRI = SimpleNamespace(
    IdsList=message(), NormalizedRegionOfInterest2D=message(), Expression=message()
)
HRI.Expression.HAPPY = "happy"  # the constant the happy face's expression is given


def frame():
    """One frame: a face read (80 px wide) and one too small to read (12 px)."""
    read = FaceResult((100, 50, 80, 90), 1, PROBS, "happy", 0.6)
    unread = FaceResult((10, 10, 12, 14), 2, PROBS, UNKNOWN, 0.6, too_small=True)
    return FrameResult(faces=[read, unread])


def test_vision_msgs_gives_a_face_too_small_to_read_its_box_but_no_class():
    out = standard.detections(VISION, frame(), Header(), list(FER7))
    read, unread = out.detections
    assert [h.hypothesis.class_id for h in read.results][0] == "happy" and len(read.results) == 7
    assert unread.id == "2" and (unread.bbox.size_x, unread.bbox.size_y) == (12.0, 14.0)
    assert (unread.bbox.center.position.x, unread.bbox.center.position.y) == (16.0, 17.0)
    assert unread.results == []


class Publisher:
    def __init__(self, topic):
        self.topic, self.sent = topic, []

    def publish(self, msg):
        self.sent.append(msg)


class Node:
    """What StandardOutputs asks of a node: publishers, recorded."""

    def __init__(self):
        self.publishers = {}

    def get_logger(self):
        return SimpleNamespace(warning=print)

    def create_publisher(self, kind, topic, qos):
        return self.publishers.setdefault(topic, Publisher(topic))

    def destroy_publisher(self, pub):
        del self.publishers[pub.topic]


def test_ros4hri_gives_a_face_too_small_to_read_its_roi_but_no_expression(monkeypatch):
    monkeypatch.setattr(standard, "optional_msgs", lambda package: {"hri_msgs": HRI}.get(package))
    node = Node()
    outputs = standard.StandardOutputs(node, FER7, 0.0, detections_on=False, hri_on=True)
    outputs.publish(frame(), Header(), (640, 480), tracked_ids=[1, 2])
    sent = {topic: pub.sent for topic, pub in node.publishers.items()}
    assert sent["/humans/faces/tracked"][0].ids == ["face1", "face2"]
    assert len(sent["/humans/faces/face1/roi"]) == len(sent["/humans/faces/face2/roi"]) == 1
    assert sent["/humans/faces/face2/roi"][0].xmax == (10 + 12) / 640
    (expression,) = sent["/humans/faces/face1/expression"]
    assert expression.expression == "happy" and expression.confidence == pytest.approx(0.6)
    assert sent["/humans/faces/face2/expression"] == []


def test_emotion_messages_say_unknown_for_a_face_too_small_to_read():
    _, (read, unread) = emotion_messages(frame(), Header(), FER7, "m@0", rclpy_classes())
    assert (read.label, unread.label) == ("happy", UNKNOWN)
    assert (unread.face.width, unread.face.height, unread.face_id) == (12, 14, 2)
    assert np.allclose(unread.probabilities, PROBS) and unread.confidence == pytest.approx(0.6)
