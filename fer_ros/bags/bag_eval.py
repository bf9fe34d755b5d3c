"""`fer-ros bag-eval BAG`: run fer_node's pipeline over a recorded bag, offline, and report.

Reads Image or CompressedImage frames from a rosbag2 (sqlite3 or MCAP), runs them through the
node's frame stream and pipeline, built by the same function from the same parameters (same params
file, same -p overrides, same detector, engine and smoothing), and writes to --out:

    emotions/      rosbag2 with /emotion (EmotionStamped) and /emotions (EmotionArray), each
                   message at its source frame's bag time, headers copied from the frames
    frames.csv     one row per frame: stamps, largest face's label and probabilities, timings
    report.json    counts, skipped frames by reason, latency percentiles, accuracy when there
                   is ground truth, and `notes` on what was wrong with the bag but did not stop
                   the run (also printed): a metadata.yaml whose message count disagrees with the
                   frames read (frames are counted, never taken from it), label records that
                   could not be decoded (skipped and counted: their frames are not scored)
    timeline.png   predicted (and true) expression over time
    confusion.png / confusion.json   with ground truth

Ground truth: a std_msgs/String topic of the bag (matched on bag time, a label holds until the
next), or --labels-csv (stamp,label matched on the frames' header stamps). Offline there is no
transport, so latency_ms and processing_ms in the output messages are both this frame's
decode + pipeline time.

Everything is written to a hidden folder beside --out and moved into place at the end: a
folder named --out is always a complete run.
"""

import argparse
import csv
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from fer_ros.atomic import folder_holds
from fer_ros.bags.io import (
    IMAGE_TYPES,
    LABEL_TYPE,
    add_topic,
    connections_for,
    labels_from_bag,
    labels_from_csv,
    message_count,
    open_bag,
    open_writer,
    pick_topic,
    staged_output,
    storage_of,
    typestore,
)
from fer_ros.bags.report import (
    NO_FACE,
    accuracy_with_confusion,
    plot_timeline,
    summary_lines,
    write_report,
)
from fer_ros.errors import BagError, FrameError, one_line
from fer_ros.imagecheck import DEFAULT_MAX_PIXELS
from fer_ros.inference.load import load_pipeline
from fer_ros.inference.stream import FrameStream, offline_frame
from fer_ros.metrics import latency_stats
from fer_ros.paths import config_file
from fer_ros.ros.images import message_to_rgb
from fer_ros.ros.messages import emotion_messages, rosbags_classes, stamp_ns

NODE_NAME = "fer_node"


# What --force may replace: an earlier report of bag-eval and nothing else.
IS_REPORT = folder_holds(
    "report.json", {"emotions", "frames.csv", "timeline.png", "confusion.png", "confusion.json"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 folder (or a .db3 / .mcap file)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <bag>_fer next to the bag)"
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--topic",
        default=None,
        help="image topic (default: the bag's only Image / CompressedImage topic)",
    )
    parser.add_argument(
        "--labels-topic",
        default=None,
        help="std_msgs/String ground-truth topic (default: the bag's only String topic, if any)",
    )
    parser.add_argument(
        "--labels-csv",
        type=Path,
        default=None,
        help="ground truth as CSV: stamp,label (seconds) or stamp_ns,label, on header stamps",
    )
    parser.add_argument(
        "--no-labels", action="store_true", help="ignore any ground truth in the bag"
    )
    parser.add_argument(
        "--params-file",
        type=Path,
        default=None,
        help="fer_node parameters (default: the installed config/fer.yaml)",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="fer_ros .safetensors checkpoint (overrides the params)"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="override one node parameter, as with fer-ros run (repeatable)",
    )
    parser.add_argument(
        "--namespace", default="", help="the node's namespace, for a params file keyed by it"
    )
    parser.add_argument(
        "--storage",
        choices=("auto", "sqlite3", "mcap"),
        default="auto",
        help="storage of the output bag (default: that of the input)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="process at most this many frames (0: all)"
    )


# -- parameters -------------------------------------------------------------------------------


