"""detector hri over real DDS: a process playing a ROS4HRI face detector publishes two tracked faces and
their cropped images; fer_node classifies them with its engine and answers on each face's
/humans/faces/<id>/expression and on emotion / emotions, every answer carrying its image's header.
Runs in the environment of the layer conftest's `ros_layer` builds (hri_msgs is not a wheel)."""

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]  # test/
NS = "hri_in"
HRI = {"angry": "angry", "disgust": "disgusted", "fear": "scared", "happy": "happy", "sad": "sad",
       "surprise": "surprised", "neutral": "neutral"}


def stamps(output: str, key: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and key in line]


def test_faces_from_a_ros4hri_detector_get_expressions_under_their_ids(ros, ros_layer, spawn):
    from fer_ros.msg import EmotionStamped

    node = spawn(str(Path(sys.executable).parent / "fer-ros"), "run", "--namespace", NS, "-p", "detector:=hri",
                 "-p", "hri:=true", env=ros_layer.env, name="fer_node_hri")
    listener = spawn(str(HERE / "processes" / "standard_listener.py"), NS, env=ros_layer.env, name="listener")
    assert node.wait_for("listening on", timeout=120), node.output()
    assert "/humans/faces/tracked" in node.output()  # it subscribes to the tracked list, not a camera
    assert listener.wait_for("ready", timeout=60), listener.output()
    tester = ros.create_node("hri_tester")
    answers = []
    tester.create_subscription(EmotionStamped, f"/{NS}/emotion", answers.append, 50)
    detector = spawn(str(HERE / "processes" / "hri_face_detector.py"), "20", env=ros_layer.env, name="detector")

    def expressions():
        return [m for m in stamps(listener.output(), '"topic"') if m["topic"].endswith("/expression")]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ({"anna", "bob"} <= {a.header.frame_id[5:] for a in answers}
                                               and {m["topic"] for m in expressions()} >= {
                                                   "/humans/faces/anna/expression", "/humans/faces/bob/expression"}):
        ros.spin_once(tester, timeout_sec=0.1)
    tester.destroy_node()
    assert {a.header.frame_id for a in answers} >= {"face_anna", "face_bob"}, node.output() + detector.output()

    sent = {(s["sec"], s["nanosec"]): s["face"] for s in stamps(detector.output(), '"face"')}
    for answer in answers:  # every answer carries the header of the image it classified
        key = (answer.header.stamp.sec, answer.header.stamp.nanosec)
        assert sent.get(key) == answer.header.frame_id[5:], key
        assert (answer.face.width, answer.face.height) == (128, 138)  # the whole face image
        assert abs(sum(answer.probabilities) - 1) < 1e-4 and answer.label in answer.labels
        assert answer.model.startswith("fer2013_mit_b0_64@")
    ids = {a.header.frame_id: a.face_id for a in answers}
    assert ids["face_anna"] != ids["face_bob"] and min(ids.values()) >= 1  # one number per ROS4HRI id

    for m in expressions():
        face = m["topic"].split("/")[3]
        key = (m["msg"]["header"]["stamp"]["sec"], m["msg"]["header"]["stamp"]["nanosec"])
        assert sent.get(key) == face and m["msg"]["header"]["frame_id"] == f"face_{face}"
        assert m["msg"]["expression"] in HRI.values() and 0 < m["msg"]["confidence"] <= 1
    # The detector owns the tracked list and the rois: fer_node publishes neither in this mode.
    tracked = [m for m in stamps(listener.output(), '"topic"') if m["topic"] == "/humans/faces/tracked"]
    assert tracked and all(m["msg"]["ids"] == ["anna", "bob"] for m in tracked)
    assert not any(m["topic"].endswith("/roi") for m in stamps(listener.output(), '"topic"'))


@pytest.mark.parametrize("detector", ["hri"])
def test_detector_hri_is_refused_outside_the_node(detector):
    from fer_ros.errors import ConfigError
    from fer_ros.inference.faces import DetectorOptions, make_detector

    with pytest.raises(ConfigError, match="only fer_node"):
        make_detector(DetectorOptions(detector=detector))
