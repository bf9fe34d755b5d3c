"""`fer-ros camera`: a camera driver for the pip world. A V4L2 camera or a video file as
sensor_msgs/Image.

    fer-ros camera --device 0 &                 # /dev/video0 -> /camera/image_raw, at the
    camera's rate
    fer-ros camera --video session.mp4 --loop   # a recording, at its own frame rate (or --rate)
    fer-ros run                                 # fer_node listens on /camera/image_raw

Frames go out as bgr8 (what OpenCV decodes; fer_node converts any encoding) with --frame-id and the
time each goes out as its stamp (a file's frame is "captured" when its turn comes). This process is
the publisher, so it is the one that must load the large-image Fast DDS profile (fer_ros.ros.dds):
it does so itself, before rclpy starts, as it tunes its allocator; without that, best-effort
640x480 frames are lost in transport. A camera and a file share one path: the camera is a source
whose frames never end and come at their own pace; a file is paced by its frame rate.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time

from fer_ros.errors import ConfigError, one_line

NODE_NAME = "fer_camera"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--device", default=None, help="V4L2 camera: an index (0 = /dev/video0) or a device path"
    )
    source.add_argument(
        "--video", default=None, help="a video file (anything OpenCV's VideoCapture reads)"
    )
    parser.add_argument("--loop", action="store_true", help="start the video again at its end")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="frames per second to publish (default: the video's own rate; a camera's pace)",
    )
    parser.add_argument(
        "--topic", default="/camera/image_raw", help="image topic (default /camera/image_raw)"
    )
    parser.add_argument(
        "--frame-id", default="camera", help="header.frame_id of every frame (default camera)"
    )
    parser.add_argument(
        "--width", type=int, default=0, help="camera: frame width to ask the driver for"
    )
    parser.add_argument(
        "--height", type=int, default=0, help="camera: frame height to ask the driver for"
    )
    parser.add_argument(
        "--reliable",
        action="store_true",
        help="reliable QoS (default: sensor data, best effort, depth 1, as fer_node subscribes)",
    )
    parser.add_argument(
        "--wait",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="start publishing only once N subscribers (default 1) listen",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=0,
        help="stop after this many frames (0: never / the video's end)",
    )


def open_source(args):
    """The one branch between a camera and a file; everything after it is the same."""
    from fer_ros.video.source import open_camera, open_video

    if args.rate < 0 or args.count < 0 or args.wait < 0:
        raise ConfigError("--rate, --count and --wait must be 0 or more")
    if args.device is not None:
        return open_camera(args.device, args.width, args.height, args.rate)
    return open_video(args.video)


# rcl's message on a bad name: the rule, then the name with a caret or a C source location.
TOPIC_RULE = re.compile(r"topic (?:name (?:token )?must|length should).*?(?=, at /|: '|$)")


def check_topic(topic: str) -> str:
    """The full name --topic stands for (relative to /, ~ to this node); one line naming it where
    rcl would refuse it, before a camera opens or DDS starts (it was a traceback from rclpy)."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name

    try:
        full = expand_topic_name(topic, NODE_NAME, "/")
        validate_full_topic_name(full)
    except (InvalidTopicNameException, ValueError) as err:
        rule = TOPIC_RULE.search(" ".join(str(err).split()))
        shown_topic = topic if len(topic) <= 80 else topic[:77] + "..."
        raise ConfigError(
            f"--topic {shown_topic!r} is not a valid ROS topic name: "
            f"{rule.group(0) if rule else one_line(err)}"
        ) from None
    return full


class Pacer:
    """When to publish: a file at its rate (sleeping), a camera as its frames come, at most
    --rate."""

    def __init__(self, rate: float, live: bool):
        self.period, self.live = (1.0 / rate if rate > 0 else 0.0), live
        self.next = None

    def admit(self, stop: threading.Event) -> bool:
        now = time.monotonic()
        if self.next is None:
            self.next = now
        if self.live:  # a camera is not slowed down: frames beyond the rate are dropped
            if now < self.next:
                return False
            self.next = max(self.next + self.period, now)
            return True
        stop.wait(max(0.0, self.next - now))
        self.next += self.period
        if (
            time.monotonic() - self.next > 1.0
        ):  # far behind (a slow machine): do not race to catch up
            self.next = time.monotonic()
        return not stop.is_set()


def shown(path: str) -> str:
    """A path relative to the working directory when it lies inside it (as a user would type
    it)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def run(args) -> int:
    from fer_ros.ros.dds import prepare_publisher

    check_topic(args.topic)
    source = open_source(args)  # a missing file or camera: one line, before any DDS
    profile = prepare_publisher()  # before rclpy.init: the publisher's own segment must be large
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rate = args.rate or (0.0 if source.live else source.fps)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)  # publishes only: nothing to spin
    sent = 0
    try:
        qos = (
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            if args.reliable
            else qos_profile_sensor_data
        )
        pub = node.create_publisher(Image, args.topic, qos)
        print(
            f"fer-ros camera: {source.name} ({source.width}x{source.height}, "
            + (f"{rate:g} Hz" if rate else "the camera's rate")
            + (", looped" if args.loop else "")
            + f") -> {pub.topic_name} (bgr8, frame_id {args.frame_id}); Fast DDS profile "
            f"{shown(profile)}",
            flush=True,
        )
        while not stop.is_set() and pub.get_subscription_count() < args.wait:
            stop.wait(0.05)
        pacer = Pacer(rate, source.live)
        msg = Image(encoding="bgr8", is_bigendian=0)
        msg.header.frame_id = args.frame_id
        for frame in source.frames(loop=args.loop):
            if stop.is_set():
                break
            if not pacer.admit(stop):
                continue
            bgr = frame.bgr
            msg.height, msg.width = bgr.shape[:2]
            msg.step = msg.width * 3
            msg.data = (
                bgr.tobytes()
            )  # bytes, not the array: rclpy copies an array element by element
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
            if args.count and sent >= args.count:
                break
    finally:
        source.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"fer-ros camera: sent {sent} frames", flush=True)
    return 0
