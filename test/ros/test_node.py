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
from hostile import png_bomb
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from fer_ros.labels import FER7
from fer_ros.model.checkpoint import checkpoint_id
from fer_ros.msg import EmotionArray, EmotionStamped
from fer_ros.ros.images import fill_image

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
        self.image_pub = self.node.create_publisher(
            Image, f"/{ns}/camera", qos_profile_sensor_data
        )
        self.jpeg_pub = self.node.create_publisher(
            CompressedImage, f"/{ns}/camera/compressed", qos_profile_sensor_data
        )
        self.arrays, self.primaries, self.diagnostics, self.debug = {}, {}, [], []
        self.node.create_subscription(EmotionArray, f"/{ns}/emotions", self.on_array, 50)
        self.node.create_subscription(EmotionStamped, f"/{ns}/emotion", self.on_primary, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.debug_sub = None
        self.params = self.node.create_client(SetParameters, f"/{ns}/fer_node/set_parameters")
        self.get_params = self.node.create_client(GetParameters, f"/{ns}/fer_node/get_parameters")
        self.lifecycle = self.node.create_client(ChangeState, f"/{ns}/fer_node/change_state")
        self.state = self.node.create_client(GetState, f"/{ns}/fer_node/get_state")

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
        """Now on this process's clock (the node's clock too: one machine), so latency_ms is
        real."""
        return self.node.get_clock().now().to_msg()

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

    def call(self, client, request, timeout=20.0, retry=False):
        """One service call. `retry` (idempotent requests only): ask again every 5 s, because right
        after discovery a server can answer before it has matched our reply reader and the reply
        is lost."""
        assert client.wait_for_service(timeout)
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            wait = min(5.0, deadline - time.monotonic()) if retry else timeout
            self.ros.spin_until_future_complete(self.node, future, timeout_sec=wait)
            if future.result() is not None or not retry or time.monotonic() >= deadline:
                return future.result()

    def status(self, since: float, timeout: float = 10.0):
        """The first diagnostics status of this harness's node published after `since`
        (monotonic)."""
        self.diagnostics.clear()
        found = []

        def fresh():
            for d in self.diagnostics:
                for s in d.status:
                    values = {kv.key: kv.value for kv in s.values}
                    # Named by the fully qualified node name: two namespaces, two statuses.
                    if (
                        s.name == f"/{self.ns}/fer_node: emotion recognition"
                        and values.get("node") == f"/{self.ns}/fer_node"
                        and time.monotonic() >= since
                    ):
                        found.append((s, values))
            return bool(found)

        assert self.spin_until(fresh, timeout), "no diagnostics from the node"
        return found[-1]

    def lifecycle_state(self) -> str:
        return self.call(self.state, GetState.Request(), retry=True).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self.call(
            self.lifecycle, ChangeState.Request(transition=Transition(id=transition_id))
        ).success

    def values(self) -> dict:
        """The node's diagnostics values, from a status published after this call."""
        return self.status(time.monotonic())[1]

    def set_params(self, **values):
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        return self.call(self.params, request, retry=True).results

    def param_values(self, *names):
        """What `ros2 param get` says, as Python values."""
        reply = self.call(self.get_params, GetParameters.Request(names=list(names)), retry=True)
        return [parameter_value_to_python(v) for v in reply.values]


@pytest.fixture(scope="module")
def fer_node(ros, small_checkpoint, tmp_path_factory):
    from fer_ros.tools.demo import Child

    log = tmp_path_factory.mktemp("node") / "fer_node.log"
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    child = Child(
        "fer_node",
        [
            fer_ros,
            "run",
            "--checkpoint",
            str(small_checkpoint),
            "--namespace",
            NS,
            "--image",
            f"/{NS}/camera",
            "-p",
            "detect_every:=1",
            "-p",
            "diagnostics_period:=0.5",
        ],
        log,
    )
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
    # Stamped on the same clock: the latency is the real age of the result, not a stamp artefact.
    assert 0 < face.processing_ms <= face.latency_ms < 5000, (face.processing_ms, face.latency_ms)
    assert fer_node.spin_until(lambda: key in fer_node.primaries, 5)
    assert fer_node.primaries[key].face == face.face


def test_frame_without_a_face_gives_an_empty_array_and_no_primary(fer_node):
    key = fer_node.send(fill_image(Image(), np.full((240, 320, 3), 90, np.uint8), "rgb8"))
    assert key in fer_node.arrays and fer_node.arrays[key].faces == []
    # The next frame's primary is published after the empty frame's would have been: a barrier.
    after = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
    assert fer_node.spin_until(lambda: after in fer_node.primaries, 10)
    assert key not in fer_node.primaries


def test_each_kind_of_malformed_frame_is_counted_and_the_node_goes_on(fer_node):
    from diagnostic_msgs.msg import DiagnosticStatus

    short = fill_image(Image(), astronaut_frame(), "rgb8")
    short.data = bytes(short.data)[:1000]
    broken = {
        "short data": short,
        "unknown encoding": Image(
            height=480, width=640, encoding="wavelet9", step=640, data=bytes(640 * 480)
        ),
        "zero size": Image(height=0, width=0, encoding="rgb8", step=0),
        "absurd size": Image(height=1, width=200000, encoding="rgb8", step=600000, data=bytes(10)),
    }
    good = fill_image(Image(), astronaut_frame(), "rgb8")
    for kind, msg in broken.items():
        before = fer_node.values()
        bad_key = fer_node.send(msg, repeat_until_answered=False)
        # Proven rejected (not replaced in the mailbox): the bad counter moves before the next
        # frame.
        seen = []
        assert fer_node.spin_until(
            lambda: (
                seen.append(fer_node.status(time.monotonic()))
                or int(seen[-1][1]["frames_bad"]) > int(before["frames_bad"])
            ),
            20,
        ), kind
        status, after = seen[-1]
        assert int(after["frames_bad"]) == int(before["frames_bad"]) + 1, kind
        assert int(after["frames_dropped"]) == int(before["frames_dropped"]), kind
        assert status.level == DiagnosticStatus.WARN and "malformed" in status.message, (
            kind,
            status,
        )
        barrier = fer_node.send(good)  # answered: the node went on
        assert barrier in fer_node.arrays and bad_key not in fer_node.arrays, kind
    assert fer_node.child.proc.poll() is None


def test_compressed_transport_takes_jpeg_and_png_and_drops_garbage(ros, small_checkpoint, spawn):
    """image_transport compressed: the node subscribes to image/compressed only."""
    ns = "node_test_jpeg"
    child = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        "-p",
        "image_transport:=compressed",
        name="fer_node_jpeg",
    )
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
            garbage = harness.send(
                CompressedImage(format="jpeg", data=b"\xff\xd8garbage"),
                compressed=True,
                repeat_until_answered=False,
            )
            harness.spin_until(lambda: "dropped a frame" in child.output(), 5.0)
            assert garbage not in harness.arrays
        assert "dropped a frame" in child.output() and child.proc.poll() is None
    finally:
        harness.node.destroy_node()


