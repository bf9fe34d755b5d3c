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

    def __init__(self, ros):
        self.ros = ros
        self.node = ros.create_node("fer_node_tester")
        self.image_pub = self.node.create_publisher(Image, f"/{NS}/camera", qos_profile_sensor_data)
        self.jpeg_pub = self.node.create_publisher(CompressedImage, f"/{NS}/camera/compressed",
                                                   qos_profile_sensor_data)
        self.arrays, self.primaries, self.diagnostics, self.debug = {}, {}, [], []
        self.node.create_subscription(EmotionArray, f"/{NS}/emotions", self.on_array, 50)
        self.node.create_subscription(EmotionStamped, f"/{NS}/emotion", self.on_primary, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.debug_sub = None
        self.params = self.node.create_client(SetParameters, f"/{NS}/fer_node/set_parameters")
        self.lifecycle = self.node.create_client(ChangeState, f"/{NS}/fer_node/change_state")
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
                   "--image", f"/{NS}/camera", "-p", "use_compressed:=true", "-p", "detect_every:=1",
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
    for _ in range(20):  # the bad frames are not answered, the node keeps running
        fer_node.jpeg_pub.publish(CompressedImage(format="jpeg", data=b"\xff\xd8garbage"))
    key = fer_node.send(good)
    assert key in fer_node.arrays, fer_node.child.output()
    assert not any(k in fer_node.arrays for k in sent)
    assert fer_node.child.output().count("dropped a frame") > before
    assert fer_node.child.proc.poll() is None


def test_compressed_jpeg_frames_are_answered(fer_node):
    frame = cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR)
    msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", frame)[1].tobytes())
    key = fer_node.send(msg, compressed=True)
    assert key in fer_node.arrays and len(fer_node.arrays[key].faces) == 1


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