def node_params(
    params_file: Path | None, overrides: list[str], checkpoint: str | None, namespace: str = ""
) -> dict:
    """fer_node's parameters as the node itself would get them: the shipped config/fer.yaml, then
    the params file, then -p NAME:=VALUE, parsed and matched by rcl (wildcards such as /**/fer_node
    included) for a node named fer_node in `namespace`, and checked against the node's
    declarations."""
    import rclpy
    from rclpy.context import Context
    from rclpy.exceptions import ParameterException

    from fer_ros.ros.params import PARAMS, descriptor

    for path in [params_file] if params_file else []:
        if not Path(path).is_file():
            raise BagError(f"params file not found: {path}")
    args = ["--ros-args", "--params-file", str(config_file("fer.yaml"))]
    args += ["--params-file", str(params_file)] if params_file else []
    for item in overrides:
        name, sep, _ = item.partition(":=")
        if not sep or not name:
            raise BagError(f"-p expects NAME:=VALUE, got {item!r}")
        if name not in PARAMS:
            raise BagError(f"unknown parameter {name!r}; known: {', '.join(sorted(PARAMS))}")
        args += ["-p", item]
    context = Context()
    rclpy.init(
        args=[], context=context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO
    )
    try:
        try:
            node = rclpy.create_node(
                NODE_NAME,
                namespace=namespace or None,
                context=context,
                cli_args=args,
                use_global_arguments=False,
                start_parameter_services=False,
                enable_rosout=False,
            )
        except Exception as err:  # rcl refuses an unparsable file or argument
            raise BagError(f"cannot read the parameters: {one_line(err)}") from None
        try:
            params = {}
            for name, spec in PARAMS.items():
                try:
                    params[name] = node.declare_parameter(
                        name, spec.default, descriptor(spec)
                    ).value
                except ParameterException as err:
                    raise BagError(f"parameter {name}: {one_line(err)}") from None
                if reason := spec.problem(params[name]):
                    raise BagError(reason)
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    if checkpoint:
        params["checkpoint"] = checkpoint
    return params


def say(text) -> None:
    print(f"fer-ros bag-eval: {text}", file=sys.stderr)


# -- the run ----------------------------------------------------------------------------------


CSV_FIXED = [
    "frame",
    "bag_time_ns",
    "stamp_ns",
    "status",
    "faces",
    "label",
    "confidence",
    "too_small",
    "face_id",
    "x",
    "y",
    "width",
    "height",
    "truth",
    "detect_ms",
    "classify_ms",
    "total_ms",
]


def deserialize(store, connection, raw):
    """(message, None), or (None, why the record is skipped)."""
    try:
        return store.deserialize_cdr(raw, connection.msgtype), None
    except Exception as err:  # a truncated or foreign record: counted, the run goes on
        return None, f"undecodable {connection.msgtype} record ({type(err).__name__})"


def frame_row(index, bag_ns, msg, truth_label, result=None, total_ms=0.0, labels=()) -> dict:
    """One CSV row: the frame's stamps and the largest face's result (empty fields for none)."""
    row = {
        "frame": index,
        "bag_time_ns": bag_ns,
        "stamp_ns": stamp_ns(msg.header) if msg is not None else "",
        "truth": truth_label or "",
    }
    if result is None:
        return row
    row.update(
        status="ok",
        faces=len(result.faces),
        detect_ms=round(result.detect_ms, 3),
        classify_ms=round(result.classify_ms, 3),
        total_ms=round(total_ms, 3),
    )
    if result.faces:
        best = result.faces[0]
        x, y, w, h = best.box
        row.update(
            label=best.label,
            confidence=round(best.confidence, 4),
            too_small=best.too_small,
            face_id=best.face_id,
            x=x,
            y=y,
            width=w,
            height=h,
            **{f"p_{c}": round(float(p), 4) for c, p in zip(labels, best.probabilities)},
        )
    return row