def test_runtime_parameter_change_applies_and_bad_values_are_refused(fer_node):
    try:
        assert fer_node.set_params(confidence_threshold=1.0)[0].successful
        key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        assert fer_node.arrays[key].faces[0].label == "unknown"
        bad = fer_node.set_params(detector="magic")[0]
        assert not bad.successful and "detector must be one of" in bad.reason
        frozen = fer_node.set_params(checkpoint="/elsewhere.safetensors")[0]
        assert not frozen.successful and "configure" in frozen.reason
        out_of_range = fer_node.set_params(face_margin=5.0)[0]
        assert not out_of_range.successful
        # detector none: the whole frame is the face
        assert all(
            r.successful for r in fer_node.set_params(detector="none", confidence_threshold=0.0)
        )
        crop = cv2.resize(astronaut_frame()[40:200, 210:370], (96, 96))
        key = fer_node.send(fill_image(Image(), crop, "rgb8"))
        face = fer_node.arrays[key].faces[0]
        assert (face.face.x_offset, face.face.y_offset, face.face.width, face.face.height) == (
            0,
            0,
            96,
            96,
        )
        assert face.label != "unknown"
    finally:
        assert all(
            r.successful for r in fer_node.set_params(detector="haar", confidence_threshold=0.0)
        )


def test_diagnostics_report_rates_latency_device_and_model(fer_node, small_checkpoint):
    before = fer_node.values()
    fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
    status, values = fer_node.status(time.monotonic())
    for key in (
        "input_rate_hz",
        "processed_rate_hz",
        "frames_dropped",
        "frames_bad",
        "frames_stale",
        "latency_p50_ms",
        "latency_p95_ms",
        "detect_p50_ms",
        "classify_p50_ms",
        "device",
        "backend",
        "model",
    ):
        assert key in values, key
    assert values["device"] == "cpu" and values["model"] == checkpoint_id(small_checkpoint)
    assert values["backend"] == "onnxruntime"
    assert int(values["frames_processed"]) > int(before["frames_processed"])
    assert float(values["latency_p50_ms"]) > 0 and float(values["classify_p50_ms"]) > 0


