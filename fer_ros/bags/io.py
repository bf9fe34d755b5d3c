"""rosbag2 files for the bag tools: open, pick topics, read ground truth, write results safely.

Pure Python through rosbags (no ROS runtime): sqlite3 (.db3) and MCAP bags, as a bag folder
with metadata.yaml or a single storage file. Everything a user can get wrong (a missing or
corrupt bag, a topic that is not there, two candidate topics) raises `BagError` with one line
that says what to do. The type store knows fer_ros's own messages (read from the installed .msg
files), with rosidl's type hashes, so a real `ros2 bag` reads what these tools write.
"""

import bisect
import csv
import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from fer_ros.atomic import folder_holds, staged_folder
from fer_ros.errors import BagError, one_line
from fer_ros.paths import share_dir
from fer_ros.ros.messages import sec_nanosec, stamp_ns

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
LABEL_TYPE = "std_msgs/msg/String"
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted


# -- reading ----------------------------------------------------------------------------------


def open_bag(path: str | Path) -> Reader:
    """An opened Reader for a bag folder (metadata.yaml) or a lone .db3 / .mcap file."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(
            f"{path} is a folder without metadata.yaml: not a rosbag2 bag "
            "(pass the .db3 or .mcap file itself if the metadata was lost)"
        )
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises ReaderError, sqlite3/mcap/yaml errors alike
        raise BagError(f"cannot read bag {path}: {one_line(err)}") from None
    return reader


def storage_of(path: str | Path) -> str:
    """'mcap' or 'sqlite3': the storage a bag (folder or file) is written in."""
    path = Path(path)
    files = [path] if path.is_file() else list(path.iterdir())
    return "mcap" if any(f.suffix == ".mcap" for f in files) else "sqlite3"


def topics_of_type(reader: Reader, msgtypes) -> dict[str, str]:
    """topic -> message type, for the bag's topics of any of `msgtypes`."""
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in msgtypes}


def pick_topic(
    reader: Reader, msgtypes, topic: str | None, what: str, option: str, required: bool = True
) -> str | None:
    """The one topic of `msgtypes` (or the named `topic`, checked); None if optional and absent."""
    found = topics_of_type(reader, msgtypes)
    if topic:
        topic = topic if topic.startswith("/") else f"/{topic}"
        types = {c.topic: c.msgtype for c in reader.connections}
        if topic not in types:
            raise BagError(f"the bag has no topic {topic}; its topics: {describe_topics(reader)}")
        if types[topic] not in msgtypes:
            raise BagError(f"topic {topic} carries {types[topic]}, not {' or '.join(msgtypes)}")
        return topic
    if len(found) == 1:
        return next(iter(found))
    if len(found) > 1:
        raise BagError(
            f"the bag has {len(found)} {what} topics ({', '.join(sorted(found))}): choose one "
            f"with {option}"
        )
    if required:
        raise BagError(
            f"the bag has no {what} topic ({' or '.join(msgtypes)}); its topics: "
            f"{describe_topics(reader)}"
        )
    return None


def describe_topics(reader: Reader) -> str:
    return ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections) or "none"


def connections_for(reader: Reader, topic: str) -> list:
    return [c for c in reader.connections if c.topic == topic]


def message_count(reader: Reader, topic: str) -> int:
    """The messages metadata.yaml lists for `topic`: a hint for a progress bar, never a bound (a
    hand-edited or stale metadata.yaml may list fewer or more than the storage holds)."""
    return sum(c.msgcount for c in connections_for(reader, topic))


def make_header(store, ns: int, frame_id: str):
    time_type = store.types["builtin_interfaces/msg/Time"]
    sec, nanosec = sec_nanosec(ns)
    return store.types["std_msgs/msg/Header"](
        stamp=time_type(sec=sec, nanosec=nanosec), frame_id=frame_id
    )


# -- ground truth -----------------------------------------------------------------------------


@dataclass
class GroundTruth:
    """Expression labels over time; a label holds until the next one (sample and hold).

    A label stamped up to `tolerance_ns` after a frame already counts for it: a label published
    just after its frame, or a stamp written in decimal seconds, still lands on the right frame.
    """

    times_ns: list[int] = field(default_factory=list)  # sorted
    labels: list[str] = field(default_factory=list)
    source: str = ""
    clock: str = "bag"  # frames are matched on their bag time ("bag") or header stamp ("stamp")
    tolerance_ns: int = 1_000_000
    undecodable: int = 0  # label records that could not be read (their frames are unlabelled)

    def add(self, t_ns: int, label: str) -> None:
        i = bisect.bisect_right(self.times_ns, t_ns)
        self.times_ns.insert(i, t_ns)
        self.labels.insert(i, label.strip())

    def at(self, t_ns: int) -> str | None:
        """The label in force at t_ns, or None before the first one (or where it is empty)."""
        i = bisect.bisect_right(self.times_ns, t_ns + self.tolerance_ns)
        return (self.labels[i - 1] or None) if i else None

    def for_frame(self, bag_ns: int, msg) -> str | None:
        """The label of a frame recorded at bag_ns (msg: its image message, None if
        undecodable)."""
        if self.clock == "bag":
            return self.at(bag_ns)
        return self.at(stamp_ns(msg.header)) if msg is not None else None

    def __len__(self) -> int:
        return len(self.times_ns)


