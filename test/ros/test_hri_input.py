"""detector hri over real DDS: a process playing a ROS4HRI face detector publishes two tracked
faces and their cropped images; fer_node classifies them with its engine and answers on each face's
/humans/faces/<id>/expression and on emotion / emotions, every answer carrying its image's header.
Runs in the environment of the layer conftest's `ros_layer` builds (hri_msgs is not a wheel)."""

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]  # test/
NS = "hri_in"
HRI = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}


def stamps(output: str, key: str) -> list[dict]:
    return [
        json.loads(line) for line in output.splitlines() if line.startswith("{") and key in line
    ]


def test_faces_from_a_ros4hri_detector_get_expressions_under_their_ids(ros, ros_layer, spawn):
    from fer_ros.msg import EmotionStamped

    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--namespace",
        NS,
        "-p",
        "detector:=hri",
        "-p",
        "hri:=true",
        env=ros_layer.env,
        name="fer_node_hri",
    )
    listener = spawn(
        str(HERE / "processes" / "standard_listener.py"), NS, env=ros_layer.env, name="listener"
    )
    assert node.wait_for("listening on", timeout=120), node.output()
    assert (
        "/humans/faces/tracked" in node.output()
    )  # it subscribes to the tracked list, not a camera
    assert listener.wait_for("ready", timeout=60), listener.output()
    tester = ros.create_node("hri_tester")
    answers = []
    tester.create_subscription(EmotionStamped, f"/{NS}/emotion", answers.append, 50)
    detector = spawn(
        str(HERE / "processes" / "hri_face_detector.py"), "20", env=ros_layer.env, name="detector"
    )

    def expressions():
        return [
            m for m in stamps(listener.output(), '"topic"') if m["topic"].endswith("/expression")
        ]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        {"anna", "bob"} <= {a.header.frame_id[5:] for a in answers}
        and {m["topic"] for m in expressions()}
        >= {"/humans/faces/anna/expression", "/humans/faces/bob/expression"}
    ):
        ros.spin_once(tester, timeout_sec=0.1)
    tester.destroy_node()
    assert {a.header.frame_id for a in answers} >= {"face_anna", "face_bob"}, (
        node.output() + detector.output()
    )

    sent = {(s["sec"], s["nanosec"]): s["face"] for s in stamps(detector.output(), '"face"')}
    for answer in answers:  # every answer carries the header of the image it classified
        key = (answer.header.stamp.sec, answer.header.stamp.nanosec)
        assert sent.get(key) == answer.header.frame_id[5:], key
        assert (answer.face.width, answer.face.height) == (128, 138)  # the whole face image
        assert abs(sum(answer.probabilities) - 1) < 1e-4 and answer.label in answer.labels
        assert answer.model.startswith("fer2013_mit_b0_64@")
    ids = {a.header.frame_id: a.face_id for a in answers}
    assert (
        ids["face_anna"] != ids["face_bob"] and min(ids.values()) >= 1
    )  # one number per ROS4HRI id

    for m in expressions():
        face = m["topic"].split("/")[3]
        key = (m["msg"]["header"]["stamp"]["sec"], m["msg"]["header"]["stamp"]["nanosec"])
        assert sent.get(key) == face and m["msg"]["header"]["frame_id"] == f"face_{face}"
        assert m["msg"]["expression"] in HRI.values() and 0 < m["msg"]["confidence"] <= 1
    # The detector owns the tracked list and the rois: fer_node publishes neither in this mode.
    tracked = [
        m for m in stamps(listener.output(), '"topic"') if m["topic"] == "/humans/faces/tracked"
    ]
    assert tracked and all(m["msg"]["ids"] == ["anna", "bob"] for m in tracked)
    assert not any(m["topic"].endswith("/roi") for m in stamps(listener.output(), '"topic"'))


def followed(tester, namespace: str) -> set[str]:
    """The ROS4HRI ids whose face image fer_node subscribes to, as the graph shows them."""
    topics = tester.get_subscriber_names_and_types_by_node("fer_node", namespace)
    return {
        name.split("/")[3]
        for name, _ in topics
        if name.startswith("/humans/faces/") and name.endswith("/cropped")
    }


def graph_shows(ros, tester, namespace: str, want: set[str], timeout: float = 30.0) -> set[str]:
    """fer_node's followed ids once they are `want` (or at the deadline); never more than 4."""
    deadline, ids = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and ids != want:
        ros.spin_once(tester, timeout_sec=0.1)
        ids = followed(tester, namespace)
        assert len(ids) <= 4, sorted(ids)  # hri_max_faces, at every look
    return ids