def test_debug_image_is_published_only_to_subscribers_and_only_draws_the_box(fer_node):
    frame = astronaut_frame()
    before = int(fer_node.values()["debug_images"])
    for _ in range(3):
        fer_node.send(fill_image(Image(), frame, "rgb8"))
    assert (
        int(fer_node.values()["debug_images"]) == before
    )  # nobody listens: nothing drawn or sent
    received = []
    sub = fer_node.node.create_subscription(
        Image, f"/{NS}/fer_node/debug_image", received.append, qos_profile_sensor_data
    )
    try:
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            key = fer_node.send(fill_image(Image(), frame, "rgb8"))
            fer_node.spin_until(lambda: bool(received), 1.0)
    finally:
        fer_node.node.destroy_subscription(sub)
    assert (
        received
        and received[0].encoding == "rgb8"
        and (received[0].height, received[0].width) == (480, 640)
    )
    assert int(fer_node.values()["debug_images"]) > before
    annotated = np.frombuffer(received[-1].data, np.uint8).reshape(480, 640, 3)
    face = fer_node.arrays[key].faces[0]
    box = face.face
    x0, y0, x1, y1 = (
        box.x_offset,
        box.y_offset,
        box.x_offset + box.width,
        box.y_offset + box.height,
    )
    changed = np.any(annotated != frame, axis=2)
    # Only the box's 2-pixel border and the label above it are drawn: elsewhere, the frame as sent.
    (text_w, text_h), _ = cv2.getTextSize(
        f"#{face.face_id} {face.label} {face.confidence:.2f}", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    )
    near = np.zeros_like(changed)
    near[max(0, y0 - 3) : y1 + 4, max(0, x0 - 3) : x1 + 4] = True
    near[max(0, y0 - 8 - text_h) : y0 + 1, max(0, x0 - 1) : x0 + text_w + 3] = True
    assert not changed[~near].any()
    assert (
        changed[y0 : y1 + 1, x0].all() and changed[y1, x0 : x1 + 1].all()
    )  # the left and bottom edges
    assert not changed[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].any()  # the face itself untouched


def test_deactivate_stops_answering_and_activate_resumes(fer_node):
    from diagnostic_msgs.msg import DiagnosticStatus

    assert fer_node.transition(Transition.TRANSITION_DEACTIVATE)
    try:
        assert fer_node.lifecycle_state() == "inactive"
        sent = []
        deadline = time.monotonic() + 3.0
        while (
            time.monotonic() < deadline or len(sent) < 10
        ):  # 3 s and 10 frames at least, none answered
            sent.append(
                fer_node.send(
                    fill_image(Image(), astronaut_frame(), "rgb8"), repeat_until_answered=False
                )
            )
            fer_node.spin_until(lambda: False, 0.1)
        assert len(sent) > 10 and not any(k in fer_node.arrays for k in sent)
        status, _ = fer_node.status(time.monotonic())
        assert status.level == DiagnosticStatus.WARN and status.message == "inactive"
    finally:
        assert fer_node.transition(Transition.TRANSITION_ACTIVATE)
    assert fer_node.lifecycle_state() == "active"
    key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
    assert key in fer_node.arrays


def test_face_id_is_stable_across_frames(fer_node):
    ids = []
    for _ in range(3):
        key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        ids.append(fer_node.arrays[key].faces[0].face_id)
    assert len(set(ids)) == 1 and ids[0] >= 1


