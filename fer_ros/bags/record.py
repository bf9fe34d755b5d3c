"""`fer-ros record OUT`: record live topics into a rosbag2, as `ros2 bag record` would.

Subscriptions take the serialized bytes (`raw=True`) and write them unchanged, stamped with
their receive time. Topics that do not exist yet are waited for (their types are learnt from
the graph), so the recorder can start before the node. The subscription's reliability and
durability follow the publishers' (best-effort if any is, transient-local if all are), and each
topic's offered QoS profiles are stored in the bag's metadata, as rosbag2 does: a replay can
offer them again.

Stops on SIGINT / SIGTERM, after --duration seconds or after --count messages, and always
closes the bag properly (metadata.yaml). The bag is written beside OUT and moved there on close:
a folder named OUT is a complete bag.
"""

import argparse
import signal
import time
from collections import Counter
from pathlib import Path

from fer_ros.bags.io import add_topic, staged_bag, typestore
from fer_ros.bags.replay import message_class
from fer_ros.errors import BagError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output bag folder")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=["/emotion", "/emotions"],
        metavar="TOPIC",
        help="topics to record (default /emotion /emotions)",
    )
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many messages in all (0: never)"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def bag_qos(profile):
    """An rclpy QoSProfile as the rosbags Qos that rosbag2's metadata stores (same enum values:
    rmw's)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    def span(duration) -> QosTime:
        ns = duration.nanoseconds
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=span(profile.deadline),
        lifespan=span(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=span(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


class Recorder:
    """Subscribes to each wanted topic once it appears in the graph; writes what arrives."""

    def __init__(self, node, writer, topics):
        self.node, self.writer = node, writer
        self.wanted = [t if t.startswith("/") else f"/{t}" for t in topics]
        self.connections, self.subscriptions = {}, {}
        self.counts = Counter()
        self.store = typestore()

    def discover(self) -> list[str]:
        """Subscribe to wanted topics that have appeared; returns the lines to report."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        lines = []
        types = dict(self.node.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.subscriptions or topic not in types:
                continue
            msgtype = types[topic][0]
            if msgtype not in self.store.types:
                lines.append(
                    f"cannot record {topic}: type {msgtype} is unknown to the bag type store"
                )
                self.subscriptions[topic] = None
                continue
            offered = [p.qos_profile for p in self.node.get_publishers_info_by_topic(topic)]
            best_effort = any(q.reliability == ReliabilityPolicy.BEST_EFFORT for q in offered)
            latched = bool(offered) and all(
                q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered
            )
            qos = QoSProfile(
                depth=100,
                reliability=ReliabilityPolicy.BEST_EFFORT
                if best_effort
                else ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL
                if latched
                else DurabilityPolicy.VOLATILE,
            )
            self.connections[topic] = add_topic(
                self.writer, topic, msgtype, [bag_qos(q) for q in offered]
            )
            self.subscriptions[topic] = self.node.create_subscription(
                message_class(msgtype),
                topic,
                lambda raw, t=topic: self.write(t, raw),
                qos,
                raw=True,
            )
            lines.append(f"recording {topic} ({msgtype})")
        return lines

    def write(self, topic: str, raw: bytes) -> None:
        self.writer.write(self.connections[topic], time.time_ns(), raw)
        self.counts[topic] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def record(args, stop) -> Counter:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    node = rclpy.create_node("fer_record")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        with staged_bag(args.out, args.storage, args.force) as writer:
            recorder = Recorder(node, writer, args.topics)
            print(f"fer-ros record: waiting for {', '.join(recorder.wanted)}", flush=True)
            started, next_discovery = time.monotonic(), 0.0
            while not stop():
                now = time.monotonic()
                if now >= next_discovery and len(recorder.subscriptions) < len(recorder.wanted):
                    for line in recorder.discover():
                        print(f"fer-ros record: {line}", flush=True)
                    next_discovery = now + 0.1
                # Callbacks run here, in this thread: the writer is never used concurrently.
                executor.spin_once(timeout_sec=0.05)
                if args.duration and now - started >= args.duration:
                    break
                if args.count and recorder.total >= args.count:
                    break
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
    return recorder.counts


def run(args) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    if args.duration < 0 or args.count < 0:
        raise BagError("--duration and --count must be 0 (no limit) or more")

    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        counts = record(args, lambda: bool(stopping))
    finally:
        rclpy.try_shutdown()
    detail = ", ".join(f"{t} {n}" for t, n in counts.items()) or "nothing arrived"
    print(
        f"fer-ros record: wrote {args.out} ({sum(counts.values())} messages: {detail})", flush=True
    )
    return 0
