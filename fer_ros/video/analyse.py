"""`fer-ros video IN --out DIR`: a recorded video through fer_node's pipeline, offline.

Anything OpenCV's VideoCapture reads goes in; the frames run through the Python API
(fer_ros.api.Recognizer, i.e. `Pipeline.process` with the node's detector, crop, engine, tracking
and smoothing, under the node's parameter names) with the video's own clock, and --out gets:

    faces.csv       one row per face per frame (time, frame, face id, box, label, confidence,
                    too_small, every class's probability), and one row with an empty face id for a
                    frame with no face
    annotated.mp4   the processed frames with boxes and labels (annotated.avi where no MP4 encoder
    is)
    timeline.png    each face's expression over time, under how many faces each frame held
    summary.json    faces seen, each face's share of each expression, frames per second processed

Everything is written to a hidden folder beside --out and moved into place at the end: a folder
named --out is always a complete run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

from fer_ros.atomic import folder_holds
from fer_ros.errors import ConfigError, FerRosError, one_line
from fer_ros.options import read_yaml, short_repr

# What --force may replace: an earlier output of fer-ros video (its summary.json beside only its
# own files), never anything a user keeps there.
IS_VIDEO_REPORT = folder_holds(
    "summary.json", {"faces.csv", "annotated.mp4", "annotated.avi", "timeline.png"}
)
COLOURS = [
    (80, 220, 80),
    (60, 170, 255),
    (255, 120, 60),
    (220, 80, 220),
    (60, 220, 220),
    (200, 200, 60),
]  # BGR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "video", type=Path, help="video file (anything OpenCV's VideoCapture reads)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <video>_fer next to it)"
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="fer_ros .safetensors checkpoint (default: the shipped model)",
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="a fer_node pipeline or engine parameter, as with fer-ros run (repeatable)",
    )
    parser.add_argument(
        "--every", type=int, default=1, help="process every N-th frame (default 1: all)"
    )
    parser.add_argument(
        "--start", type=float, default=0.0, help="first second to process (default 0)"
    )
    parser.add_argument(
        "--end", type=float, default=None, help="stop at this second (default: the end)"
    )
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")


def parse_params(items: list[str]) -> dict:
    """-p NAME:=VALUE, values read as YAML the way ROS reads them (0.2 a number, true a bool)."""
    params = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ConfigError(f"-p expects NAME:=VALUE, got {short_repr(item)}")
        try:
            params[name] = read_yaml(value, f"-p {name}") if value else ""
        except yaml.YAMLError:
            params[name] = value
    return params


def check_args(args) -> None:
    if args.every < 1:
        raise ConfigError(f"--every must be 1 or more, not {args.every}")
    # argparse's float() takes nan and inf, which every comparison below would let through.
    for flag, seconds in (("--start", args.start), ("--end", args.end)):
        if seconds is not None and not math.isfinite(seconds):
            raise ConfigError(f"{flag} must be a number of seconds, not {seconds}")
    if args.start < 0:
        raise ConfigError(f"--start must be 0 or more, not {args.start:g}")
    if args.end is not None and args.end <= args.start:
        raise ConfigError(f"--end ({args.end:g} s) must come after --start ({args.start:g} s)")


def writable_parent(out: Path) -> None:
    """Refuse an output that cannot be written before any frame is processed (one line, exit 2)."""
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FerRosError(f"cannot create the output folder {out}: {one_line(err)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FerRosError(f"cannot write the output folder {out}: {parent} is not writable")
    try:  # root passes os.access everywhere, and /sys or a read-only mount still refuse: try it
        os.rmdir(tempfile.mkdtemp(prefix=".fer-ros-probe-", dir=parent))
    except OSError as err:
        raise FerRosError(f"cannot write the output folder {out}: {one_line(err)}") from None


def draw_faces(bgr, faces) -> None:
    """Boxes, ids and labels drawn on a frame, in place (a colour per face id)."""
    for face in faces:
        x, y, w, h = face.box
        colour = COLOURS[(face.face_id - 1) % len(COLOURS)]
        cv2.rectangle(bgr, (x, y), (x + w, y + h), colour, 2)
        text = f"#{face.face_id} {face.label} {face.confidence:.2f}"
        cv2.putText(
            bgr,
            text,
            (x, max(14, y - 7)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (0, 0, 0),
            3,
            cv2.LINE_AA,
        )
        cv2.putText(
            bgr, text, (x, max(14, y - 7)), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA
        )


def open_writer(folder: Path, fps: float, width: int, height: int) -> tuple[cv2.VideoWriter, str]:
    """MP4 (mp4v) where OpenCV's FFmpeg can encode it, else Motion-JPEG AVI, which it always
    can."""
    for name, fourcc in (("annotated.mp4", "mp4v"), ("annotated.avi", "MJPG")):
        writer = cv2.VideoWriter(
            str(folder / name), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height)
        )
        if writer.isOpened():
            return writer, name
        writer.release()
        (folder / name).unlink(missing_ok=True)
    raise FerRosError("OpenCV cannot encode a video here (neither mp4v nor MJPG); pass --no-video")


def analyse(args, recognizer=None) -> tuple[dict, Path]:
    """The whole run: (summary, output folder). `recognizer`: one to reuse (the demo's), else built
    from --checkpoint and -p."""
    from fer_ros.api import Recognizer
    from fer_ros.atomic import check_replaceable, staged_folder
    from fer_ros.video.report import plot_timeline, write_csv
    from fer_ros.video.source import open_video

    check_args(args)
    video = Path(args.video)
    out = Path(args.out) if args.out else video.absolute().with_name(video.stem + "_fer")
    params = parse_params(args.param)
    source = open_video(video)  # a missing or unreadable video: one line before the model loads
    own = recognizer is None
    inputs = [video] + [p for p in (args.checkpoint,) if p]
    try:
        # Whether --out may be written (and, with --force, replaced) is settled before the model
        # loads.
        check_replaceable(
            Path(os.path.abspath(out)), args.force, FerRosError, IS_VIDEO_REPORT, inputs
        )
        writable_parent(out)
        if own:
            recognizer = Recognizer(args.checkpoint, **params)
        with staged_folder(out, args.force, made_by=IS_VIDEO_REPORT, inputs=inputs) as tmp:
            rows, processed, seconds, video_name = process_frames(recognizer, source, args, tmp)
            if not processed:
                raise FerRosError(
                    f"{video}: no frame between {args.start:g} s and "
                    f"{'the end' if args.end is None else f'{args.end:g} s'} (the video lasts "
                    f"{source.frame_count / source.fps:.1f} s), nothing written"
                )
            write_csv(rows, recognizer.labels, tmp / "faces.csv")
            summary = video_summary(
                args, params, recognizer, source, rows, processed, seconds, video_name
            )
            plot_timeline(
                rows,
                recognizer.labels,
                tmp / "timeline.png",
                title=f"{video.name} - {recognizer.model_id}",
            )
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        source.close()
        if own and recognizer is not None:
            recognizer.close()
    return summary, out


def expected_frames(source, args) -> int | None:
    """How many frames --start, --end and --every leave of the video (None: its length is
    unknown)."""
    if not source.frame_count:
        return None
    last = min(
        source.frame_count, int(args.end * source.fps + 0.5) if args.end is not None else 1 << 62
    )
    return max(0, -(-(last - round(args.start * source.fps)) // args.every))


def process_frames(recognizer, source, args, folder: Path) -> tuple[list, int, float, str | None]:
    """Every chosen frame through the recogniser on the video's clock, drawn into the annotated
    video in `folder` unless --no-video: (rows, frames processed, seconds, the video's file
    name)."""
    from tqdm import tqdm

    from fer_ros.video.report import frame_rows

    writer, video_name = (
        (None, None)
        if args.no_video
        else open_writer(folder, source.fps / args.every, source.width, source.height)
    )
    rows, processed = [], 0
    started = time.perf_counter()
    try:
        frames = source.frames(start=args.start, end=args.end, every=args.every)
        for frame in tqdm(
            frames,
            total=expected_frames(source, args),
            desc=f"video {Path(args.video).name}",
            unit="frame",
            disable=None,
            file=sys.stderr,
        ):
            faces = recognizer(frame.bgr, bgr=True, time=frame.time)
            rows += frame_rows(frame.index, frame.time, faces)
            processed += 1
            if writer is not None:
                draw_faces(frame.bgr, faces)
                writer.write(frame.bgr)
    finally:
        if writer is not None:
            writer.release()
    return rows, processed, time.perf_counter() - started, video_name


def video_summary(
    args, params, recognizer, source, rows, processed: int, seconds: float, video_name
) -> dict:
    """summary.json's content."""
    from fer_ros.video.report import summarize

    labels = recognizer.labels
    return {
        "video": str(Path(args.video)),
        "model": recognizer.model_id,
        "detector": recognizer.detector,
        "labels": labels,
        "source": {
            "width": source.width,
            "height": source.height,
            "fps": round(source.fps, 3),
            "fps_reported": source.fps_reported,
            "frames": source.frame_count,
        },
        "options": {
            "every": args.every,
            "start": args.start,
            "end": args.end,
            "params": params,
            "checkpoint": args.checkpoint or "(shipped model)",
        },
        **summarize(rows, labels),
        "note": (
            f"the video ended after {source.frames_read} of the {source.frame_count} frames its "
            "header "
            "gives (truncated or corrupt)"
        )
        if args.end is None and source.truncated()
        else "",
        "seconds": round(seconds, 3),
        "frames_per_second": round(processed / seconds, 2) if seconds else 0.0,
        "outputs": {
            "csv": "faces.csv",
            "video": video_name,
            "timeline": "timeline.png",
            "summary": "summary.json",
        },
    }


def run(args) -> int:
    from fer_ros.video.report import summary_lines

    summary, out = analyse(args)
    src = summary["source"]
    print(
        f"fer-ros video: {args.video} ({src['width']}x{src['height']}, {src['fps']:g} fps) -> "
        f"{out}"
    )
    for line in summary_lines(summary):
        print("  " + line)
    if summary["note"]:
        print(f"  note: {summary['note']}")
    files = [v for v in summary["outputs"].values() if v]
    print(f"  wrote {out}/: {', '.join(files)}")
    return 0