def test_max_rate_is_applied_by_the_node(fer_node):
    """A live max_rate change holds the next frame back: with 0.5 frames/s, a frame that arrives
    right after an answer waits about 2 s in the mailbox (a lower bound: load can only add to
    it)."""
    assert fer_node.set_params(max_rate=0.5)[0].successful
    try:
        for _ in range(3):
            fer_node.send(
                fill_image(Image(), astronaut_frame(), "rgb8")
            )  # answered: the 2 s interval starts
            held = fill_image(Image(), astronaut_frame(), "rgb8")
            second = fer_node.send(held, repeat_until_answered=False)
            for _ in range(
                2
            ):  # best effort may lose a copy; copies of one frame replace each other while held
                time.sleep(0.01)
                fer_node.image_pub.publish(held)
            if fer_node.spin_until(lambda: second in fer_node.arrays, 15):
                break
        assert second in fer_node.arrays, "the held frame was not answered"
        assert fer_node.arrays[second].faces[0].processing_ms >= 1000
    finally:
        assert fer_node.set_params(max_rate=0.0)[0].successful


def test_diagnostics_error_when_no_frames_arrive_and_warn_on_rate_and_latency(fer_node):
    from diagnostic_msgs.msg import DiagnosticStatus

    try:
        assert fer_node.set_params(stale_after=1.0)[0].successful
        fer_node.spin_until(lambda: False, 1.6)  # nothing sent for longer than stale_after
        status, _ = fer_node.status(time.monotonic())
        assert (
            status.level == DiagnosticStatus.ERROR and "no frames received for" in status.message
        ), status
        # The harness's camera publisher is matched: the message says why frames may not arrive.
        assert "1 publisher(s) matched but no frame arrived" in status.message, status.message
        assert (
            "qos_reliability best_effort" in status.message
            and "fastdds_large_images.xml" in status.message
        )
        assert "publisher(s) matched but no frame arrived" in fer_node.child.output()
        # Frames flowing again, but slower than expected and later than allowed.
        assert all(
            r.successful for r in fer_node.set_params(expected_rate=500.0, max_latency_ms=0.001)
        )
        for _ in range(3):
            fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        status, values = fer_node.status(time.monotonic())
        assert status.level == DiagnosticStatus.WARN, status
        assert "below the expected 500 Hz" in status.message and "latency p95" in status.message, (
            status
        )
        assert "no frames received" not in status.message
        assert status.hardware_id == "cpu" and values["node"] == f"/{NS}/fer_node"
    finally:
        assert all(
            r.successful
            for r in fer_node.set_params(stale_after=5.0, expected_rate=0.0, max_latency_ms=0.0)
        )


def test_diagnostics_from_construction_and_a_failed_configure_is_an_error(ros, spawn, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    ns = "node_test_broken"
    child = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--namespace",
        ns,
        "-p",
        "autostart:=false",
        "-p",
        f"checkpoint:={tmp_path / 'missing.safetensors'}",
        "-p",
        "diagnostics_period:=0.3",
        name="fer_node_broken",
    )
    harness = Harness(ros, ns)
    try:
        status, _ = harness.status(time.monotonic(), timeout=60)  # unconfigured, yet reporting
        assert status.level == DiagnosticStatus.WARN and status.message == "inactive", (
            child.output()
        )
        result = harness.call(
            harness.lifecycle,
            ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)),
        )
        assert not result.success
        status, _ = harness.status(time.monotonic())
        assert status.level == DiagnosticStatus.ERROR, status
        assert status.message.startswith("configure failed: checkpoint not found"), status.message
        assert child.proc.poll() is None  # without autostart the node stays up, reporting why
    finally:
        harness.node.destroy_node()


