"""Talking to a live node from a test process."""

import time


def publish_until_answered(
    ros, node, publisher, msg, answers: list, period: float, timeout: float = 30.0
) -> bool:
    """Publish `msg` (freshly stamped) every `period` seconds until `answers` (filled by a
    subscription of `node`) holds something or `timeout` passes: a best-effort frame sent before
    discovery has finished is lost, so one send is not enough. True once answered."""
    deadline = time.monotonic() + timeout
    while not answers and time.monotonic() < deadline:
        msg.header.stamp = node.get_clock().now().to_msg()
        publisher.publish(msg)
        end = time.monotonic() + period
        while not answers and time.monotonic() < end:
            ros.spin_once(node, timeout_sec=0.05)
    return bool(answers)
