"""`fer-ros images-bag DIR OUT`: a labelled image folder (`DIR/<class>/*.jpg`) as a camera bag.

Every image becomes one frame of a camera stream (sensor_msgs/Image at --rate frames per second,
header stamp = bag time), and a std_msgs/String on the labels topic carries its class at the same
bag time: the ground truth `fer-ros bag-eval` scores against. So the node's whole pipeline can be
evaluated offline on anyone's own labelled faces:

    fer-ros images-bag my_faces/ my_faces_bag
    fer-ros bag-eval my_faces_bag -p detector:=none     # face crops; haar for whole photos

Frames carry the decoded pixels (mono8 for grey images, rgb8 for colour) unless --encoding asks for
jpeg/png CompressedImage frames. Class folders are named as data sets name them ("anger", "Happy":
mapped to fer_ros's labels); a folder with another name keeps its name, and bag-eval reports it as
a label the model does not know. Files that cannot be read are skipped and listed, never dropped
silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_ros.bags.io import IMAGE, LABEL_TYPE, add_topic, make_header, staged_bag, typestore
from fer_ros.errors import BagError, FrameError
from fer_ros.imagecheck import decode, format_name, read_file
from fer_ros.labels import canonical
from fer_ros.paths import IMAGE_SUFFIXES
from fer_ros.ros.images import fill_image

ENCODINGS = ("auto", "mono8", "rgb8", "bgr8", "jpeg", "png")
START_NS = 1_700_000_000 * 1_000_000_000  # a fixed first stamp: the same bag from the same folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="folder with one sub-folder of images per class")
    parser.add_argument("out", type=Path, help="output bag folder")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="auto",
        help="auto: mono8 for grey images, rgb8 for colour; jpeg/png: CompressedImage frames",
    )
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument(
        "--topic", default="/camera/image_raw", help="image topic (default /camera/image_raw)"
    )
    parser.add_argument(
        "--labels-topic", default="/expression", help="ground-truth topic (default /expression)"
    )
    parser.add_argument("--frame-id", default="camera_optical")
    parser.add_argument(
        "--shuffle", action="store_true", help="random order (default: class by class, by name)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --shuffle")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def labelled_images(folder: Path) -> list[tuple[Path, str]]:
    """(image file, label) for every image of every class folder, sorted by class then name."""
    if not folder.is_dir():
        raise BagError(f"no folder {folder}")
    items = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = canonical(class_dir.name) or class_dir.name
        items += [
            (f, label) for f in sorted(class_dir.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not items:
        raise BagError(
            f"{folder} holds no class folders of images ({', '.join(IMAGE_SUFFIXES)}): expected "
            f"{folder}/<class>/<image>"
        )
    return items


def frame_message(store, path: Path, header, encoding: str):
    """The frame of one image file, or None when the file cannot be read (or is refused: only JPEG
    and PNG within the pixel budget, as the node takes them)."""
    try:
        data = read_file(path)  # once: a file swapped for a FIFO after its check cannot hang us
        image = decode(data, cv2.IMREAD_UNCHANGED)
    except FrameError:
        return None
    if image.dtype != np.uint8:
        return None
    if encoding in ("jpeg", "png"):
        if format_name(data) == encoding:
            data = np.frombuffer(data, np.uint8)  # the file's own bytes, not re-encoded
        else:
            data = cv2.imencode(".jpg" if encoding == "jpeg" else ".png", to_bgr(image))[
                1
            ].reshape(-1)
        return store.types["sensor_msgs/msg/CompressedImage"](
            header=header, format=encoding, data=data
        )
    grey = image.ndim == 2 or image.shape[2] == 1
    rgb = cv2.cvtColor(to_bgr(image), cv2.COLOR_BGR2RGB)
    chosen = ("mono8" if grey else "rgb8") if encoding == "auto" else encoding
    msg = store.types[IMAGE](
        header=header,
        height=0,
        width=0,
        encoding="",
        is_bigendian=0,
        step=0,
        data=np.zeros(0, np.uint8),
    )
    return fill_image(msg, rgb, chosen)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A decoded 8-bit image (grey, BGR or BGRA) as BGR."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def write_bag(args) -> tuple[dict[str, int], list[Path]]:
    """Write the bag; returns (frames per label, unreadable files)."""
    from tqdm import tqdm

    if args.rate <= 0:
        raise BagError("--rate must be positive")
    items = labelled_images(args.folder)
    if args.shuffle:
        order = np.random.default_rng(args.seed).permutation(len(items))
        items = [items[i] for i in order]
    if args.limit > 0:
        items = items[: args.limit]
    store = typestore()
    string_type = store.types["std_msgs/msg/String"]
    msgtype = "sensor_msgs/msg/CompressedImage" if args.encoding in ("jpeg", "png") else IMAGE
    counts: dict[str, int] = {}
    unreadable: list[Path] = []
    period_ns = int(round(1e9 / args.rate))
    with staged_bag(args.out, args.storage, args.force, inputs=[args.folder]) as writer:
        image_conn = add_topic(writer, args.topic, msgtype)
        label_conn = add_topic(writer, args.labels_topic, LABEL_TYPE)
        t_ns = START_NS
        for path, label in tqdm(
            items, desc="images-bag", unit="image", disable=None, file=sys.stderr
        ):
            msg = frame_message(
                store, path, make_header(store, t_ns, args.frame_id), args.encoding
            )
            if msg is None:
                unreadable.append(path)
                continue
            writer.write(image_conn, t_ns, store.serialize_cdr(msg, msgtype))
            writer.write(
                label_conn, t_ns, store.serialize_cdr(string_type(data=label), LABEL_TYPE)
            )
            counts[label] = counts.get(label, 0) + 1
            t_ns += period_ns
        if not counts:
            raise BagError(f"none of the {len(items)} images in {args.folder} could be read")
    return counts, unreadable


def run(args) -> int:
    counts, unreadable = write_bag(args)
    total = sum(counts.values())
    print(
        f"wrote {args.out}: {total} frames at {args.rate:g} Hz on {args.topic} ({args.encoding}), "
        "labels on "
        f"{args.labels_topic}: " + ", ".join(f"{label} {n}" for label, n in counts.items())
    )
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:5]) + (" ..." if len(unreadable) > 5 else "")
        print(f"skipped {len(unreadable)} unreadable image(s): {shown}")
    return 0
