"""bag-replay into a live fer_node with a live recorder, and /clock from a bag (separate
processes, real Fast DDS)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from fer_ros.bags.io import stamp_ns
from fer_ros.cli import main as fer_ros

from bagfiles import no_leftovers, read_bag

FER_ROS = str(Path(sys.executable).parent / "fer-ros")
PERIOD_NS = round(1e9 / 30)


def wait_until_results_reach_a_subscriber(ros, node_name: str, timeout: float) -> bool:
    """True once the node's /diagnostics say both its result publishers have matched a subscriber.

    The recorder subscribing is not enough: a result published before the node's own writer has
    matched the recorder's reader is never delivered (volatile), and under load that match can lag
    by a discovery heartbeat (seconds)."""
    from diagnostic_msgs.msg import DiagnosticArray

    seen = []
    probe = ros.create_node("results_probe")
    probe.create_subscription(DiagnosticArray, "/diagnostics", seen.append, 10)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ros.spin_once(probe, timeout_sec=0.2)
            for array in seen:
                for status in array.status:
                    values = {v.key: v.value for v in status.values}
                    if values.get("node") == node_name and all(
                            int(values.get(k, "0")) > 0 for k in ("emotions_subscribers", "emotion_subscribers")):
                        return True
            seen.clear()
        return False
    finally:
        probe.destroy_node()


def test_replay_into_a_live_node_gives_one_result_per_frame(ros, spawn, tmp_path, small_checkpoint):
    """synth-bag -> bag-replay (10 Hz, restamped) -> fer_node -> record, each its own process over DDS."""
    from rosbags.interfaces import QosDurability, QosReliability

    bag = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(bag), "--frames", "20"]) == 0
    node = spawn(FER_ROS, "run", "--checkpoint", str(small_checkpoint), "--image", "/replay_test/image",
                 "--namespace", "replay_test", "-p", "detector:=none", "-p", "qos_reliability:=reliable",
                 name="fer_node")
    recording = tmp_path / "recorded"
    # 20 frames give 20 EmotionArray and 20 EmotionStamped: the recorder stops itself after all 40.
    recorder = spawn(FER_ROS, "record", str(recording), "--topics", "/replay_test/emotions",
                     "/replay_test/emotion", "--storage", "mcap", "--count", "40", name="record")
    assert node.wait_for("listening on", timeout=90), node.output()
    assert recorder.wait_for("recording /replay_test/emotion ", timeout=30), recorder.output()
    assert recorder.wait_for("recording /replay_test/emotions ", timeout=30), recorder.output()
    assert wait_until_results_reach_a_subscriber(ros, "/replay_test/fer_node", 30), node.output()
    replay = subprocess.run([FER_ROS, "bag-replay", str(bag), "--rate", str(10 / 30), "--wait-for-subscribers", "30",
                             "--remap", "/camera/image_raw:=/replay_test/image", "--restamp"],
                            capture_output=True, text=True, timeout=90)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "published 20 messages" in replay.stdout
    offset = int(replay.stdout.split("stamps shifted by ")[1].split()[0])
    try:
        recorder.proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the recorder did not get all 40 results:\n{recorder.output()}\n{node.output()}")
    assert recorder.stop() == 0, recorder.output()
    assert "wrote" in recorder.output() and no_leftovers(tmp_path)
    results = read_bag(recording)
    source_times = [t for _, t, _ in read_bag(bag)["/camera/image_raw"]]
    arrays = results["/replay_test/emotions"]
    # One result per frame, each with its frame's stamp (shifted by the one offset --restamp printed).
    assert sorted(stamp_ns(m.header) - offset for _, _, m in arrays) == source_times
    assert len(results["/replay_test/emotion"]) == 20
    assert {m for m, _, _ in arrays} == {"fer_ros/msg/EmotionArray"}
    # Restamped to their publish time, so the latency is transport + queue + work: small and real.
    assert all(len(m.faces) == 1 and 0 < m.faces[0].processing_ms <= m.faces[0].latency_ms < 5000
               for _, _, m in arrays), [(m.faces[0].processing_ms, m.faces[0].latency_ms) for _, _, m in arrays]
    # The publishers' QoS, as ros2 bag stores it: the node's results are reliable and volatile (the
    # graph reports no history depth for another process's publisher).
    with Reader(recording) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert len(qos["/replay_test/emotions"]) == 1
    offered = qos["/replay_test/emotions"][0]
    assert (offered.reliability, offered.durability) == (QosReliability.RELIABLE, QosDurability.VOLATILE)
    assert node.stop(signal.SIGINT) == 0, node.output()


def test_replay_publishes_the_bag_time_on_clock(ros, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    bag = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(bag), "--frames", "10"]) == 0
    listener = ros.create_node("clock_listener")
    ticks = []
    listener.create_subscription(Clock, "/clock", ticks.append, QoSProfile(depth=10,
                                                                          reliability=ReliabilityPolicy.BEST_EFFORT))
    listener.create_subscription(Image, "/clock_test/image", lambda _: None, 10)
    replay = subprocess.Popen([FER_ROS, "bag-replay", str(bag), "--clock", "--rate", "1", "--wait-for-subscribers",
                               "30", "--remap", "/camera/image_raw:=/clock_test/image"], stdout=subprocess.PIPE,
                              text=True)
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
