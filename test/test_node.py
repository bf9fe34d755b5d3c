"""fer_node in its own process, driven over real Fast DDS: outputs, bad frames, parameters,
lifecycle, diagnostics, debug image, compressed input."""

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.model.checkpoint import checkpoint_id
from fer_ros.ros.images import fill_image
from fer_ros.labels import FER7
from fer_ros.msg import EmotionArray, EmotionStamped

NS = "node_test"


def astronaut_frame():
    face = cv2.resize(skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = face
    return frame


class Harness:
    """The test's side of the graph: camera publishers, result subscribers, service clients."""

    def __init__(self, ros, ns=NS):
        self.ros, self.ns = ros, ns
        self.node = ros.create_node("fer_node_tester", namespace=f"/{ns}_tester")
        self.image_pub = self.node.create_publisher(Image, f"/{ns}/camera", qos_profile_sensor_data)
        self.jpeg_pub = self.node.create_publisher(CompressedImage, f"/{ns}/camera/compressed",
                                                   qos_profile_sensor_data)
        self.arrays, self.primaries, self.diagnostics, self.debug = {}, {}, [], []
        self.node.create_subscription(EmotionArray, f"/{ns}/emotions", self.on_array, 50)
        self.node.create_subscription(EmotionStamped, f"/{ns}/emotion", self.on_primary, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.debug_sub = None
        self.params = self.node.create_client(SetParameters, f"/{ns}/fer_node/set_parameters")
        self.lifecycle = self.node.create_client(ChangeState, f"/{ns}/fer_node/change_state")
        self.next_sec = 1000

    @staticmethod
    def key(header):
        return header.stamp.sec, header.stamp.nanosec

    def on_array(self, msg):
        self.arrays[self.key(msg.header)] = msg

    def on_primary(self, msg):
        self.primaries[self.key(msg.header)] = msg

    def spin_until(self, condition, timeout=20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.ros.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def stamp(self) -> Time:
        self.next_sec += 1
        return Time(sec=self.next_sec, nanosec=123)

    def send(self, msg, compressed=False, repeat_until_answered=True, timeout=20.0):
        """Publish a frame (re-sending while unanswered: best-effort QoS may lose one)."""
        msg.header.stamp, msg.header.frame_id = self.stamp(), "test_camera"
        key = self.key(msg.header)
        pub = self.jpeg_pub if compressed else self.image_pub
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(msg)
            if not repeat_until_answered or self.spin_until(lambda: key in self.arrays, 1.0):
                break
        return key

    def call(self, client, request, timeout=20.0):
        assert client.wait_for_service(timeout)
        future = client.call_async(request)
        self.ros.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        return future.result()

    def status(self, since: float, timeout: float = 10.0):
        """The first diagnostics status of this harness's node published after `since` (monotonic)."""
        self.diagnostics.clear()
        found = []

        def fresh():
            for d in self.diagnostics:
                for s in d.status:
                    values = {kv.key: kv.value for kv in s.values}
                    if s.name == "fer_node: emotion recognition" and values.get("node") == f"/{self.ns}/fer_node" \
                            and time.monotonic() >= since:
                        found.append((s, values))
            return bool(found)

        assert self.spin_until(fresh, timeout), "no diagnostics from the node"
        return found[-1]

    def set_params(self, **values):
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        return self.call(self.params, request).results


@pytest.fixture(scope="module")
def fer_node(ros, small_checkpoint, tmp_path_factory):
    from fer_ros.tools.demo import Child

    log = tmp_path_factory.mktemp("node") / "fer_node.log"
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    child = Child("fer_node", [fer_ros, "run", "--checkpoint", str(small_checkpoint), "--namespace", NS,
                   "--image", f"/{NS}/camera", "-p", "detect_every:=1",
                   "-p", "diagnostics_period:=0.5"], log)
    assert child.wait_for("listening on", timeout=90), child.output()
    harness = Harness(ros)
    harness.child = child
    yield harness
    harness.node.destroy_node()
    assert child.stop() == 0, child.output()


def test_real_face_is_found_and_classified_with_the_frame_stamp(fer_node, small_checkpoint):
    key = fer_node.send(fill_image(Image(), astronaut_frame(), "bgr8"))
    assert key in fer_node.arrays, fer_node.child.output()
    array = fer_node.arrays[key]
    assert array.header.frame_id == "test_camera" and len(array.faces) == 1
    face = array.faces[0]
    assert fer_node.key(face.header) == key and face.header.frame_id == "test_camera"
    assert list(face.labels) == list(FER7)
    assert abs(sum(face.probabilities) - 1) < 1e-4
    assert face.label == FER7[int(np.argmax(face.probabilities))]
    assert face.confidence == pytest.approx(max(face.probabilities))
    cx, cy = face.face.x_offset + face.face.width / 2, face.face.y_offset + face.face.height / 2
    assert abs(cx - 290) < 30 and abs(cy - 106) < 30, face.face
    assert face.face_id >= 1 and face.model == checkpoint_id(small_checkpoint)
    assert face.processing_ms > 0 and face.latency_ms >= face.processing_ms
    assert fer_node.spin_until(lambda: key in fer_node.primaries, 5)
    assert fer_node.primaries[key].face == face.face


def test_frame_without_a_face_gives_an_empty_array_and_no_primary(fer_node):
    key = fer_node.send(fill_image(Image(), np.full((240, 320, 3), 90, np.uint8), "rgb8"))
    assert key in fer_node.arrays and fer_node.arrays[key].faces == []
    fer_node.spin_until(lambda: False, 0.5)
    assert key not in fer_node.primaries


def test_malformed_barrage_then_a_valid_frame_is_answered(fer_node):
    good = fill_image(Image(), astronaut_frame(), "rgb8")
    broken = []
    short = fill_image(Image(), astronaut_frame(), "rgb8")
    short.data = bytes(short.data)[:1000]
    broken.append(short)
    broken.append(Image(height=480, width=640, encoding="wavelet9", step=640, data=bytes(640 * 480)))
    broken.append(Image(height=0, width=0, encoding="rgb8", step=0))
    broken.append(Image(height=1, width=200000, encoding="rgb8", step=600000, data=bytes(10)))
    before = fer_node.child.output().count("dropped a frame")
    sent = [fer_node.send(msg, repeat_until_answered=False) for msg in broken * 5]
    key = fer_node.send(good)
    assert key in fer_node.arrays, fer_node.child.output()
    assert not any(k in fer_node.arrays for k in sent)
    assert fer_node.child.output().count("dropped a frame") > before
    assert fer_node.child.proc.poll() is None


def test_compressed_transport_takes_jpeg_and_png_and_drops_garbage(ros, small_checkpoint, spawn):
    """image_transport compressed: the node subscribes to image/compressed only."""
    ns = "node_test_jpeg"
    child = spawn(str(Path(sys.executable).parent / "fer-ros"), "run", "--checkpoint", str(small_checkpoint),
                  "--namespace", ns, "--image", f"/{ns}/camera", "-p", "image_transport:=compressed",
                  name="fer_node_jpeg")
    assert child.wait_for("listening on", timeout=90), child.output()
    assert f"/{ns}/camera/compressed" in child.output() and f"/{ns}/camera," not in child.output()
    harness = Harness(ros, ns)
    try:
        frame = cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR)
        for ext, fmt in ((".jpg", "jpeg"), (".png", "png")):
            msg = CompressedImage(format=fmt, data=cv2.imencode(ext, frame)[1].tobytes())
            key = harness.send(msg, compressed=True)
            assert key in harness.arrays and len(harness.arrays[key].faces) == 1, child.output()
            # Between the good frames (the graph is connected now): one that cannot be decoded.
            garbage = harness.send(CompressedImage(format="jpeg", data=b"\xff\xd8garbage"), compressed=True,
                                   repeat_until_answered=False)
            harness.spin_until(lambda: "dropped a frame" in child.output(), 5.0)
            assert garbage not in harness.arrays
        assert "dropped a frame" in child.output() and child.proc.poll() is None
    finally:
        harness.node.destroy_node()


def test_runtime_parameter_change_applies_and_bad_values_are_refused(fer_node):
    results = fer_node.set_params(confidence_threshold=1.0)
    assert results[0].successful
    key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
    assert fer_node.arrays[key].faces[0].label == "unknown"
    bad = fer_node.set_params(detector="magic")[0]
    assert not bad.successful and "detector must be one of" in bad.reason
    frozen = fer_node.set_params(checkpoint="/elsewhere.safetensors")[0]
    assert not frozen.successful and "configure" in frozen.reason
    out_of_range = fer_node.set_params(face_margin=5.0)[0]
    assert not out_of_range.successful
    # detector none: the whole frame is the face
    assert all(r.successful for r in fer_node.set_params(detector="none", confidence_threshold=0.0))
    crop = cv2.resize(astronaut_frame()[40:200, 210:370], (96, 96))
    key = fer_node.send(fill_image(Image(), crop, "rgb8"))
    face = fer_node.arrays[key].faces[0]
    assert (face.face.x_offset, face.face.y_offset, face.face.width, face.face.height) == (0, 0, 96, 96)
    assert face.label != "unknown"
    assert fer_node.set_params(detector="haar")[0].successful


def test_diagnostics_report_rates_latency_device_and_model(fer_node, small_checkpoint):
    fer_node.diagnostics.clear()
    assert fer_node.spin_until(lambda: any(s.name.endswith("emotion recognition") for d in fer_node.diagnostics
                                           for s in d.status), 10)
    status = next(s for d in fer_node.diagnostics for s in d.status if s.name.endswith("emotion recognition"))
    values = {kv.key: kv.value for kv in status.values}
    for key in ("input_rate_hz", "processed_rate_hz", "frames_dropped", "frames_bad", "latency_p50_ms",
                "latency_p95_ms", "detect_p50_ms", "classify_p50_ms", "device", "backend", "model"):
        assert key in values, key
    assert values["device"] == "cpu" and values["model"] == checkpoint_id(small_checkpoint)
    assert int(values["frames_processed"]) >= 3 and int(values["frames_bad"]) >= 1


def test_debug_image_is_published_only_to_subscribers(fer_node):
    received = []
    sub = fer_node.node.create_subscription(Image, f"/{NS}/fer_node/debug_image", received.append,
                                            qos_profile_sensor_data)
    assert fer_node.spin_until(lambda: fer_node.node.count_publishers(f"/{NS}/fer_node/debug_image") > 0, 5)
    fer_node.spin_until(lambda: False, 1.0)  # let the node see the subscription
    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        fer_node.spin_until(lambda: bool(received), 1.0)
    fer_node.node.destroy_subscription(sub)
    assert received and received[0].encoding == "rgb8" and (received[0].height, received[0].width) == (480, 640)
    annotated = np.frombuffer(received[0].data, np.uint8).reshape(480, 640, 3)
    assert not np.array_equal(annotated, astronaut_frame())  # a box was drawn


def test_deactivate_stops_answering_and_activate_resumes(fer_node):
    change = fer_node.lifecycle
    result = fer_node.call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
    assert result.success
    key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"), repeat_until_answered=False)
    fer_node.spin_until(lambda: False, 1.5)
    assert key not in fer_node.arrays
    result = fer_node.call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)))
    assert result.success
    key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
    assert key in fer_node.arrays


