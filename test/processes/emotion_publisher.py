"""Publishes a known EmotionStamped on /test_emotion and EmotionArray on /test_emotions at 10 Hz.

Run as its own process by the message tests, so the messages cross real Fast DDS.
"""

import sys

import rclpy

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from samples import sample_array, sample_emotion  # noqa: E402
from spinning import spin_until_stopped  # noqa: E402


def main():
    rclpy.init()
    node = rclpy.create_node("emotion_test_publisher")
    one = node.create_publisher(sample_emotion().__class__, "/test_emotion", 10)
    many = node.create_publisher(sample_array().__class__, "/test_emotions", 10)
    node.create_timer(0.1, lambda: (one.publish(sample_emotion()), many.publish(sample_array())))
    print("publishing", flush=True)
    spin_until_stopped(node)


if __name__ == "__main__":
    main()
