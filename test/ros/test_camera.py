"""`fer-ros camera`: a video file the test writes itself, published as a camera would publish it,
into a live fer_node over real DDS. The camera's environment carries no Fast DDS profile: it must
load the large-image profile itself, or its best-effort 640x480 frames are lost in transport."""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fer_ros.ros.dds import PROFILE, PROFILE_VARS
from fer_ros.video.clip import write_clip

FER_ROS = str(Path(sys.executable).parent / "fer-ros")


def test_a_video_published_by_fer_ros_camera_is_read_by_a_live_node(ros, spawn, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.msg import EmotionArray

    clip = write_clip(tmp_path / "astronaut.avi", 30, 640, 480, fps=15)
    ns = "camera_test"
    topic = f"/{ns}/camera/image_raw"
    node = spawn(FER_ROS, "run", "--namespace", ns, "--image", topic, name="fer_node")
    tester = ros.create_node("camera_tester")
    try:
        answers, frames = [], []
        tester.create_subscription(EmotionArray, f"/{ns}/emotions", answers.append, 100)
        tester.create_subscription(Image, topic, frames.append, qos_profile_sensor_data)
        assert node.wait_for("listening on", timeout=120), node.output()
        camera_env = {
            k: v for k, v in os.environ.items() if k not in (*PROFILE_VARS, "GLIBC_TUNABLES")
        }
        # 60 frames (the 30-frame clip twice), once the node and this tester both listen.
        camera = spawn(
            FER_ROS,
            "camera",
            "--video",
            str(clip),
            "--loop",
            "--count",
            "60",
            "--wait",
            "2",
            "--topic",
            topic,
            "--frame-id",
            "test_camera",
            env=camera_env,
            name="camera",
        )
        deadline = time.monotonic() + 90
        while camera.proc.poll() is None and time.monotonic() < deadline:
            ros.spin_once(tester, timeout_sec=0.05)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            ros.spin_once(tester, timeout_sec=0.05)
        assert camera.stop() == 0, camera.output()
        output = camera.output()
        assert "Fast DDS profile" in output and PROFILE in output  # loaded by the publisher itself
        assert "640x480, 15 Hz, looped" in output and "fer-ros camera: sent 60 frames" in output, (
            output
        )

        # Best effort, 900 KB frames: without the large-image profile in the camera most are lost.
        assert len(frames) >= 54, f"{len(frames)} of 60 frames arrived"
        assert (frames[0].encoding, frames[0].width, frames[0].height) == ("bgr8", 640, 480)
        pixels = np.frombuffer(frames[0].data, np.uint8)
        assert pixels.size == 640 * 480 * 3 and pixels.std() > 10  # a picture, not an empty buffer
        with_faces = [a for a in answers if len(a.faces)]
        assert len(with_faces) >= 10, (
            f"{len(answers)} results, {len(with_faces)} with a face\n{node.output()}"
        )
        now_ns = tester.get_clock().now().nanoseconds
        stamps = [a.header.stamp.sec * 10**9 + a.header.stamp.nanosec for a in answers]
        assert (
            stamps == sorted(stamps) and abs(now_ns - stamps[-1]) < 30 * 10**9
        )  # real, increasing stamps
        assert {a.header.frame_id for a in answers} == {"test_camera"}
        face = with_faces[-1].faces[0]
        assert face.label in face.labels and sum(face.probabilities) == pytest.approx(
            1.0, abs=1e-4
        )
    finally:
        tester.destroy_node()


def test_a_camera_that_is_not_there_is_one_line_and_exit_2(spawn):
    camera = spawn(FER_ROS, "camera", "--device", "/dev/fer_ros_no_such_camera", name="camera")
    assert camera.proc.wait(60) == 2
    lines = camera.output().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fer-ros camera: error: cannot open camera"), (
        lines
    )