def test_face_id_is_stable_across_frames(fer_node):
    ids = []
    for _ in range(3):
        key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        ids.append(fer_node.arrays[key].faces[0].face_id)
    assert len(set(ids)) == 1 and ids[0] >= 1


def test_max_rate_caps_the_processed_rate(fer_node):
    assert fer_node.set_params(max_rate=2.0)[0].successful
    try:
        frame = fill_image(Image(), cv2.resize(astronaut_frame(), (160, 120)), "rgb8")
        fer_node.spin_until(lambda: False, 0.6)
        sent = []
        start = time.monotonic()
        while time.monotonic() - start < 3.0:  # 20 Hz for 3 s
            sent.append(fer_node.send(frame, repeat_until_answered=False))
            fer_node.spin_until(lambda: False, 0.05)
        fer_node.spin_until(lambda: False, 1.0)
        answered = sum(k in fer_node.arrays for k in sent)
        assert 3 <= answered <= 9, f"{answered} of {len(sent)} frames answered at max_rate 2"
    finally:
        assert fer_node.set_params(max_rate=0.0)[0].successful


def test_diagnostics_error_when_no_frames_arrive_and_warn_on_rate_and_latency(fer_node):
    from diagnostic_msgs.msg import DiagnosticStatus

    try:
        assert fer_node.set_params(stale_after=1.0)[0].successful
        fer_node.spin_until(lambda: False, 1.6)  # nothing sent for longer than stale_after
        status, _ = fer_node.status(time.monotonic())
        assert status.level == DiagnosticStatus.ERROR and "no frames received for" in status.message, status
        # Frames flowing again, but slower than expected and later than allowed.
        assert all(r.successful for r in fer_node.set_params(expected_rate=500.0, max_latency_ms=0.001))
        for _ in range(3):
            fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        status, values = fer_node.status(time.monotonic())
        assert status.level == DiagnosticStatus.WARN, status
        assert "below the expected 500 Hz" in status.message and "latency p95" in status.message, status
        assert "no frames received" not in status.message
        assert status.hardware_id == "cpu" and values["node"] == f"/{NS}/fer_node"
    finally:
        assert all(r.successful for r in fer_node.set_params(stale_after=5.0, expected_rate=0.0, max_latency_ms=0.0))


def test_diagnostics_from_construction_and_a_failed_configure_is_an_error(ros, spawn, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    ns = "node_test_broken"
    child = spawn(str(Path(sys.executable).parent / "fer-ros"), "run", "--namespace", ns, "-p", "autostart:=false",
                  "-p", f"checkpoint:={tmp_path / 'missing.safetensors'}", "-p", "diagnostics_period:=0.3",
                  name="fer_node_broken")
    harness = Harness(ros, ns)
    try:
        status, _ = harness.status(time.monotonic(), timeout=60)  # unconfigured, yet reporting
        assert status.level == DiagnosticStatus.WARN and status.message == "inactive", child.output()
        result = harness.call(harness.lifecycle, ChangeState.Request(
            transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
        assert not result.success
        status, _ = harness.status(time.monotonic())
        assert status.level == DiagnosticStatus.ERROR, status
        assert status.message.startswith("configure failed: checkpoint not found"), status.message
        assert child.proc.poll() is None  # without autostart the node stays up, reporting why
    finally:
        harness.node.destroy_node()
