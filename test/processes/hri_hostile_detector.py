"""Plays a ROS4HRI face detector that sends tracked lists a REP-155 detector never would.

    python hri_hostile_detector.py bad|many SECONDS

bad:  /humans/faces/tracked = ["1", "bad id!", "anna"]: a detector that numbers its faces, a
      free-text id, and one good id.
many: 10,000 ids f0 ... f9999 (a 100 KB message).
Waits until someone subscribes to the list, then publishes it at 10 Hz for SECONDS, printing
"sent" after the first. Run in the environment of the layer test/ros_tools.py builds (hri_msgs is
not a wheel).
"""

import sys
import time

import rclpy
from hri_msgs.msg import IdsList

LISTS = {"bad": ["1", "bad id!", "anna"], "many": [f"f{i}" for i in range(10_000)]}


def main(kind: str, seconds: float) -> None:
    rclpy.init()
    node = rclpy.create_node("hostile_face_detector")
    tracked = node.create_publisher(IdsList, "/humans/faces/tracked", 10)
    while tracked.get_subscription_count() < 1:
        time.sleep(0.05)
    msg = IdsList(ids=LISTS[kind])
    end, sent = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        msg.header.stamp = node.get_clock().now().to_msg()
        tracked.publish(msg)
        sent += 1
        if sent == 1:
            print("sent", flush=True)
        time.sleep(0.1)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
