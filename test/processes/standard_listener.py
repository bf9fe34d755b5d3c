"""Prints every vision_msgs and ROS4HRI message fer_node publishes, one JSON line each.

    python standard_listener.py NODE_NAMESPACE

Run in the environment of the layer test/ros_tools.py builds (vision_msgs and hri_msgs are not
wheels), so the test process itself need not load them. Lines: {"topic": ..., "msg": {...}};
"ready" once the fixed subscriptions exist. Per-face ROS4HRI topics are subscribed as their ids
appear on /humans/faces/tracked.
"""

import json
import sys

import rclpy
from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py import message_to_ordereddict
from vision_msgs.msg import Detection2DArray, LabelInfo

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from spinning import spin_until_stopped  # noqa: E402


def main():
    ns = sys.argv[1].strip("/")
    rclpy.init()
    node = rclpy.create_node("standard_listener")
    faces = set()

    def printer(topic):
        return lambda msg: print(
            json.dumps({"topic": topic, "msg": message_to_ordereddict(msg)}), flush=True
        )

    def on_tracked(msg):
        printer("/humans/faces/tracked")(msg)
        for face in msg.ids:
            if face not in faces:
                faces.add(face)
                for kind, name in (
                    (NormalizedRegionOfInterest2D, "roi"),
                    (Expression, "expression"),
                ):
                    topic = f"/humans/faces/{face}/{name}"
                    node.create_subscription(kind, topic, printer(topic), 10)

    node.create_subscription(
        Detection2DArray, f"/{ns}/fer_node/detections", printer("detections"), 10
    )
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    node.create_subscription(
        LabelInfo, f"/{ns}/fer_node/label_info", printer("label_info"), latched
    )
    node.create_subscription(IdsList, "/humans/faces/tracked", on_tracked, 10)
    print("ready", flush=True)
    spin_until_stopped(node)


if __name__ == "__main__":
    main()
