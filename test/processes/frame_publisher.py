"""Publishes N bgr8 frames (640x480 unless a size is given) best-effort at 30 Hz (or a given rate)
on a topic, once a subscriber is there.

Stands in for a camera driver in the large-frame test; whether it loads the Fast DDS profile is
up to the environment it is started with.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main(topic: str, count: int, width: int = 640, height: int = 480, rate: float = 30.0):
    rclpy.init()
    node = rclpy.create_node("frame_publisher")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery settle on both sides
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    msg = Image(height=height, width=width, encoding="bgr8", step=width * 3, data=frame)
    start = time.monotonic()
    for i in range(count):
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1, i
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    print(f"sent {count}", flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]),
        *(int(a) for a in sys.argv[3:5]),
        *(float(a) for a in sys.argv[5:6]),
    )
