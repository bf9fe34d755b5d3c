"""640x480 frames between processes with best-effort (sensor-data) QoS.

Fast DDS's default shared-memory segment (512 KB, owned by the publisher) cannot hold a 900 KB
frame and best-effort frames are then lost; the shipped profile, loaded by the publisher, fixes it.
"""

import os
from pathlib import Path

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from fer_ros.ros.dds import large_image_env

PUBLISHER = str(Path(__file__).parent / "processes" / "frame_publisher.py")
FRAMES = 90


def receive(ros, spawn, topic, env):
    node = ros.create_node("large_frame_listener")
    got = set()
    node.create_subscription(Image, topic, lambda m: got.add(m.header.stamp.nanosec), qos_profile_sensor_data)
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
    # For comparison only (it measures Fast DDS, not fer_ros): the same publisher without the profile.
    bare = {k: v for k, v in os.environ.items() if k not in (*names, "GLIBC_TUNABLES")}
    print(f"640x480 best effort: {received} of {FRAMES} frames arrived with the profile, "
          f"{receive(ros, spawn, '/large_without_profile', bare)} without it")
    assert received >= 0.95 * FRAMES, f"only {received} of {FRAMES} frames arrived"
