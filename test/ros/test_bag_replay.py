"""bag-replay into a live fer_node with a live recorder, and /clock from a bag (separate
processes, real Fast DDS)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bagfiles import no_leftovers, read_bag
from rosbags.rosbag2 import Reader

from fer_ros.bags.io import stamp_ns
from fer_ros.cli import main as fer_ros

FER_ROS = str(Path(sys.executable).parent / "fer-ros")
PERIOD_NS = round(1e9 / 30)


class NodeWatch:
    """A node's /diagnostics values as the test goes on, heard by a probe in this process: what
    the node has matched, and where a frame went (received, processed, dropped, bad)."""

    def __init__(self, ros, node_name: str):
        from diagnostic_msgs.msg import DiagnosticArray

        self.ros, self.node_name, self.values = ros, node_name, {}
        self.probe = ros.create_node("node_watch")
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self.heard, 10)

    def heard(self, array) -> None:
        for status in array.status:
            values = {v.key: v.value for v in status.values}
            if values.get("node") == self.node_name:
                self.values = values

    def spin_while(self, going, timeout: float) -> None:
        end = time.monotonic() + timeout
        while going() and time.monotonic() < end:
            self.ros.spin_once(self.probe, timeout_sec=0.1)

    def open_gate(self) -> None:
        """Subscribe to /clock: a bag-replay run with --clock starts playing."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.probe.create_subscription(Clock, "/clock", lambda _: None, qos)

    def counts(self) -> str:
        keys = ("frames_received", "frames_processed", "frames_dropped", "frames_bad")
        return ", ".join(f"{k} {self.values.get(k)}" for k in keys)

    def close(self) -> None:
        self.probe.destroy_node()


def results_reach_a_subscriber(values: dict) -> bool:
    """Both result publishers have matched a subscriber, on the writer's side: the recorder
    subscribing is not enough, as a result published before the node's own writer has matched
    the recorder's reader is never delivered (volatile), and under load that match can lag by a
    discovery heartbeat (seconds)."""
    return all(
        int(values.get(k, "0")) > 0 for k in ("emotions_subscribers", "emotion_subscribers")
    )


