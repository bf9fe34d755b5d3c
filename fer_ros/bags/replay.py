"""`fer-ros bag-replay BAG`: publish a bag's image topics on the live ROS graph.

The pip world's `ros2 bag play` (rosbag2_py is not obtainable here): messages go out as the
serialized bytes stored in the bag, at the recorded rate (--rate scales it, --fast ignores it),
to the recorded topic names or remapped ones. By default only Image / CompressedImage topics
are played; --topics picks any.

This process is the camera driver of the graph, and the publisher is the side that must carry
the large-image Fast DDS profile (its shared-memory segment; see fer_ros.ros.dds), so the profile
and the allocator settings are applied to this process before rclpy starts.

--clock publishes rosgraph_msgs/Clock on /clock with each message's bag time (shifted as the stamps
are, with --restamp), so nodes with use_sim_time run on the bag's time, as with `ros2 bag play
--clock`.

--restamp shifts every header stamp by one constant (the replay's wall-clock start minus the
bag's first time): at --rate 1 a frame's stamp is then the moment it is published, so
fer_node's latency_ms measures transport and processing. The offset is printed, so results
can still be matched to the bag.
"""

import argparse
import importlib
import signal
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from fer_ros.bags.io import IMAGE_TYPES, connections_for, describe_topics, open_bag, typestore
from fer_ros.errors import BagError
from fer_ros.ros.dds import prepare_publisher
from fer_ros.ros.messages import sec_nanosec, stamp_ns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 folder (or a .db3 / .mcap file)")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=None,
        metavar="TOPIC",
        help="topics to play (default: every Image / CompressedImage topic)",
    )
    parser.add_argument(
        "--remap",
        action="append",
        default=[],
        metavar="FROM:=TO",
        help="publish bag topic FROM on live topic TO (repeatable)",
    )
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument(
        "--rate", type=float, default=1.0, help="speed factor of the recorded timing (default 1)"
    )
    speed.add_argument("--fast", action="store_true", help="publish as fast as possible")
    parser.add_argument(
        "--clock", action="store_true", help="publish the bag's time on /clock (use_sim_time)"
    )
    parser.add_argument(
        "--restamp",
        action="store_true",
        help="shift header stamps so that at --rate 1 each equals its publish time",
    )
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before playing, wait up to this long for a subscriber on every played topic",
    )
    parser.add_argument(
        "--reliability",
        choices=("reliable", "best_effort"),
        default="reliable",
        help="publishers' QoS reliability (reliable also serves best-effort subscribers)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="publish at most this many messages (0: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def message_class(msgtype: str):
    """rclpy's class for 'pkg/msg/Name', or BagError if that package is not installed."""
    package, _, name = msgtype.replace("/msg/", "/").partition("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise BagError(
            f"cannot publish {msgtype}: its Python message package {package} is not installed"
        ) from None


def parse_remaps(items) -> dict[str, str]:
    remaps = {}
    for item in items:
        source, sep, target = item.partition(":=")
        if not sep or not source or not target:
            raise BagError(f"--remap expects FROM:=TO, got {item!r}")
        remaps[source] = target
    return remaps


class Replayer:
    """Publishes chosen topics of an open bag from an rclpy node, on the bag's own timing."""

    def __init__(
        self,
        node,
        reader,
        topics=None,
        remaps=None,
        reliable: bool = True,
        restamp: bool = False,
        clock: bool = False,
    ):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        available = {c.topic: c.msgtype for c in reader.connections}
        if topics is None:
            topics = [t for t, m in available.items() if m in IMAGE_TYPES]
            if not topics:
                raise BagError(
                    f"the bag has no image topic to play; its topics: {describe_topics(reader)}"
                )
        missing = [t for t in topics if t not in available]
        if missing:
            raise BagError(
                f"the bag has no topic {', '.join(missing)}; its topics: {describe_topics(reader)}"
            )
        remaps = remaps or {}
        qos = QoSProfile(
            depth=10,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        self.node, self.reader, self.restamp = node, reader, restamp
        self.types = {t: available[t] for t in topics}
        self.publishers = {
            t: node.create_publisher(message_class(available[t]), remaps.get(t, t), qos)
            for t in topics
        }
        self.connections = [c for t in topics for c in connections_for(reader, t)]
        self.total = sum(c.msgcount for c in self.connections)
        self.offset_ns = 0
        self.stop = threading.Event()
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            # As rclcpp's ClockQoS and rclpy's time source: best effort, newest only.
            self.clock_pub = node.create_publisher(
                Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            )

    def routes(self) -> list[str]:
        return [f"{t} -> {p.topic_name} ({self.types[t]})" for t, p in self.publishers.items()]

    def wait_for_subscribers(self, timeout: float) -> bool:
        """True once every played topic (and /clock, with --clock) has a subscriber; False on
        timeout."""
        publishers = [
            *self.publishers.values(),
            *([self.clock_pub] if self.clock_pub is not None else []),
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            if all(p.get_subscription_count() > 0 for p in publishers):
                return True
            time.sleep(0.05)
        return all(p.get_subscription_count() > 0 for p in publishers)

    def play(self, rate: float = 1.0, fast: bool = False, limit: int = 0, on_publish=None) -> int:
        """Publish until the bag ends (or `limit` messages, or stop is set); returns the count."""
        if rate <= 0:
            raise BagError("--rate must be positive")
        store = typestore()
        sent, start_wall, first_ns = 0, None, None
        for connection, bag_ns, raw in self.reader.messages(connections=self.connections):
            if self.stop.is_set() or (limit and sent >= limit):
                break
            if start_wall is None:
                start_wall, first_ns = time.monotonic(), bag_ns
                self.offset_ns = time.time_ns() - bag_ns if self.restamp else 0
            if not fast:
                delay = start_wall + (bag_ns - first_ns) * 1e-9 / rate - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    break
            data = bytes(raw)
            if self.restamp:
                data = self.shifted(store, connection.msgtype, data)
            if self.clock_pub is not None:
                self.publish_clock(bag_ns + self.offset_ns)
            self.publishers[connection.topic].publish(data)
            sent += 1
            if on_publish is not None:
                on_publish(sent, connection.topic, bag_ns)
        return sent

    def publish_clock(self, ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = sec_nanosec(ns)
        self.clock_pub.publish(clock)

    def shifted(self, store, msgtype: str, data: bytes) -> bytes:
        msg = store.deserialize_cdr(data, msgtype)
        header = getattr(msg, "header", None)
        if header is None:
            return data
        ns = stamp_ns(header) + self.offset_ns
        header.stamp.sec, header.stamp.nanosec = sec_nanosec(ns)
        return bytes(store.serialize_cdr(msg, msgtype))


def play_and_listen(
    bag: Path, topic: str, on_result, rate: float = 1.0, listeners: int = 2, timeout: float = 30.0
) -> tuple[int, int, int, float]:
    """Replay `topic` of `bag` onto the live graph, restamped to the publish time, and call
    on_result(msg, stamp_offset_ns) for every fer_ros/EmotionArray that comes back on /emotions.

    Waits until something subscribes to `topic` (the node) and `listeners` subscriptions of
    /emotions (this one included) exist, plays at `rate`, then waits for the answers still in
    flight. Returns (sent, received, stamp offset ns, seconds of playing).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    from fer_ros.msg import EmotionArray

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("fer_replay_listener")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    received, last = [0], [time.monotonic()]

    try:
        with closing(open_bag(bag)) as reader:
            replayer = Replayer(node, reader, [topic], restamp=True)

            def answer(msg) -> None:
                received[0] += 1
                last[0] = time.monotonic()
                on_result(msg, replayer.offset_ns)

            sub = node.create_subscription(
                EmotionArray,
                "/emotions",
                answer,
                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
            )
            threading.Thread(target=executor.spin, daemon=True).start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not (
                replayer.wait_for_subscribers(0.1)
                and sub.get_publisher_count() > 0
                and node.count_subscribers("/emotions") >= listeners
            ):
                time.sleep(0.1)
            if time.monotonic() >= deadline:
                raise BagError(f"no node answered on /emotions for {topic} within {timeout:g} s")
            time.sleep(0.5)  # discovery among the other listeners completes alongside
            started = time.monotonic()
            sent = replayer.play(rate=rate)
            # A node answers each frame within milliseconds; give it a moment for the last ones.
            while received[0] < sent and time.monotonic() - last[0] < 3.0:
                time.sleep(0.05)
            return sent, received[0], replayer.offset_ns, time.monotonic() - started
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()


def prepare_process() -> None:
    """This process publishes camera images: large-image profile and allocator, before rclpy."""
    prepare_publisher()


def run(args) -> int:
    prepare_process()
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    remaps = parse_remaps(args.remap)
    reader = open_bag(args.bag)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("fer_bag_replay")  # publishes only: nothing to spin
    try:
        with closing(reader):
            replayer = Replayer(
                node,
                reader,
                args.topics,
                remaps,
                args.reliability == "reliable",
                args.restamp,
                args.clock,
            )
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: replayer.stop.set())
            print(
                f"fer-ros bag-replay: {args.bag}: {replayer.total} messages, "
                + ("as fast as possible" if args.fast else f"rate {args.rate:g}")
                + (", /clock" if args.clock else ""),
                flush=True,
            )
            for route in replayer.routes():
                print(f"  {route}", flush=True)
            if args.wait_for_subscribers > 0 and not replayer.wait_for_subscribers(
                args.wait_for_subscribers
            ):
                print(
                    f"fer-ros bag-replay: no subscriber after {args.wait_for_subscribers:g} s, "
                    "playing anyway",
                    file=sys.stderr,
                    flush=True,
                )
            from tqdm import tqdm

            total = min(replayer.total, args.limit) if args.limit else replayer.total
            started = time.monotonic()
            with tqdm(
                total=total,
                desc="bag-replay",
                unit="msg",
                file=sys.stderr,
                disable=True if args.quiet else None,
            ) as bar:
                sent = replayer.play(
                    args.rate, args.fast, args.limit, lambda n, topic, t: bar.update(1)
                )
            if args.restamp:
                print(f"  stamps shifted by {replayer.offset_ns} ns", flush=True)
            stopped = " (stopped)" if replayer.stop.is_set() else ""
            print(
                f"fer-ros bag-replay: published {sent} messages in "
                f"{time.monotonic() - started:.1f} s{stopped}",
                flush=True,
            )
            time.sleep(
                0.2
            )  # reliable publishers: let the last messages leave before the node goes
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
