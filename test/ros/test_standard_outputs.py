"""vision_msgs and ROS4HRI outputs over real DDS, checked field by field against the EmotionArray
of the same frame. fer_node and a listener run in their own processes in the environment of the
layer conftest's `ros_layer` builds (vision_msgs and hri_msgs are not wheels); without it this
skips."""

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

HERE = Path(__file__).resolve().parents[1]  # test/
NS = "std_test"
HRI = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}


def key(header: dict) -> tuple:
    return header["stamp"]["sec"], header["stamp"]["nanosec"]


def test_detections_label_info_and_ros4hri_match_the_emotion_array(
    ros, ros_layer, spawn, small_checkpoint
):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.msg import EmotionArray
    from fer_ros.ros.images import fill_image

    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        NS,
        "--image",
        f"/{NS}/camera",
        "-p",
        "hri:=true",
        "-p",
        "detect_every:=1",
        env=ros_layer.env,
        name="fer_node_std",
    )
    listener = spawn(
        str(HERE / "processes" / "standard_listener.py"), NS, env=ros_layer.env, name="listener"
    )
    assert node.wait_for("listening on", timeout=90), node.output()
    assert listener.wait_for("ready", timeout=60), listener.output()
    assert "not installed" not in node.output()  # both packages were found by the node

    tester = ros.create_node("std_tester")
    arrays = {}
    tester.create_subscription(
        EmotionArray,
        f"/{NS}/emotions",
        lambda m: arrays.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m),
        50,
    )
    pub = tester.create_publisher(Image, f"/{NS}/camera", qos_profile_sensor_data)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(
        skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA
    )
    msg = fill_image(Image(), frame, "rgb8")

    def lines():
        return [
            json.loads(line) for line in listener.output().splitlines() if line.startswith("{")
        ]

    def complete(stamp) -> bool:
        topics = {
            m["topic"]
            for m in lines()
            if "header" in m["msg"] and key(m["msg"]["header"]) == stamp
        }
        return (
            len({"detections", "/humans/faces/tracked"} & topics) == 2
            and any(t.endswith("/roi") for t in topics)
            and any(t.endswith("/expression") for t in topics)
        )

    deadline, done = time.monotonic() + 60, None
    while done is None and time.monotonic() < deadline:
        msg.header.stamp = tester.get_clock().now().to_msg()
        pub.publish(msg)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            ros.spin_once(tester, timeout_sec=0.05)
        done = next((s for s in arrays if arrays[s].faces and complete(s)), None)
    tester.destroy_node()
    assert done is not None, node.output() + listener.output()

    array, outputs = (
        arrays[done],
        [m for m in lines() if "header" in m["msg"] and key(m["msg"]["header"]) == done],
    )
    face = array.faces[0]
    by_topic = {m["topic"]: m["msg"] for m in outputs}

    # vision_msgs/Detection2DArray: one detection per face, the image header, the box, every class.
    detections = by_topic["detections"]["detections"]
    assert len(detections) == len(array.faces) == 1
    det = detections[0]
    x, y, w, h = face.face.x_offset, face.face.y_offset, face.face.width, face.face.height
    assert det["id"] == str(face.face_id) and key(det["header"]) == done
    assert det["bbox"]["center"]["position"] == {"x": x + w / 2, "y": y + h / 2}
    assert (det["bbox"]["size_x"], det["bbox"]["size_y"]) == (w, h)
    hypotheses = [(r["hypothesis"]["class_id"], r["hypothesis"]["score"]) for r in det["results"]]
    expected = sorted(zip(face.labels, face.probabilities), key=lambda kv: -kv[1])
    assert [c for c, _ in hypotheses] == [c for c, _ in expected]
    assert [s for _, s in hypotheses] == pytest.approx([float(p) for _, p in expected], abs=1e-6)

    # vision_msgs/LabelInfo (transient local: a late listener still gets it).
    info = next(m["msg"] for m in lines() if m["topic"] == "label_info")
    assert [(c["class_id"], c["class_name"]) for c in info["class_map"]] == list(
        enumerate(face.labels)
    )

    # ROS4HRI: the tracked ids, the normalised box, the expression of the same frame.
    face_key = f"face{face.face_id}"
    assert by_topic["/humans/faces/tracked"]["ids"] == [face_key]
    roi = by_topic[f"/humans/faces/{face_key}/roi"]
    assert (roi["xmin"], roi["ymin"], roi["xmax"], roi["ymax"]) == pytest.approx(
        (x / 640, y / 480, (x + w) / 640, (y + h) / 480), abs=1e-6
    )
    expression = by_topic[f"/humans/faces/{face_key}/expression"]
    assert expression["expression"] == HRI[face.label]
    assert expression["confidence"] == pytest.approx(face.confidence, abs=1e-6)
    print(
        f"one frame, as ROS4HRI sees it: tracked {by_topic['/humans/faces/tracked']['ids']}, roi "
        f"{roi}, "
        f"expression {expression}"
    )