def test_replay_into_a_live_node_gives_one_result_per_frame(
    ros, spawn, tmp_path, small_checkpoint
):
    """synth-bag -> bag-replay (10 Hz, restamped) -> fer_node -> record, each its own process
    over DDS."""
    from rosbags.interfaces import QosDurability, QosReliability

    bag = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(bag), "--frames", "20"]) == 0
    node = spawn(
        FER_ROS,
        "run",
        "--checkpoint",
        str(small_checkpoint),
        "--image",
        "/replay_test/image",
        "--namespace",
        "replay_test",
        "-p",
        "detector:=none",
        "-p",
        "qos_reliability:=reliable",
        "-p",
        # Every frame waits its turn: with the default depth 1 a frame arriving while the worker
        # is busy (a loaded machine) replaces the waiting one, and one result per frame is luck.
        "qos_depth:=30",
        "-p",
        "diagnostics_period:=0.5",
        name="fer_node",
    )
    recording = tmp_path / "recorded"
    # 20 frames give 20 EmotionArray and 20 EmotionStamped: the recorder stops itself after all 40.
    recorder = spawn(
        FER_ROS,
        "record",
        str(recording),
        "--topics",
        "/replay_test/emotions",
        "/replay_test/emotion",
        "--storage",
        "mcap",
        "--count",
        "40",
        name="record",
    )
    watch = NodeWatch(ros, "/replay_test/fer_node")
    try:
        assert node.wait_for("listening on", timeout=90), node.output()
        assert recorder.wait_for("recording /replay_test/emotion ", timeout=30), recorder.output()
        assert recorder.wait_for("recording /replay_test/emotions ", timeout=30), recorder.output()
        watch.spin_while(lambda: not results_reach_a_subscriber(watch.values), 30)
        assert results_reach_a_subscriber(watch.values), node.output()
        # bag-replay plays once it sees a subscriber on the image topic and on /clock. Its image
        # subscriber appearing says only that its writer has matched the node's reader; frames
        # sent before the node's reader has matched that writer are dropped there and resent in a
        # burst, of which a depth-1 reader keeps one. So /clock is the gate: subscribed to once
        # the node says (image_publishers) that its reader has matched too.
        replay = subprocess.Popen(
            [
                FER_ROS,
                "bag-replay",
                str(bag),
                "--rate",
                str(10 / 30),
                "--wait-for-subscribers",
                "60",
                "--clock",
                "--remap",
                "/camera/image_raw:=/replay_test/image",
                "--restamp",
                "--quiet",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watch.spin_while(lambda: int(watch.values.get("image_publishers", "0")) == 0, 30)
        assert watch.values.get("image_publishers") == "1", (watch.values, node.output())
        watch.open_gate()
        watch.spin_while(lambda: replay.poll() is None, 90)
        out = replay.communicate(timeout=10)[0]
        assert replay.returncode == 0 and "published 20 messages" in out, out
        watch.spin_while(lambda: recorder.proc.poll() is None, 60)
        if recorder.proc.poll() is None:
            watch.spin_while(lambda: True, 1.5)  # the node's newest counts
            pytest.fail(
                f"the recorder did not get all 40 results; the node: {watch.counts()}\n"
                f"{recorder.output()}\n{node.output()}"
            )
    finally:
        watch.close()
    offset = int(out.split("stamps shifted by ")[1].split()[0])
    assert recorder.stop() == 0, recorder.output()
    assert "wrote" in recorder.output() and no_leftovers(tmp_path)
    results = read_bag(recording)
    source_times = [t for _, t, _ in read_bag(bag)["/camera/image_raw"]]
    arrays = results["/replay_test/emotions"]
    # One result per frame, each with its frame's stamp (shifted by the offset --restamp printed).
    assert sorted(stamp_ns(m.header) - offset for _, _, m in arrays) == source_times
    assert len(results["/replay_test/emotion"]) == 20
    assert {m for m, _, _ in arrays} == {"fer_ros/msg/EmotionArray"}
    # Restamped to their publish time, so the latency is transport + queue + work: small and real.
    assert all(
        len(m.faces) == 1 and 0 < m.faces[0].processing_ms <= m.faces[0].latency_ms < 5000
        for _, _, m in arrays
    ), [(m.faces[0].processing_ms, m.faces[0].latency_ms) for _, _, m in arrays]
    # The publishers' QoS, as ros2 bag stores it: the node's results are reliable and volatile (the
    # graph reports no history depth for another process's publisher).
    with Reader(recording) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert len(qos["/replay_test/emotions"]) == 1
    offered = qos["/replay_test/emotions"][0]
    assert (offered.reliability, offered.durability) == (
        QosReliability.RELIABLE,
        QosDurability.VOLATILE,
    )
    assert node.stop(signal.SIGINT) == 0, node.output()


def test_replay_publishes_the_bag_time_on_clock(ros, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    bag = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(bag), "--frames", "10"]) == 0
    listener = ros.create_node("clock_listener")
    ticks = []
    listener.create_subscription(
        Clock,
        "/clock",
        ticks.append,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT),
    )
    listener.create_subscription(Image, "/clock_test/image", lambda _: None, 10)
    replay = subprocess.Popen(
        [
            FER_ROS,
            "bag-replay",
            str(bag),
            "--clock",
            "--rate",
            "1",
            "--wait-for-subscribers",
            "30",
            "--remap",
            "/camera/image_raw:=/clock_test/image",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while replay.poll() is None and time.monotonic() < deadline:
            ros.spin_once(listener, timeout_sec=0.05)
    finally:
        replay.wait(30)
        listener.destroy_node()
    assert replay.returncode == 0
    bag_times = [t for _, t, _ in read_bag(bag)["/camera/image_raw"]]
    seen = [tick.clock.sec * 1_000_000_000 + tick.clock.nanosec for tick in ticks]
    assert seen and set(seen) <= set(bag_times) and seen == sorted(seen), (seen, bag_times)
