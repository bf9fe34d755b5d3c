"""`fer-ros synth-bag OUT`: a rosbag2 of synthetic faces with a ground-truth label topic.

A camera stream as the node would get it, 30 Hz by default: each frame a freshly drawn face
(`fer_ros.synthetic`), the expression held for a random run of frames, as a person holds
one, then changing. Beside the images, a std_msgs/String topic carries the expression of every
frame at the same bag time (and the frames' header stamps equal their bag times), which is what
`fer-ros bag-eval` and `fer-ros demo` score against.

Faces are face crops by default (for detector none) or whole 640x480 scenes with one face
(--scene, for a face detector). Deterministic given --seed; the seeds never coincide with the
training splits' (fer_ros.synthetic.SPLIT_SEEDS), so the faces are unseen by a model
trained with `fer-ros train` on synthetic data.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_ros.bags.io import IMAGE, LABEL_TYPE, add_topic, make_header, staged_bag, typestore
from fer_ros.errors import BagError
from fer_ros.labels import LABEL_SETS
from fer_ros.ros.images import fill_image

# Added to --seed for the faces' generators: far from training's seed * 10 + split.
SEED_BASE = 1_000_003
START_S = 1_700_000_000  # a fixed epoch for the first stamp: the same bag on every machine
ENCODINGS = ("rgb8", "bgr8", "mono8", "jpeg", "png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output bag folder")
    parser.add_argument(
        "--frames", type=int, default=300, help="number of frames (default 300 = 10 s)"
    )
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument(
        "--scene", action="store_true", help="640x480 scenes with one face (default: face crops)"
    )
    parser.add_argument(
        "--size", type=int, default=160, help="side of the face crops (default 160)"
    )
    parser.add_argument("--width", type=int, default=640, help="scene width (--scene)")
    parser.add_argument("--height", type=int, default=480, help="scene height (--scene)")
    parser.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="rgb8",
        help="Image encoding, or jpeg/png for sensor_msgs/CompressedImage (default rgb8)",
    )
    parser.add_argument(
        "--labels", choices=sorted(LABEL_SETS), default="fer7", help="expressions drawn"
    )
    parser.add_argument(
        "--hold",
        type=float,
        nargs=2,
        default=(0.5, 1.2),
        metavar=("MIN_S", "MAX_S"),
        help="seconds an expression is held (default 0.5 1.2: every expression within 10 s)",
    )
    parser.add_argument(
        "--topic", default="/camera/image_raw", help="image topic (default /camera/image_raw)"
    )
    parser.add_argument(
        "--labels-topic", default="/expression", help="ground-truth topic (default /expression)"
    )
    parser.add_argument("--frame-id", default="camera_optical")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def expression_schedule(
    n: int, labels, rate: float, hold: tuple[float, float], seed: int
) -> list[str]:
    """n labels: runs of one expression lasting hold seconds (uniform), each unlike the previous.

    Expressions come in shuffled rounds of the whole set, so a short bag still shows every one.
    """
    rng = np.random.default_rng([SEED_BASE, seed])
    lo, hi = (max(1, round(s * rate)) for s in hold)
    out, order = [], []
    while len(out) < n:
        if not order:
            order = [str(c) for c in rng.permutation(list(labels))]
            if out and order[0] == out[-1]:  # a new round must not repeat the last expression
                order.append(order.pop(0))
        out += [order.pop(0)] * int(rng.integers(lo, max(lo, hi) + 1))
    return out[:n]


def draw_frame(label: str, index: int, args) -> np.ndarray:
    from fer_ros.synthetic import draw_face, draw_scene, face_rng

    rng = face_rng(SEED_BASE + args.seed, index)
    if args.scene:
        return draw_scene(label, rng, width=args.width, height=args.height)[0]
    return draw_face(label, rng, size=args.size)


def image_message(store, rgb: np.ndarray, header, encoding: str):
    if encoding in ("jpeg", "png"):
        ok, data = cv2.imencode(
            f".{'jpg' if encoding == 'jpeg' else 'png'}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        )
        assert ok, "OpenCV failed to encode a synthetic frame"
        return store.types["sensor_msgs/msg/CompressedImage"](
            header=header, format=encoding, data=data.reshape(-1)
        )
    msg = store.types[IMAGE](
        header=header,
        height=0,
        width=0,
        encoding="",
        is_bigendian=0,
        step=0,
        data=np.zeros(0, np.uint8),
    )
    return fill_image(msg, rgb, encoding)


MAX_SIDE = 4096  # of a synthetic frame: enough for 4K scenes, and a typo cannot ask for 149 GiB


def check_arguments(args) -> None:
    """Every option checked before the bag folder is created."""
    if args.frames < 1 or args.rate <= 0:
        raise BagError("--frames must be at least 1 and --rate positive")
    sides = (
        {"--width": args.width, "--height": args.height} if args.scene else {"--size": args.size}
    )
    for option, value in sides.items():
        if not 16 <= value <= MAX_SIDE:
            raise BagError(f"{option} must be within 16..{MAX_SIDE}, not {value}")
    if not 0 < args.hold[0] <= args.hold[1]:
        raise BagError(
            f"--hold MIN_S MAX_S must be positive with MIN_S <= MAX_S, not {args.hold[0]:g} "
            f"{args.hold[1]:g}"
        )


def write_bag(args) -> list[str]:
    """Write the bag; returns the label of every frame."""
    from tqdm import tqdm

    check_arguments(args)
    store = typestore()
    labels = expression_schedule(
        args.frames, LABEL_SETS[args.labels], args.rate, tuple(args.hold), args.seed
    )
    string_type = store.types["std_msgs/msg/String"]
    msgtype = "sensor_msgs/msg/CompressedImage" if args.encoding in ("jpeg", "png") else IMAGE
    with staged_bag(args.out, args.storage, args.force) as writer:
        image_conn = add_topic(writer, args.topic, msgtype)
        label_conn = add_topic(writer, args.labels_topic, LABEL_TYPE)
        for i in tqdm(
            range(args.frames), desc="synth-bag", unit="frame", disable=None, file=sys.stderr
        ):
            t_ns = START_S * 1_000_000_000 + round(i * 1e9 / args.rate)
            header = make_header(store, t_ns, args.frame_id)
            msg = image_message(store, draw_frame(labels[i], i, args), header, args.encoding)
            writer.write(image_conn, t_ns, store.serialize_cdr(msg, msgtype))
            writer.write(
                label_conn, t_ns, store.serialize_cdr(string_type(data=labels[i]), LABEL_TYPE)
            )
    return labels


def run(args) -> int:
    labels = write_bag(args)
    kind = (
        f"{args.width}x{args.height} scenes"
        if args.scene
        else f"{args.size}x{args.size} face crops"
    )
    runs = 1 + sum(a != b for a, b in zip(labels, labels[1:]))
    print(
        f"wrote {args.out}: {args.frames} frames ({kind}, {args.encoding}) at {args.rate:g} Hz on "
        f"{args.topic}, "
        f"{runs} expression run{'s' * (runs != 1)} on {args.labels_topic} ({args.storage})"
    )
    return 0
