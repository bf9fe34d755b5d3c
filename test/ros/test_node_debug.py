"""A node a maintainer can debug: failures forced inside a real fer_node process (a bug at
configure, a failing background face search, a bug in the frame worker) are logged with their
tracebacks under FER_ROS_DEBUG, counted on /diagnostics, and never end the node."""

import os
import time

import cv2
import numpy as np
import skimage.data
from diagnostic_msgs.msg import DiagnosticArray
from live import publish_until_answered
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fer_ros.msg import EmotionArray
from fer_ros.ros.images import fill_image

# fer_node with faults put in from outside (the installed package itself is unchanged): every
# background face search raises, and a 13-pixel-wide frame meets a bug in the frame worker.
FAULTY_NODE = """
import sys

import fer_ros.inference.pipeline as pipeline
import fer_ros.ros.node as node


class FailingSearch(pipeline.BackgroundSearch):
    def __init__(self, options):
        super().__init__(options)
        self.detector = self.search

    def search(self, rgb, sizes=None):
        raise RuntimeError("forced search failure")


def decode(msg, max_pixels):
    if msg.width == 13:
        raise ZeroDivisionError("forced bug")
    return decode_frame(msg, max_pixels)


decode_frame = node.message_to_rgb
pipeline.BackgroundSearch, node.message_to_rgb = FailingSearch, decode
sys.exit(node.main(sys.argv))
"""
# fer_node whose configure meets a bug (not a user's error).
BROKEN_CONFIGURE = """
import sys

import fer_ros.ros.node as node


def build_pipeline(*args, **kwargs):
    raise TypeError("forced configure bug")


node.build_pipeline = build_pipeline
sys.exit(node.main(sys.argv))
"""


def astronaut_frame() -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(
        skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA
    )
    return frame


class Diagnostics:
    """The newest /diagnostics values of one node, as they arrive."""

    def __init__(self, name: str):
        self.name, self.values = name, {}

    def __call__(self, array) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if values.get("node") == self.name:
                self.values = values | {"level": status.level, "message": status.message}


def spin_until(ros, node, condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        ros.spin_once(node, timeout_sec=0.1)
    return condition()


def test_with_the_switch_failures_log_tracebacks_and_searches_are_counted(
    ros, spawn, small_checkpoint
):
    ns = "node_debug"
    node = spawn(
        "-c",
        FAULTY_NODE,
        "--ros-args",
        "-r",
        f"__ns:=/{ns}",
        "-r",
        f"image:=/{ns}/camera",
        "-p",
        f"checkpoint:={small_checkpoint}",
        "-p",
        "detector:=haar",
        "-p",
        "detect_every:=2",
        "-p",
        "diagnostics_period:=0.3",
        env=dict(os.environ, FER_ROS_DEBUG="1"),
        name="fer_node",
    )
    assert node.wait_for("listening on", timeout=90), node.output()
    tester = ros.create_node("node_debug_tester")
    answers, diagnostics = [], Diagnostics(f"/{ns}/fer_node")
    tester.create_subscription(EmotionArray, f"/{ns}/emotions", answers.append, 50)
    tester.create_subscription(DiagnosticArray, "/diagnostics", diagnostics, 50)
    camera = tester.create_publisher(Image, f"/{ns}/camera", qos_profile_sensor_data)
    try:
        # Faces followed from frame to frame; every second frame starts a background search,
        # which fails.
        for _ in range(6):
            answers.clear()
            face = fill_image(Image(), astronaut_frame(), "rgb8")
            assert publish_until_answered(ros, tester, camera, face, answers, period=1.0), (
                node.output()
            )
        assert answers[-1].faces, "the followed face was lost: the failed searches cost it"

        # Counted on /diagnostics (the messages queued while frames were sent come first).
        def counted() -> bool:
            return int(diagnostics.values.get("face_search_failures", "0")) >= 1

        assert spin_until(ros, tester, counted), diagnostics.values
        output = node.output()
        assert "background face searches failed: RuntimeError: forced search failure" in output, (
            output
        )
        after_search = output.split("background face searches failed")[1]
        assert "Traceback (most recent call last)" in after_search and "in search" in after_search
        # A bug in the frame worker: the frame is dropped with its traceback, the next answered.
        bad = fill_image(Image(), np.zeros((16, 13, 3), np.uint8), "rgb8")
        camera.publish(bad)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "forced bug" not in node.output():
            camera.publish(bad)
            ros.spin_once(tester, timeout_sec=0.2)
        output = node.output()
        assert "dropped a frame: ZeroDivisionError: forced bug" in output, output
        assert "in decode" in output.split("dropped a frame: ZeroDivisionError")[1]
        answers.clear()
        face = fill_image(Image(), astronaut_frame(), "rgb8")
        assert publish_until_answered(ros, tester, camera, face, answers, period=1.0), (
            node.output()
        )
    finally:
        tester.destroy_node()
    assert node.stop() == 0, node.output()


def test_a_bug_at_configure_logs_its_traceback_without_the_switch(spawn, small_checkpoint):
    env = {k: v for k, v in os.environ.items() if k != "FER_ROS_DEBUG"}
    node = spawn(
        "-c",
        BROKEN_CONFIGURE,
        "--ros-args",
        "-r",
        "__ns:=/node_debug_configure",
        "-p",
        f"checkpoint:={small_checkpoint}",
        env=env,
        name="fer_node",
    )
    assert node.proc.wait(60) == 1, node.output()
    output = node.output()
    assert "configure failed: TypeError: forced configure bug" in output, output
    assert "Traceback (most recent call last)" in output and "in build_pipeline" in output, output
