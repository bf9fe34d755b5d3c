"""Plays a ROS4HRI (REP-155) face detector: two tracked faces and their cropped images.

    python hri_face_detector.py SECONDS [nobody]

Publishes /humans/faces/tracked (hri_msgs/IdsList: anna, bob) and /humans/faces/<id>/cropped
(sensor_msgs/Image, rgb8: the astronaut's face, bob's mirrored) at 10 Hz, each image stamped with a
distinct time that is also printed ({"face": id, "sec": s, "nanosec": ns} per line), so a test can
match fer_node's answers to the images they came from. With `nobody`, the tracked list is empty
and no image is sent: a detector that sees no one. Run in the environment of the layer
test/ros_tools.py builds (hri_msgs is not a wheel).
"""

import json
import sys
import time

import cv2
import numpy as np
import rclpy
import skimage.data
from hri_msgs.msg import IdsList
from sensor_msgs.msg import Image

from fer_ros.ros.images import fill_image

FACES = ("anna", "bob")


def main(seconds: float, faces=FACES) -> None:
    rclpy.init()
    node = rclpy.create_node("fake_face_detector")
    tracked = node.create_publisher(IdsList, "/humans/faces/tracked", 10)
    crops = {
        face: node.create_publisher(Image, f"/humans/faces/{face}/cropped", 10) for face in FACES
    }
    face = cv2.resize(
        skimage.data.astronaut()[50:190, 160:290], (128, 138), interpolation=cv2.INTER_AREA
    )
    images = {"anna": face, "bob": np.ascontiguousarray(face[:, ::-1])}
    print("ready", flush=True)
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        stamp = node.get_clock().now().to_msg()
        ids = IdsList(ids=list(faces))
        ids.header.stamp = stamp
        tracked.publish(ids)
        for i, name in enumerate(faces):
            msg = fill_image(Image(), images[name], "rgb8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = (
                stamp.sec,
                (stamp.nanosec // 10 * 10 + i) % 10**9,
            )
            msg.header.frame_id = f"face_{name}"
            crops[name].publish(msg)
            print(
                json.dumps(
                    {
                        "face": name,
                        "sec": msg.header.stamp.sec,
                        "nanosec": msg.header.stamp.nanosec,
                    }
                ),
                flush=True,
            )
        time.sleep(0.1)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]), () if sys.argv[2:] == ["nobody"] else FACES)