def test_a_hostile_tracked_list_neither_stops_nor_swamps_the_node(ros, ros_layer, spawn):
    """Ids that cannot be topic names raised out of the spin (exit 1); 10,000 ids made the node
    deaf for minutes, even to SIGINT. Now they are refused and ignored, with a warning each, and
    the node answers on."""
    from rcl_interfaces.srv import GetParameters

    from fer_ros.msg import EmotionStamped

    ns, processes = "hri_hostile", HERE / "processes"
    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--namespace",
        ns,
        "-p",
        "detector:=hri",
        "-p",
        "hri_max_faces:=4",
        env=ros_layer.env,
        name="fer_node_hri_hostile",
    )
    assert node.wait_for("listening on", timeout=120), node.output()
    tester = ros.create_node("hri_hostile_tester")
    params = tester.create_client(GetParameters, f"/{ns}/fer_node/get_parameters")

    def answers_parameters() -> bool:
        future = params.call_async(GetParameters.Request(names=["hri_max_faces"]))
        ros.spin_until_future_complete(tester, future, timeout_sec=30)
        return future.done() and future.result().values[0].integer_value == 4

    assert params.wait_for_service(timeout_sec=30)
    bad = spawn(
        str(processes / "hri_hostile_detector.py"), "bad", "3", env=ros_layer.env, name="bad"
    )
    assert node.wait_for("refused 2 tracked face ids", timeout=60), node.output() + bad.output()
    assert "'1', 'bad id!'" in node.output()
    assert graph_shows(ros, tester, f"/{ns}", {"anna"}) == {"anna"}  # the good id is followed
    assert node.proc.poll() is None and answers_parameters(), node.output()
    assert bad.proc.wait(timeout=60) == 0, bad.output()

    many = spawn(
        str(processes / "hri_hostile_detector.py"), "many", "3", env=ros_layer.env, name="many"
    )
    assert many.wait_for("sent", timeout=60), many.output()
    ignored = "following 4 faces (hri_max_faces 4); ignored 9996 more tracked ids"
    assert node.wait_for(ignored, timeout=60), node.output()
    first = {"f0", "f1", "f2", "f3"}
    assert graph_shows(ros, tester, f"/{ns}", first) == first
    assert answers_parameters(), node.output()  # not deaf
    assert many.proc.wait(timeout=60) == 0, many.output()

    # A well-behaved detector afterwards is answered as ever.
    answers, both = [], {"face_anna", "face_bob"}
    tester.create_subscription(EmotionStamped, f"/{ns}/emotion", answers.append, 50)
    detector = spawn(
        str(processes / "hri_face_detector.py"), "20", env=ros_layer.env, name="detector"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not both <= {a.header.frame_id for a in answers}:
        ros.spin_once(tester, timeout_sec=0.1)
    tester.destroy_node()
    assert {a.header.frame_id for a in answers} >= both, node.output() + detector.output()
    assert node.stop() == 0, node.output()  # SIGINT heard, clean exit
    assert "Traceback" not in node.output() and "InvalidTopicName" not in node.output()


def test_a_detector_that_tracks_nobody_is_a_live_input(ros, ros_layer, spawn):
    """An empty tracked list is the detector saying "no one here": /diagnostics stays OK rather
    than "no frames received", and its hint about large frames (a matched camera that sends
    nothing) is never given for the tracked list, which is not an image. When the detector goes
    away, the staleness error comes, without that hint."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    ns = "hri_nobody"
    node = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--namespace",
        ns,
        "-p",
        "detector:=hri",
        "-p",
        "stale_after:=1.0",
        "-p",
        "diagnostics_period:=0.5",
        env=ros_layer.env,
        name="fer_node_hri_nobody",
    )
    assert node.wait_for("listening on", timeout=120), node.output()
    tester = ros.create_node("hri_nobody_tester")
    statuses = []

    def on_diagnostics(msg):
        statuses.extend(s for s in msg.status if s.name.startswith(f"/{ns}/fer_node:"))

    tester.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    detector = spawn(
        str(HERE / "processes" / "hri_face_detector.py"),
        "6",
        "nobody",
        env=ros_layer.env,
        name="nobody",
    )
    assert detector.wait_for("ready", timeout=60), detector.output()

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ros.spin_once(tester, timeout_sec=0.1)

    spin(2.0)  # the first list arrives and the node's view of the input settles
    statuses.clear()
    spin(3.0)
    assert statuses, node.output()
    assert all(s.level == DiagnosticStatus.OK for s in statuses), [s.message for s in statuses]
    assert detector.proc.wait(timeout=60) == 0, detector.output()
    statuses.clear()
    spin(3.0)
    tester.destroy_node()
    assert any("no frames received" in s.message for s in statuses), [s.message for s in statuses]
    assert "matched but no frame" not in node.output() + "".join(s.message for s in statuses)
    assert node.stop() == 0, node.output()


def test_an_exception_in_a_callback_is_logged_and_the_spin_goes_on(ros):
    """The node's executor edge: whatever a callback raises (but an external shutdown), the loop
    runs on."""
    from rclpy.executors import SingleThreadedExecutor

    from fer_ros.ros.process import spin_once

    node = ros.create_node("raising_callbacks")
    calls = []

    def tick():
        calls.append(1)
        raise RuntimeError("a peer's message nobody foresaw")

    timer = node.create_timer(0.01, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while len(calls) < 3:
            spin_once(executor, node)  # raised out of the spin before
    finally:
        node.destroy_timer(timer)
        executor.shutdown()
        node.destroy_node()


@pytest.mark.parametrize("detector", ["hri"])
def test_detector_hri_is_refused_outside_the_node(detector):
    from fer_ros.errors import ConfigError
    from fer_ros.inference.faces import DetectorOptions, make_detector

    with pytest.raises(ConfigError, match="only fer_node"):
        make_detector(DetectorOptions(detector=detector))
