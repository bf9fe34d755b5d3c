"""EmotionStamped / EmotionArray: across processes over real Fast DDS, and through rosbag2
files."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from fer_ros.bags.io import typestore
from fer_ros.msg import EmotionArray, EmotionStamped

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "processes"))
from samples import PROBS, sample_array, sample_emotion  # noqa: E402

PUBLISHER = str(Path(__file__).resolve().parents[1] / "processes" / "emotion_publisher.py")


def check_emotion(msg, face_id=7, x=120):
    assert msg.header.stamp.sec == 1_700_000_123 and msg.header.stamp.nanosec == 456_789
    assert msg.header.frame_id == "camera_optical"
    assert (msg.face.x_offset, msg.face.y_offset, msg.face.width, msg.face.height) == (
        x,
        80,
        96,
        110,
    )
    assert msg.face_id == face_id
    assert list(msg.labels) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert np.allclose(msg.probabilities, PROBS) and abs(sum(msg.probabilities) - 1) < 1e-6
    assert msg.label == "happy" and msg.confidence == pytest.approx(0.6)
    assert msg.latency_ms == pytest.approx(23.5) and msg.processing_ms == pytest.approx(17.25)
    assert msg.model == "test-model@0123456789ab"


def test_messages_cross_processes_over_dds(ros, spawn):
    publisher = spawn(PUBLISHER, name="publisher")
    assert publisher.wait_for("publishing", timeout=30), publisher.output()
    node = ros.create_node("emotion_test_listener")
    got = {}
    node.create_subscription(
        EmotionStamped, "/test_emotion", lambda m: got.setdefault("one", m), 10
    )
    node.create_subscription(
        EmotionArray, "/test_emotions", lambda m: got.setdefault("many", m), 10
    )
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        ros.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    assert set(got) == {"one", "many"}, (
        f"not received over DDS: {set(got) ^ {'one', 'many'}}\n{publisher.output()}"
    )
    check_emotion(got["one"])
    array = got["many"]
    assert array.header.frame_id == "camera_optical" and len(array.faces) == 2
    check_emotion(array.faces[0])
    check_emotion(array.faces[1], face_id=8, x=300)


@pytest.mark.parametrize(
    "storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"]
)
def test_messages_round_trip_through_rosbag2(tmp_path, storage):
    store = typestore()
    bag = tmp_path / f"bag_{storage.name.lower()}"
    # As they travel (float32 fields rounded), so that equality below is exact.
    originals = [
        deserialize_message(serialize_message(m), type(m))
        for m in (sample_emotion(), sample_array(), EmotionArray(header=sample_emotion().header))
    ]
    topics = ["/emotion", "/emotions", "/emotions"]
    with Writer(bag, version=9, storage_plugin=storage) as writer:
        connections = {
            t: writer.add_connection(t, f"fer_ros/msg/{type(m).__name__}", typestore=store)
            for t, m in dict(zip(topics, originals)).items()
        }
        for i, (topic, msg) in enumerate(zip(topics, originals)):
            # Both serialisers agree: rclpy's bytes decode in rosbags, and rosbags' encoding of
            # those fields decodes in rclpy to the original. (Bytes differ only in CDR padding,
            # which rclpy leaves uninitialised.)
            msgtype = f"fer_ros/msg/{type(msg).__name__}"
            data = serialize_message(msg)
            reencoded = bytes(store.serialize_cdr(store.deserialize_cdr(data, msgtype), msgtype))
            assert len(reencoded) == len(data) and deserialize_message(reencoded, type(msg)) == msg
            writer.write(connections[topic], 1_000 + i, reencoded if i % 2 else data)
    assert (bag / "metadata.yaml").is_file()
    with Reader(bag) as reader:
        assert {c.msgtype for c in reader.connections} == {
            "fer_ros/msg/EmotionStamped",
            "fer_ros/msg/EmotionArray",
        }
        read = [(c.topic, t, raw) for c, t, raw in reader.messages()]
    assert [t for _, t, _ in read] == [1_000, 1_001, 1_002]
    back = [deserialize_message(bytes(raw), type(m)) for (_, _, raw), m in zip(read, originals)]
    assert back == originals
    check_emotion(back[0])
    assert len(back[2].faces) == 0
