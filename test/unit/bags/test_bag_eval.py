"""The offline bag tools: synth-bag round trips, bag-eval's results and scores, and bad input
(no DDS: the tools read and write rosbag2 files in this process)."""

import csv
import json
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from bagfiles import no_leftovers, read_bag
from rosbags.rosbag2 import StoragePlugin, Writer

from fer_ros.bags.io import open_bag, stamp_ns, typestore
from fer_ros.bags.synth import START_S
from fer_ros.cli import main as fer_ros
from fer_ros.labels import FER7
from fer_ros.ros.images import fill_image, message_to_rgb

FER_ROS = str(Path(sys.executable).parent / "fer-ros")
PERIOD_NS = round(1e9 / 30)


@pytest.mark.parametrize("storage, encoding", [("sqlite3", "rgb8"), ("mcap", "jpeg")])
def test_synth_bag_round_trip(tmp_path, storage, encoding):
    bag = tmp_path / "faces"
    assert (
        fer_ros(
            [
                "synth-bag",
                str(bag),
                "--frames",
                "40",
                "--storage",
                storage,
                "--encoding",
                encoding,
                "--hold",
                "0.2",
                "0.4",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert (bag / "metadata.yaml").is_file() and no_leftovers(tmp_path)
    assert any(f.suffix == {"sqlite3": ".db3", "mcap": ".mcap"}[storage] for f in bag.iterdir())
    topics = read_bag(bag)
    images, labels = topics["/camera/image_raw"], topics["/expression"]
    image_type = (
        "sensor_msgs/msg/CompressedImage" if encoding == "jpeg" else "sensor_msgs/msg/Image"
    )
    assert {m for m, _, _ in images} == {image_type} and {m for m, _, _ in labels} == {
        "std_msgs/msg/String"
    }
    times = [t for _, t, _ in images]
    assert times == [START_S * 10**9 + round(i * 1e9 / 30) for i in range(40)]
    assert [t for _, t, _ in labels] == times  # one label per frame, same bag time
    assert [stamp_ns(msg.header) for _, _, msg in images] == times  # header stamps = bag times
    assert all(msg.header.frame_id == "camera_optical" for _, _, msg in images)
    rgb = message_to_rgb(images[0][2])
    assert rgb.shape == (160, 160, 3) and rgb.std() > 10
    names = [msg.data for _, _, msg in labels]
    assert set(names) <= set(FER7)
    runs = [names[0]] + [b for a, b in zip(names, names[1:]) if a != b]
    assert 40 / 12 <= len(runs) <= 40 / 6 + 1  # held 0.2-0.4 s = 6-12 frames at 30 Hz
    assert len(set(runs[:7])) == len(runs[:7])  # shuffled rounds: no expression twice before all 7
    # Same seed, same bag.
    again = tmp_path / "again"
    assert (
        fer_ros(
            [
                "synth-bag",
                str(again),
                "--frames",
                "40",
                "--storage",
                storage,
                "--encoding",
                encoding,
                "--hold",
                "0.2",
                "0.4",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert [bytes(m.data) for _, _, m in read_bag(again)["/camera/image_raw"]] == [
        bytes(m.data) for _, _, m in images
    ]


def expected_predictions(checkpoint, bag, topic="/camera/image_raw"):
    """The model's own labels for the frames of a bag, computed without the pipeline."""
    from fer_ros.inference.engine import Engine

    store = typestore()
    with closing(open_bag(bag)) as reader, Engine.from_checkpoint(checkpoint) as engine:
        frames = [
            (t, message_to_rgb(store.deserialize_cdr(raw, c.msgtype)))
            for c, t, raw in reader.messages()
            if c.topic == topic
        ]
        probs = engine.predict([rgb for _, rgb in frames])
    return [t for t, _ in frames], [engine.labels[i] for i in probs.argmax(1)], probs


def wrong(label):
    return FER7[(FER7.index(label) + 1) % len(FER7)]


@pytest.mark.parametrize("truth_from", ["topic", "csv"])
def test_bag_eval_scores_a_bag_with_known_answers(tmp_path, small_checkpoint, truth_from):
    """Labels = the model's own prediction for 2 frames in 3 and a wrong one otherwise: the
    accuracy must come out at exactly that, and the result bag must mirror the source."""
    storage = "mcap" if truth_from == "topic" else "sqlite3"
    source = tmp_path / "faces"
    assert (
        fer_ros(
            [
                "synth-bag",
                str(source),
                "--frames",
                "30",
                "--storage",
                storage,
                "--seed",
                "5",
                "--encoding",
                "bgr8" if truth_from == "topic" else "png",
            ]
        )
        == 0
    )
    times, predicted, probs = expected_predictions(small_checkpoint, source)
    truth = [p if i % 3 else wrong(p) for i, p in enumerate(predicted)]
    expected_accuracy = sum(t == p for t, p in zip(truth, predicted)) / len(truth)
    assert expected_accuracy == pytest.approx(20 / 30)

    bag = tmp_path / "labelled"
    labels_csv = tmp_path / "labels.csv"
    store = typestore()
    plugin = StoragePlugin[storage.upper()]
    with closing(open_bag(source)) as reader, Writer(bag, version=9, storage_plugin=plugin) as w:
        images = next(c for c in reader.connections if c.topic == "/camera/image_raw")
        conn = w.add_connection("/camera/image_raw", images.msgtype, typestore=store)
        label_conn = (
            w.add_connection("/truth", "std_msgs/msg/String", typestore=store)
            if truth_from == "topic"
            else None
        )
        for (_conn, t, raw), label in zip(
            (m for m in reader.messages() if m[0].topic == "/camera/image_raw"), truth
        ):
            w.write(conn, t, raw)
            if label_conn:
                w.write(
                    label_conn,
                    t,
                    store.serialize_cdr(
                        store.types["std_msgs/msg/String"](data=label), "std_msgs/msg/String"
                    ),
                )
    labels_csv.write_text(
        "stamp,label\n" + "".join(f"{t / 1e9:.9f},{label}\n" for t, label in zip(times, truth))
    )

    out = tmp_path / "eval"
    args = ["bag-eval", str(bag), "--out", str(out), "--checkpoint", str(small_checkpoint)]
    if (
        truth_from == "csv"
    ):  # and a partial params file over the shipped defaults, as the node takes it
        params = tmp_path / "params.yaml"
        params.write_text("/**/fer_node:\n  ros__parameters:\n    detector: none\n")
        args += ["--labels-csv", str(labels_csv), "--params-file", str(params)]
    else:
        args += ["-p", "detector:=none"]
    assert fer_ros(args) == 0
    assert no_leftovers(tmp_path)
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == {
        "total": 30,
        "processed": 30,
        "skipped": 0,
        "with_face": 30,
        "too_small": 0,
    }
    assert report["accuracy"]["accuracy"] == pytest.approx(expected_accuracy)
    assert report["accuracy"]["samples"] == 30
    cm = np.array(json.loads((out / "confusion.json").read_text())["matrix"])
    assert cm.sum() == 30 and np.trace(cm) == 20
    assert (out / "confusion.png").stat().st_size > 0 and (out / "timeline.png").stat().st_size > 0
    for name in ("detect", "classify", "total"):
        stats = report["latency_ms"][name]
        assert (
            stats["count"] == 30 and stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
        )

    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == predicted and [r["truth"] for r in rows] == truth
    assert np.allclose([[float(r[f"p_{c}"]) for c in FER7] for r in rows], probs, atol=1e-3)

    results = read_bag(out / "emotions")
    assert any(
        f.suffix == {"sqlite3": ".db3", "mcap": ".mcap"}[storage]
        for f in (out / "emotions").iterdir()
    )
    arrays, primaries = results["/emotions"], results["/emotion"]
    assert {m for m, _, _ in arrays} == {"fer_ros/msg/EmotionArray"}
    assert {m for m, _, _ in primaries} == {"fer_ros/msg/EmotionStamped"}
    assert [t for _, t, _ in arrays] == times and [t for _, t, _ in primaries] == times
    assert [stamp_ns(m.header) for _, _, m in arrays] == times
    for (_, _, array), (_, _, primary), label in zip(arrays, primaries, predicted):
        assert len(array.faces) == 1 and array.faces[0].label == primary.label == label
        assert primary.header.frame_id == "camera_optical" and list(primary.labels) == list(FER7)
        assert primary.model == report["model"] and primary.processing_ms > 0
        assert (primary.face.width, primary.face.height) == (160, 160)


def write_bag(path, frames, encodings, label_topic=True):
    """A bag with one Image per encoding in `encodings` (an unknown one is written as-is)."""
    store = typestore()
    with Writer(path, version=9) as w:
        conn = w.add_connection("/cam", "sensor_msgs/msg/Image", typestore=store)
        labels = (
            w.add_connection("/truth", "std_msgs/msg/String", typestore=store)
            if label_topic
            else None
        )
        for i, encoding in enumerate(encodings):
            t = (i + 1) * PERIOD_NS
            header = store.types["std_msgs/msg/Header"](
                stamp=store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=t), frame_id="cam"
            )
            msg = store.types["sensor_msgs/msg/Image"](
                header=header,
                height=0,
                width=0,
                encoding="",
                is_bigendian=0,
                step=0,
                data=np.zeros(0, np.uint8),
            )
            fill_image(msg, frames[i % len(frames)], "rgb8")
            msg.encoding = encoding
            w.write(conn, t, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            if labels:
                w.write(
                    labels,
                    t,
                    store.serialize_cdr(
                        store.types["std_msgs/msg/String"](data="happy"), "std_msgs/msg/String"
                    ),
                )


@pytest.fixture(scope="module")
def frames():
    from fer_ros.synthetic import draw_face, face_rng

    return [draw_face(label, face_rng(9, i), size=64) for i, label in enumerate(FER7[:3])]


def run_cli(capsys, *args):
    code = fer_ros(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_bad_encodings_are_counted_and_skipped(tmp_path, small_checkpoint, frames):
    bag = tmp_path / "mixed"
    write_bag(bag, frames, ["rgb8", "weird16", "rgb8", "weird16", "bgr8"])
    out = tmp_path / "eval"
    assert (
        fer_ros(
            [
                "bag-eval",
                str(bag),
                "--out",
                str(out),
                "--checkpoint",
                str(small_checkpoint),
                "-p",
                "detector:=none",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["processed"] == 3 and report["frames"]["skipped"] == 2
    assert report["skipped_reasons"] == {"unknown image encoding 'weird16'": 2}
    assert report["accuracy"]["samples"] == 3  # skipped frames are not scored
    with open(out / "frames.csv") as f:
        assert [r["status"] for r in csv.DictReader(f)] == [
            "ok",
            "skipped: unknown image encoding 'weird16'",
            "ok",
            "skipped: unknown image encoding 'weird16'",
            "ok",
        ]
    assert len(read_bag(out / "emotions")["/emotions"]) == 3


def test_a_face_too_small_to_read_is_counted_and_scored_unknown(
    tmp_path, small_checkpoint, frames, capsys
):
    """A frame (detector none: the frame is the face) narrower than min_classify_size keeps its
    face and probabilities in frames.csv, is predicted 'unknown' (wrong against its truth) and
    is counted in the report and the printed summary."""
    import cv2

    small = cv2.resize(frames[0], (16, 16), interpolation=cv2.INTER_AREA)
    bag, out = tmp_path / "sizes", tmp_path / "eval"
    write_bag(bag, [frames[0], small], ["rgb8"] * 4)
    args = ["bag-eval", str(bag), "--out", str(out), "--checkpoint", str(small_checkpoint)]
    assert fer_ros([*args, "-p", "detector:=none"]) == 0  # min_classify_size: its default, 20
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["with_face"] == 4 and report["frames"]["too_small"] == 2
    assert report["pipeline"]["min_classify_size"] == 20
    assert report["predicted_counts"]["unknown"] == 2
    assert "unknown" in json.loads((out / "confusion.json").read_text())["classes"]
    assert "4 with a face (2 too small to read)" in printed
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["width"], r["too_small"]) for r in rows] == [
        ("64", "False"),
        ("16", "True"),
        ("64", "False"),
        ("16", "True"),
    ]
    assert all(r["label"] == "unknown" for r in rows[1::2])
    assert all(r["label"] in FER7 for r in rows[::2])
    assert all(float(r["confidence"]) > 0 for r in rows)  # still the arg-max probability


def test_bad_input_fails_with_one_line_and_writes_nothing(
    tmp_path, small_checkpoint, frames, capsys
):
    base = ["--checkpoint", str(small_checkpoint), "-p", "detector:=none", "--out"]

    code, err = run_cli(capsys, "bag-eval", str(tmp_path / "nope"), *base, str(tmp_path / "o1"))
    assert code == 2 and len(err) == 1 and "no bag at" in err[0]

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: [this is: not, a bag")
    code, err = run_cli(capsys, "bag-eval", str(corrupt), *base, str(tmp_path / "o2"))
    assert code == 2 and len(err) == 1 and "cannot read bag" in err[0]

    garbage = tmp_path / "garbage.db3"
    garbage.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 8)
    code, err = run_cli(capsys, "bag-eval", str(garbage), *base, str(tmp_path / "o3"))
    assert code == 2 and len(err) == 1 and "cannot read bag" in err[0]

    labels_only = tmp_path / "labels_only"
    with Writer(labels_only, version=9) as w:
        w.add_connection("/truth", "std_msgs/msg/String", typestore=typestore())
    code, err = run_cli(capsys, "bag-eval", str(labels_only), *base, str(tmp_path / "o4"))
    assert code == 2 and len(err) == 1 and "no image topic" in err[0] and "/truth" in err[0]

    bag = tmp_path / "good"
    write_bag(bag, frames, ["rgb8"] * 2)
    code, err = run_cli(
        capsys, "bag-eval", str(bag), "--topic", "/other", *base, str(tmp_path / "o5")
    )
    assert code == 2 and len(err) == 1 and "no topic /other" in err[0]
    code, err = run_cli(
        capsys, "bag-eval", str(bag), "-p", "nonsense:=1", *base, str(tmp_path / "o6")
    )
    assert code == 2 and len(err) == 1 and "unknown parameter 'nonsense'" in err[0]
    code, err = run_cli(
        capsys, "bag-eval", str(bag), "-p", "detect_every:=often", *base, str(tmp_path / "o6")
    )
    assert (
        code == 2 and len(err) == 1 and "parameter detect_every" in err[0] and "INTEGER" in err[0]
    )
    code, err = run_cli(
        capsys,
        "bag-eval",
        str(bag),
        *base[:2],
        "-p",
        "detector:=sideways",
        "--out",
        str(tmp_path / "o6"),
    )
    assert code == 2 and len(err) == 1 and "sideways" in err[0]

    all_bad = tmp_path / "all_bad"
    write_bag(all_bad, frames, ["weird16"] * 3)
    code, err = run_cli(capsys, "bag-eval", str(all_bad), *base, str(tmp_path / "o7"))
    assert (
        code == 2
        and len(err) == 1
        and "nothing written" in err[0]
        and "3x unknown image encoding" in err[0]
    )

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    code, err = run_cli(capsys, "bag-eval", str(bag), *base, str(taken))
    assert code == 2 and len(err) == 1 and "--force" in err[0]
    assert (taken / "keep.txt").read_text() == "mine"

    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 8))
    assert no_leftovers(tmp_path)
    code, err = run_cli(capsys, "bag-replay", str(tmp_path / "nope"))
    assert code == 2 and len(err) == 1 and "no bag at" in err[0]


def test_bag_eval_matches_params_files_as_the_node_does(tmp_path):
    from fer_ros.bags.bag_eval import node_params

    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    detect_every: 4\n"
        "/robot1/fer_node:\n  ros__parameters:\n    detector: none\n"
        "other_node:\n  ros__parameters:\n    detector: yunet\n"
    )
    plain = node_params(params, [], None)
    assert (
        plain["detect_every"] == 4 and plain["detector"] == "auto"
    )  # other nodes' values do not apply
    robot = node_params(params, ["max_faces:=2"], "model.safetensors", "robot1")
    assert (robot["detect_every"], robot["detector"], robot["max_faces"]) == (4, "none", 2)
    assert (
        robot["checkpoint"] == "model.safetensors" and robot["smoothing"] == "none"
    )  # shipped defaults


def listing(bag, topic: str, count: int) -> None:
    """Edit metadata.yaml to list `count` messages on `topic` (the storage is untouched)."""
    import yaml

    path = bag / "metadata.yaml"
    meta = yaml.safe_load(path.read_text())
    for entry in meta["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if entry["topic_metadata"]["name"] == topic:
            entry["message_count"] = count
    path.write_text(yaml.safe_dump(meta))


def count_note(listed: int, held: str) -> str:
    return (
        f"metadata.yaml lists {listed} messages on /camera/image_raw but the bag {held}: the "
        "frames were counted as read (the metadata is stale or was edited)"
    )


@pytest.mark.parametrize("listed", [5, 0, 90])
def test_bag_eval_counts_the_frames_it_reads_not_the_metadata(
    tmp_path, small_checkpoint, capsys, listed
):
    """30 frames listed as 5 were "5 processed of 5"; listed as 0, "the topic is empty"."""
    bag = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(bag), "--frames", "30", "--seed", "5"]) == 0
    listing(bag, "/camera/image_raw", listed)
    capsys.readouterr()
    out = tmp_path / "eval"
    base = ["--checkpoint", str(small_checkpoint), "-p", "detector:=none"]
    assert fer_ros(["bag-eval", str(bag), "--out", str(out), *base]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["total"] == report["frames"]["processed"] == 30
    assert report["notes"] == [count_note(listed, "holds 30")]
    printed = capsys.readouterr().out
    assert "30 processed of 30" in printed and f"note: {count_note(listed, 'holds 30')}" in printed

    # --limit: a count at or above the limit may be right, one below what was read is not.
    assert (
        fer_ros(["bag-eval", str(bag), "--out", str(out), "--force", "--limit", "10", *base]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["processed"] == 10
    assert report["notes"] == ([count_note(listed, "holds at least 10")] if listed < 10 else [])


def test_bag_eval_of_a_bag_whose_metadata_agrees_has_no_notes(tmp_path, small_checkpoint, frames):
    bag = tmp_path / "good"
    write_bag(bag, frames, ["rgb8"] * 3)
    out = tmp_path / "eval"
    assert (
        fer_ros(
            [
                "bag-eval",
                str(bag),
                "--out",
                str(out),
                "--checkpoint",
                str(small_checkpoint),
                "-p",
                "detector:=none",
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["notes"] == []


def test_garbage_label_records_are_skipped_counted_and_their_frames_unscored(
    tmp_path, capsys, small_checkpoint
):
    """A String record whose length field says 2 GB (rosbags: SerdeError) was exit 1 with a raw
    exception; the run now goes on without those labels, and says so."""
    source = tmp_path / "faces"
    assert fer_ros(["synth-bag", str(source), "--frames", "30", "--seed", "5"]) == 0
    store, bag = typestore(), tmp_path / "garbled"
    with closing(open_bag(source)) as reader, Writer(bag, version=9) as w:
        conns = {
            c.topic: w.add_connection(c.topic, c.msgtype, typestore=store)
            for c in reader.connections
        }
        labels = 0
        for c, t, raw in reader.messages():
            if c.topic == "/expression":
                labels += 1
                if labels in (4, 11, 12):  # a CDR header, then a string length of 2**31 - 1
                    raw = b"\x00\x01\x00\x00\xff\xff\xff\x7fjunk"
            w.write(conns[c.topic], t, raw)
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        fer_ros(
            [
                "bag-eval",
                str(bag),
                "--out",
                str(out),
                "--checkpoint",
                str(small_checkpoint),
                "-p",
                "detector:=none",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["frames"]["processed"] == 30
    assert report["accuracy"]["samples"] == 27  # the frames of the 3 unreadable labels
    note = (
        "3 label records of topic /expression could not be decoded: the frames they would "
        "label are not scored"
    )
    assert report["notes"] == [note] and f"note: {note}" in capsys.readouterr().out
    with open(out / "frames.csv") as f:
        truth = [r["truth"] for r in csv.DictReader(f)]
    assert [i for i, label in enumerate(truth) if not label] == [3, 10, 11]