def test_lifecycle_without_autostart_configure_activate_deactivate_cleanup(
    ros, spawn, small_checkpoint
):
    ns = "node_test_lifecycle"
    child = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        "-p",
        "autostart:=false",
        name="fer_node_lifecycle",
    )
    harness = Harness(ros, ns)
    try:
        assert harness.lifecycle_state() == "unconfigured"
        assert (
            harness.node.count_publishers(f"/{ns}/emotions") == 0
            and "loaded" not in child.output()
        )
        assert (
            harness.transition(Transition.TRANSITION_CONFIGURE)
            and harness.lifecycle_state() == "inactive"
        )
        assert harness.spin_until(
            lambda: harness.node.count_publishers(f"/{ns}/emotions") == 1, 10
        )
        assert (
            harness.transition(Transition.TRANSITION_ACTIVATE)
            and harness.lifecycle_state() == "active"
        )
        key = harness.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        assert key in harness.arrays
        assert (
            harness.transition(Transition.TRANSITION_DEACTIVATE)
            and harness.lifecycle_state() == "inactive"
        )
        assert (
            harness.transition(Transition.TRANSITION_CLEANUP)
            and harness.lifecycle_state() == "unconfigured"
        )
        # Cleanup freed the model and withdrew the outputs.
        assert harness.spin_until(
            lambda: harness.node.count_publishers(f"/{ns}/emotions") == 0, 10
        )
        assert child.proc.poll() is None
    finally:
        harness.node.destroy_node()


def test_whole_numbers_for_float_parameters_and_a_bad_value_is_one_line(ros, spawn):
    """`-p max_age_ms:=150` (an INTEGER to rclpy) is taken as 150.0; an out-of-range value on the
    command line ends the node with one line and exit code 2, not a traceback."""
    import subprocess

    from rcl_interfaces.srv import GetParameters

    fer_node = str(Path(sys.executable).parent / "fer_node")
    bad = subprocess.run(
        [
            sys.executable,
            fer_node,
            "--ros-args",
            "-r",
            "__ns:=/badparam",
            "-p",
            "detect_scale:=5.0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr and bad.stderr.strip().splitlines()[-1].startswith(
        "fer_node: "
    )
    assert "detect_scale" in bad.stderr.strip().splitlines()[-1]
    node = spawn(
        fer_node,
        "--ros-args",
        "-r",
        "__ns:=/intparam",
        "-p",
        "max_age_ms:=150",
        "-p",
        "autostart:=false",
        name="fer_node",
    )
    tester = ros.create_node("intparam_tester")
    try:
        client = tester.create_client(GetParameters, "/intparam/fer_node/get_parameters")
        assert client.wait_for_service(timeout_sec=60), node.output()
        reply, deadline = None, time.monotonic() + 60
        while (
            reply is None and time.monotonic() < deadline
        ):  # a service call can be lost while discovery settles
            future = client.call_async(GetParameters.Request(names=["max_age_ms"]))
            ros.spin_until_future_complete(tester, future, timeout_sec=5)
            reply = future.result()
        assert reply is not None, node.output()
        (value,) = reply.values
        assert value.double_value == 150.0 and value.type == Parameter.Type.DOUBLE.value
    finally:
        tester.destroy_node()


def test_a_live_change_that_cannot_be_applied_is_refused_and_the_node_keeps_its_state(fer_node):
    """yunet_model pointing nowhere is harmless while another detector runs; switching to yunet
    then cannot work and is refused with the reason (it used to succeed, and every later change
    was silently dropped). The node keeps running what `param get` says, and takes later
    changes."""
    detector = fer_node.param_values("detector")[0]
    try:
        assert fer_node.set_params(yunet_model="/nonexistent.onnx")[0].successful
        refused = fer_node.set_params(detector="yunet")[0]
        assert (
            not refused.successful
            and "yunet_model" in refused.reason
            and "/nonexistent.onnx" in refused.reason
        )
        assert fer_node.param_values("detector") == [detector]
        key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        assert len(fer_node.arrays[key].faces) == 1  # still the previous detector
        assert fer_node.set_params(confidence_threshold=1.0)[
            0
        ].successful  # a later change applies
        key = fer_node.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        assert fer_node.arrays[key].faces[0].label == "unknown"
        assert "keeping the previous pipeline" not in fer_node.child.output()
    finally:
        assert all(
            r.successful for r in fer_node.set_params(yunet_model="", confidence_threshold=0.0)
        )


def test_a_whole_number_for_a_float_parameter_is_taken_at_run_time(fer_node):
    """`ros2 param set /fer_node max_age_ms 150` sends an INTEGER: taken as 150.0, as at
    start-up."""
    request = SetParameters.Request(
        parameters=[
            Parameter("max_age_ms", value=150).to_parameter_msg(),
            Parameter("max_rate", value=0).to_parameter_msg(),
        ]
    )
    assert request.parameters[0].value.type == Parameter.Type.INTEGER.value
    try:
        results = fer_node.call(fer_node.params, request, retry=True).results
        assert all(r.successful for r in results), [r.reason for r in results]
        assert fer_node.param_values("max_age_ms", "max_rate") == [150.0, 0.0]
        assert type(fer_node.param_values("max_age_ms")[0]) is float
        refused = fer_node.set_params(max_age_ms="150")[0]  # a string is still no number
        assert not refused.successful
    finally:
        assert fer_node.set_params(max_age_ms=0.0)[0].successful


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_png_bomb_over_dds_is_refused_before_decoding_and_the_next_face_answered(
    ros, small_checkpoint, spawn
):
    """A 16000x16000 PNG of a few hundred KB on image/compressed: refused from its header (the node
    used to decode it: over a gigabyte), counted as bad, the peak memory of the node bounded; a PPM
    labelled jpeg is refused too; the next real face is answered."""
    ns = "node_test_bomb"
    child = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        "-p",
        "image_transport:=compressed",
        "-p",
        "diagnostics_period:=0.5",
        name="fer_node_bomb",
    )
    assert child.wait_for("listening on", timeout=90), child.output()
    harness = Harness(ros, ns)
    try:
        frame = cv2.cvtColor(astronaut_frame(), cv2.COLOR_RGB2BGR)
        face = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", frame)[1].tobytes())
        assert harness.send(face, compressed=True) in harness.arrays
        before, peak = int(harness.values()["frames_bad"]), peak_rss_mb(child.proc.pid)
        bad = {
            "bomb": CompressedImage(format="png", data=png_bomb(16000, 16000)),
            "ppm": CompressedImage(format="jpeg", data=cv2.imencode(".ppm", frame)[1].tobytes()),
        }
        for kind, msg in bad.items():
            key = harness.send(msg, compressed=True, repeat_until_answered=False)
            assert harness.spin_until(lambda: int(harness.values()["frames_bad"]) > before, 20), (
                kind
            )
            before += 1
            assert (
                harness.send(face, compressed=True) in harness.arrays and key not in harness.arrays
            ), kind
        output = child.output()
        assert "16000x16000" in output and "max_pixels" in output, (
            output
        )  # (the PPM's line is throttled)
        assert peak_rss_mb(child.proc.pid) - peak < 300, "the bomb cost the node memory"
        assert child.proc.poll() is None
    finally:
        harness.node.destroy_node()


