"""Reading back what a test wrote or recorded: a whole bag, and whether a staged write left
anything."""

from pathlib import Path

from rosbags.rosbag2 import Reader

from fer_ros.bags.io import typestore


def read_bag(path):
    """{topic: [(msgtype, bag time, message)]} of a whole bag."""
    store = typestore()
    out = {}
    with Reader(path) as reader:
        for connection, t, raw in reader.messages():
            out.setdefault(connection.topic, []).append(
                (connection.msgtype, t, store.deserialize_cdr(raw, connection.msgtype))
            )
    return out


def no_leftovers(folder: Path):
    return not [p for p in folder.iterdir() if ".incomplete-" in p.name]