def run_pipeline(
    reader,
    topic,
    truth,
    engine,
    pipeline,
    bag_out: Path,
    storage: str,
    limit: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[list, Counter]:
    """Every frame of `topic` through the node's frame stream, results into a new bag; (rows, skip
    reasons). A frame's receipt is its bag time; there is no transport and no mailbox (frames wait
    for the pipeline), so a result's latency_ms and processing_ms are both its own decode +
    pipeline time."""
    from tqdm import tqdm

    store = typestore()
    classes = rosbags_classes(store)
    labels = pipeline.labels
    stream = FrameStream(pipeline)
    # metadata.yaml's count only sizes the progress bar: the frames are counted as they are read.
    hint = min(message_count(reader, topic), limit or sys.maxsize)
    rows, skipped = [], Counter()
    writer = open_writer(bag_out, storage)

    def write(bag_ns, header, result, timing):
        array, faces = emotion_messages(
            result,
            header,
            labels,
            engine.model_id,
            classes,
            timing.processing_ms,
            timing.processing_ms,
        )
        writer.write(emotions_conn, bag_ns, store.serialize_cdr(array, array.__msgtype__))
        if faces:
            writer.write(emotion_conn, bag_ns, store.serialize_cdr(faces[0], faces[0].__msgtype__))

    try:
        emotion_conn = add_topic(writer, "/emotion", "fer_ros/msg/EmotionStamped")
        emotions_conn = add_topic(writer, "/emotions", "fer_ros/msg/EmotionArray")
        messages = reader.messages(connections=connections_for(reader, topic))
        for index, (connection, bag_ns, raw) in enumerate(
            tqdm(
                messages,
                total=hint or None,
                desc=f"bag-eval {topic}",
                unit="frame",
                disable=None,
                file=sys.stderr,
            )
        ):
            if limit and index >= limit:
                break
            frame = offline_frame(None, bag_ns)  # timed from before deserialising
            msg, reason = deserialize(store, connection, raw)
            truth_label = truth.for_frame(bag_ns, msg) if truth is not None else None
            if msg is not None:
                frame.item = msg
                try:
                    _, result, timing = stream.process(
                        frame,
                        stamp_ns(msg.header),
                        lambda m: message_to_rgb(m, max_pixels),
                        lambda: 0,
                        # Called before process() returns, in this iteration.
                        lambda rgb, result, timing: write(bag_ns, msg.header, result, timing),  # noqa: B023
                    )
                except FrameError as err:
                    reason = str(err)
            if reason:
                stream.count("bad")
                skipped[reason] += 1
                rows.append(
                    {**frame_row(index, bag_ns, msg, truth_label), "status": f"skipped: {reason}"}
                )
                continue
            rows.append(
                frame_row(index, bag_ns, msg, truth_label, result, timing.processing_ms, labels)
            )
    except Exception as err:
        raise BagError(
            f"reading {topic} failed part-way, nothing written: {one_line(err)}"
        ) from None
    finally:
        writer.close()
    return rows, skipped


def build_report(
    rows, skipped, truth, labels, engine, pipeline, params, out: Path, title: str, elapsed: float
) -> dict:
    """report.json's content; writes frames.csv, timeline.png and (with truth) the confusion
    matrix."""
    with open(out / "frames.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIXED + [f"p_{c}" for c in labels], restval="")
        writer.writeheader()
        writer.writerows(rows)
    done = [r for r in rows if r.get("status") == "ok"]
    first_ns = done[0]["bag_time_ns"]
    predicted = [r.get("label") or NO_FACE for r in done]
    plot_timeline(
        [(r["bag_time_ns"] - first_ns) * 1e-9 for r in done],
        predicted,
        [r.get("confidence") or 0.0 for r in done],
        [r["truth"] or None for r in done],
        labels,
        out / "timeline.png",
        title=title,
    )
    pairs = [(r["truth"], p) for r, p in zip(done, predicted) if r["truth"]]
    return {
        "title": title,
        "model": engine.model_id,
        "labels": labels,
        "device": engine.device,
        "backend": engine.backend,
        "pipeline": {
            **{
                k: params[k]
                for k in (
                    "detector",
                    "detect_every",
                    "face_crop",
                    "face_margin",
                    "smoothing",
                    "confidence_threshold",
                    "min_classify_size",
                )
                if k in params
            },
            "detector_used": pipeline.detector_name,
        },
        "frames": {
            "total": len(rows),
            "processed": len(done),
            "skipped": sum(skipped.values()),
            "with_face": sum(1 for p in predicted if p != NO_FACE),
            # found but too small to read: predicted 'unknown', so wrong wherever there is truth
            "too_small": sum(1 for r in done if r.get("too_small")),
        },
        "skipped_reasons": dict(skipped.most_common()),
        "latency_ms": {
            name: latency_stats(r[f"{name}_ms"] for r in done)
            for name in ("detect", "classify", "total")
        },
        "throughput_fps": len(done) / elapsed if elapsed > 0 else 0.0,
        "predicted_counts": dict(Counter(predicted).most_common()),
        "ground_truth": truth.source if truth is not None else None,
        "accuracy": accuracy_with_confusion(pairs, labels, out, title=title) if pairs else None,
        "outputs": {"bag": "emotions", "csv": "frames.csv", "timeline": "timeline.png"},
    }


def count_note(topic: str, listed: int, read: int, limit: int) -> str | None:
    """A line when metadata.yaml's count for `topic` disagrees with the frames read (None if it
    agrees): with --limit reached the bag may hold more, so only a count below what was read is
    wrong."""
    stopped = bool(limit) and read >= limit
    if listed == read or (stopped and listed >= read):
        return None
    held = f"holds at least {read}" if stopped else f"holds {read}"
    return (
        f"metadata.yaml lists {listed} messages on {topic} but the bag {held}: the frames "
        "were counted as read (the metadata is stale or was edited)"
    )


def truth_note(truth) -> str | None:
    if truth is None or not truth.undecodable:
        return None
    return (
        f"{truth.undecodable} label records of {truth.source} could not be decoded: the "
        "frames they would label are not scored"
    )


def ground_truth(reader, args):
    if args.labels_csv:
        return labels_from_csv(args.labels_csv)
    if args.no_labels:
        return None
    topic = pick_topic(
        reader,
        (LABEL_TYPE,),
        args.labels_topic,
        "label (std_msgs/String)",
        "--labels-topic",
        required=False,
    )
    return labels_from_bag(reader, topic) if topic else None


def bag_report(args) -> tuple[dict, Path]:
    """The whole run: (report.json's content, the output folder)."""
    with closing(open_bag(args.bag)) as reader:
        topic = pick_topic(reader, IMAGE_TYPES, args.topic, "image", "--topic")
        truth = ground_truth(reader, args)
        params = node_params(args.params_file, args.param, args.checkpoint, args.namespace)
        engine, pipeline = load_pipeline(params, warn=say, note=say)
        storage = storage_of(args.bag) if args.storage == "auto" else args.storage
        bag = args.bag.resolve()
        out = args.out or bag.with_name(bag.name.split(".")[0] + "_fer")
        inputs = [p for p in (args.bag, args.labels_csv, args.params_file, args.checkpoint) if p]
        started = time.perf_counter()
        try:
            with staged_output(out, args.force, made_by=IS_REPORT, inputs=inputs) as tmp:
                rows, skipped = run_pipeline(
                    reader,
                    topic,
                    truth,
                    engine,
                    pipeline,
                    tmp / "emotions",
                    storage,
                    args.limit,
                    params["max_pixels"],
                )
                listed = message_count(reader, topic)
                if not any(r.get("status") == "ok" for r in rows):
                    empty = "the topic holds no message" + (
                        f" (metadata.yaml lists {listed})" if listed else ""
                    )
                    reasons = "; ".join(f"{n}x {r}" for r, n in skipped.most_common(3)) or empty
                    raise BagError(
                        f"no frame of {topic} could be processed, nothing written: {reasons}"
                    )
                notes = [
                    note
                    for note in (
                        count_note(topic, listed, len(rows), args.limit),
                        truth_note(truth),
                    )
                    if note
                ]
                report = build_report(
                    rows,
                    skipped,
                    truth,
                    pipeline.labels,
                    engine,
                    pipeline,
                    params,
                    tmp,
                    f"{bag.name} {topic} - {engine.model_id}",
                    time.perf_counter() - started,
                )
                report.update(bag=str(args.bag), topic=topic, notes=notes)
                write_report(report, tmp)
        finally:
            engine.close()
    return report, out


def run(args) -> int:
    report, out = bag_report(args)
    print(f"fer-ros bag-eval: {args.bag} {report['topic']} -> {out}")
    for line in summary_lines(report):
        print("  " + line)
    for note in report["notes"]:
        print(f"  note: {note}")
    print(
        f"  wrote {out}/: emotions/ (rosbag2), frames.csv, report.json, timeline.png"
        + (", confusion.png, confusion.json" if report["accuracy"] else "")
    )
    return 0