def test_sim_time_without_a_clock_measures_the_nodes_work_and_says_so(
    ros, small_checkpoint, spawn
):
    """use_sim_time and no /clock: the node's time is 0. processing_ms is measured on the steady
    clock, latency_ms is NaN (unknown, not -1.8e12), max_age_ms drops nothing, diagnostics are
    published (their timer runs on the steady clock) and say that the clock has not started."""
    from diagnostic_msgs.msg import DiagnosticStatus

    ns = "node_test_simtime"
    child = spawn(
        str(Path(sys.executable).parent / "fer-ros"),
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--namespace",
        ns,
        "--image",
        f"/{ns}/camera",
        "-p",
        "use_sim_time:=true",
        "-p",
        "max_age_ms:=50",
        "-p",
        "diagnostics_period:=0.5",
        name="fer_node_simtime",
    )
    assert child.wait_for("listening on", timeout=90), child.output()
    harness = Harness(ros, ns)
    try:
        key = harness.send(fill_image(Image(), astronaut_frame(), "rgb8"))
        assert key in harness.arrays, child.output()  # max_age_ms did not drop it as 1.7e12 ms old
        face = harness.arrays[key].faces[0]
        assert face.processing_ms > 0 and np.isnan(face.latency_ms), (
            face.processing_ms,
            face.latency_ms,
        )
        status, values = harness.status(time.monotonic(), timeout=20)
        assert status.name == f"/{ns}/fer_node: emotion recognition"
        assert (
            status.level == DiagnosticStatus.WARN and "clock has not started" in status.message
        ), status
        assert values["frames_stale"] == "0" and values["clock"].startswith("not started")
    finally:
        harness.node.destroy_node()
