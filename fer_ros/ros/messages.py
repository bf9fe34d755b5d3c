"""Pipeline results -> EmotionStamped / EmotionArray messages: one conversion for every door, plus
the header-stamp arithmetic every door shares.

The node fills rclpy's message classes, the bag tools rosbags' dataclasses. Both have the same
fields and differ only in how a float32[] is given (a list for rclpy, a float32 ndarray for
rosbags), so the caller picks the classes and this module does the rest.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds (rclpy and rosbags headers alike)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def sec_nanosec(ns: int) -> tuple[int, int]:
    """Integer nanoseconds as a builtin_interfaces/Time's (sec, nanosec)."""
    return ns // 1_000_000_000, ns % 1_000_000_000


@dataclass(frozen=True)
class MessageClasses:
    emotion: type  # fer_ros/msg/EmotionStamped
    array: type  # fer_ros/msg/EmotionArray
    roi: type  # sensor_msgs/msg/RegionOfInterest
    floats: Callable[[np.ndarray], object]  # probabilities as the class wants a float32[]


def rclpy_classes() -> MessageClasses:
    from sensor_msgs.msg import RegionOfInterest

    from fer_ros.msg import EmotionArray, EmotionStamped

    return MessageClasses(EmotionStamped, EmotionArray, RegionOfInterest, lambda p: p.tolist())


def rosbags_classes(store) -> MessageClasses:
    types = store.types
    return MessageClasses(
        types["fer_ros/msg/EmotionStamped"],
        types["fer_ros/msg/EmotionArray"],
        types["sensor_msgs/msg/RegionOfInterest"],
        lambda p: np.asarray(p, np.float32),
    )


def emotion_messages(
    result,
    header,
    labels,
    model: str,
    classes: MessageClasses,
    latency_ms: float = 0.0,
    processing_ms: float = 0.0,
):
    """(EmotionArray, [EmotionStamped, largest face first]) for one frame; both copy `header`."""
    faces = []
    for face in result.faces:
        x, y, w, h = (int(v) for v in face.box)
        faces.append(
            classes.emotion(
                header=header,
                face=classes.roi(x_offset=x, y_offset=y, height=h, width=w, do_rectify=False),
                face_id=int(face.face_id),
                labels=list(labels),
                probabilities=classes.floats(face.probabilities),
                label=face.label,
                confidence=float(face.confidence),
                latency_ms=float(latency_ms),
                processing_ms=float(processing_ms),
                model=model,
            )
        )
    return classes.array(header=header, faces=faces), faces