def labels_from_bag(reader: Reader, topic: str) -> GroundTruth:
    """std_msgs/String labels keyed by their bag (receive) time, which the frames are matched on.

    A record that cannot be decoded (truncated, foreign) is counted in `undecodable` and stands as
    an empty label: its true label is unknown, so the frames it would cover are not scored, rather
    than scored against the label before it."""
    store = typestore()
    truth = GroundTruth(source=f"topic {topic}")
    try:
        for connection, t_ns, raw in reader.messages(connections=connections_for(reader, topic)):
            try:
                label = store.deserialize_cdr(raw, connection.msgtype).data
            except Exception:  # rosbags raises SerdeError, struct and Unicode errors alike
                label, truth.undecodable = "", truth.undecodable + 1
            truth.add(t_ns, label)
    except Exception as err:  # the storage itself failed part-way
        raise BagError(f"cannot read the labels of {topic}: {one_line(err)}") from None
    return truth


def labels_from_csv(path: str | Path) -> GroundTruth:
    """A CSV with a header row `stamp,label` (seconds) or `stamp_ns,label`, matched on header
    stamps."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise BagError(f"cannot read labels CSV {path}: {one_line(err)}") from None
    columns = set(rows[0]) if rows else set()
    if "label" not in columns or not columns & {"stamp", "stamp_ns"}:
        raise BagError(
            f"{path}: expected a header row 'stamp,label' (seconds) or 'stamp_ns,label'"
        )
    truth = GroundTruth(source=f"csv {path.name}", clock="stamp")
    for n, row in enumerate(rows, start=2):
        try:
            t_ns = (
                int(row["stamp_ns"])
                if "stamp_ns" in row
                else int(Decimal(row["stamp"].strip()) * 10**9)
            )
        except (TypeError, ValueError, ArithmeticError):
            raise BagError(
                f"{path}:{n}: bad stamp {row.get('stamp_ns', row.get('stamp'))!r}"
            ) from None
        truth.add(t_ns, row["label"] or "")
    return truth


# -- writing ----------------------------------------------------------------------------------


# Bag tools report an output folder in the way as a BagError, like the rest of their input.
staged_output = functools.partial(staged_folder, error=BagError)
# What --force may replace: a bag folder as staged_bag writes it (metadata.yaml and its storage
# files).
IS_BAG = folder_holds("metadata.yaml", patterns=("*.db3", "*.db3-wal", "*.db3-shm", "*.mcap"))


def open_writer(path: str | Path, storage: str) -> Writer:
    """An opened rosbag2 Writer (standard metadata.yaml) that knows fer_ros's messages."""
    if storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    writer = Writer(Path(path), version=BAG_VERSION, storage_plugin=STORAGES[storage])
    writer.open()
    return writer


def add_topic(writer: Writer, topic: str, msgtype: str, offered_qos: tuple = ()):
    """A topic of the bag; `offered_qos` (rosbags Qos) are its publishers' profiles, as ros2 bag
    records them."""
    return writer.add_connection(
        topic, msgtype, typestore=typestore(), offered_qos_profiles=tuple(offered_qos)
    )


@contextmanager
def staged_bag(out: str | Path, storage: str, force: bool = False, inputs=()):
    """Yield an opened Writer whose bag becomes the folder `out` when the block completes; --force
    replaces only an earlier bag, never one of `inputs` or a folder holding them."""
    out = Path(out).absolute()
    with staged_output(out, force, made_by=IS_BAG, inputs=inputs) as tmp:
        inner = tmp / out.name  # rosbags names the storage file after its folder, as ros2 bag does
        writer = open_writer(inner, storage)
        try:
            yield writer
        finally:
            writer.close()
        for f in inner.iterdir():
            f.rename(tmp / f.name)
        inner.rmdir()


# -- types ------------------------------------------------------------------------------------

# rosbags then writes and reads our messages in rosbag2 files as rclpy serialises them, with the
# same type hashes, so a real `ros2 bag` can read them too.


MESSAGES = ("EmotionStamped", "EmotionArray", "FrameTiming")


@lru_cache(maxsize=1)
def typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in MESSAGES:
        text = (share_dir() / "msg" / f"{name}.msg").read_text()
        types.update(get_types_from_msg(text, f"fer_ros/msg/{name}"))
    store.register(types)
    return store
