"""640x480 frames between processes with best-effort (sensor-data) QoS.

Fast DDS's default shared-memory segment (512 KB, owned by the publisher) cannot hold a 900 KB
frame and best-effort frames are then lost; the shipped profile, loaded by the publisher, fixes it.
"""

import os
import time
from pathlib import Path

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fer_ros.ros.dds import large_image_env

PUBLISHER = str(Path(__file__).resolve().parents[1] / "processes" / "frame_publisher.py")
FRAMES = 90


def receive(ros, spawn, topic, env):
    node = ros.create_node("large_frame_listener")
    got = set()
    node.create_subscription(
        Image, topic, lambda m: got.add(m.header.stamp.nanosec), qos_profile_sensor_data
    )
    publisher = spawn(PUBLISHER, topic, str(FRAMES), env=env, name="camera")
    while publisher.proc.poll() is None:
        ros.spin_once(node, timeout_sec=0.05)
    for _ in range(20):
        ros.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    assert f"sent {FRAMES}" in publisher.output(), publisher.output()
    return len(got)


def test_640x480_best_effort_arrives_with_the_profile(ros, spawn):
    names = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
    env = large_image_env({k: v for k, v in os.environ.items() if k not in names})
    received = receive(ros, spawn, "/large_with_profile", env)
    # For comparison only (it measures Fast DDS, not fer_ros): the same publisher without the
    # profile.
    bare = {k: v for k, v in os.environ.items() if k not in (*names, "GLIBC_TUNABLES")}
    print(
        f"640x480 best effort: {received} of {FRAMES} frames arrived with the profile, "
        f"{receive(ros, spawn, '/large_without_profile', bare)} without it"
    )
    assert received >= 0.95 * FRAMES, f"only {received} of {FRAMES} frames arrived"


def test_12_megapixel_frames_are_answered_with_the_defaults(
    ros, spawn, small_checkpoint, tmp_path
):
    """A 4000x3000 bgr8 frame (36 MB) from a camera process with the shipped profile, best effort
    (the node's default QoS): answered. The 8 MB segment the profile used to have lost every
    one."""
    import sys

    from fer_ros.msg import EmotionArray

    ns, frames = "large_12mp", 12
    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        "-p",
        "detector:=none",
        name="fer_node_12mp",
    )
    assert node.wait_for("listening on", timeout=120), node.output()
    listener = ros.create_node("large_12mp_listener")
    answered = set()
    listener.create_subscription(
        EmotionArray, f"/{ns}/emotions", lambda m: answered.add(m.header.stamp.nanosec), 10
    )
    try:
        camera = spawn(
            PUBLISHER,
            f"/{ns}/camera",
            str(frames),
            "4000",
            "3000",
            "1",
            env=large_image_env(),
            name="camera_12mp",
        )
        while camera.proc.poll() is None:
            ros.spin_once(listener, timeout_sec=0.05)
        end = time.monotonic() + 10  # the last frame's answer
        while len(answered) < frames and time.monotonic() < end:
            ros.spin_once(listener, timeout_sec=0.05)
    finally:
        listener.destroy_node()
    assert f"sent {frames}" in camera.output(), camera.output()
    print(f"4000x3000 best effort: {len(answered)} of {frames} frames answered")
    # The 8 MB segment lost every frame. Best effort on a 2-core machine loses many too (2 to 8 of
    # 8 answered at 0.5-2 Hz with a second suite beside it; 2 of 12 once with the suite alone:
    # docs/ros.md), so the bar is that frames this large cross at all.
    assert answered, node.output()
