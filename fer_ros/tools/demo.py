"""`fer-ros demo` (`make demo`): the whole chain, live, on this machine, in a couple of minutes.

1. writes a bag of synthetic faces with their true expressions (`fer-ros synth-bag`),
2. starts fer_node in its own process with the demo checkpoint (`fer-ros run`, detector none),
3. starts a recorder of /emotion and /emotions in another process (`fer-ros record`),
4. replays the bag into the node over real DDS at the recorded rate, restamped so that the
   node's latency_ms is camera-to-result, and prints each result as it arrives,
5. stops the node and the recorder, then scores the *recorded* results against the bag's
   labels (matched by header stamp) and writes the report beside them,
6. then reads a real face with the shipped model: a short clip built from scikit-image's astronaut
   photo (moved, scaled, tilted; fer_ros.video.clip) through `fer-ros video`, in this process.

Everything lands in --out (default out/demo): the bag, the recording, the logs, report.json,
timeline.png and confusion.png, and the clip with its analysis (astronaut.avi, astronaut_fer/).
While it runs the folder holds an INCOMPLETE file saying so.
The ROS graph is private: a claimed ROS_DOMAIN_ID unless one is set, localhost discovery
unless another range is set.
"""

import argparse
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from fer_ros.bags.io import GroundTruth, connections_for, labels_from_bag, open_bag, typestore
from fer_ros.bags.replay import play_and_listen, prepare_process
from fer_ros.bags.report import (
    NO_FACE,
    accuracy_with_confusion,
    plot_timeline,
    summary_lines,
    write_report,
)
from fer_ros.errors import BagError, CheckpointError
from fer_ros.labels import LABEL_SETS
from fer_ros.metrics import latency_stats
from fer_ros.paths import share_dir
from fer_ros.ros.domain import private_graph
from fer_ros.ros.messages import stamp_ns

DEMO_CHECKPOINT = "models/fer_synthetic_mit_b0.safetensors"  # under the installed share/fer_ros
# Everything a demo writes into --out. A rerun replaces a folder holding only these; anything else
# there (a user's file, another tool's output) was not made by the demo and is never deleted.
DEMO_OUTPUTS = frozenset(
    {
        "INCOMPLETE",
        "synthetic",
        "recorded",
        "node.log",
        "recorder.log",
        "report.json",
        "timeline.png",
        "confusion.png",
        "confusion.json",
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)"
    )
    parser.add_argument(
        "--frames", type=int, default=300, help="frames in the synthetic bag (default 300 = 10 s)"
    )
    parser.add_argument(
        "--rate", type=float, default=1.0, help="replay speed factor (default 1: 30 Hz)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help=f"checkpoint (default: the installed {DEMO_CHECKPOINT})"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra fer_node parameter (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic bag")
    parser.add_argument("--quiet", action="store_true", help="do not print every result")
    parser.add_argument(
        "--clip-frames",
        type=int,
        default=75,
        help="frames of the real-face clip (640x480 at 15 fps; default 75 = 5 s)",
    )


def demo_checkpoint(path: str | None) -> Path:
    if path:
        if not Path(path).is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return Path(path)
    candidate = share_dir() / DEMO_CHECKPOINT
    if not candidate.is_file():
        raise CheckpointError(
            f"the demo checkpoint {DEMO_CHECKPOINT} is not installed ({candidate}); train one "
            "with "
            "`fer-ros train --config synthetic` and pass --checkpoint"
        )
    return candidate


def clear_demo_output(out: Path) -> None:
    """Remove a previous demo's output at `out`; refuse (deleting nothing) when anything there is
    not something the demo writes."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BagError(f"--out {out} is a file: choose a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_OUTPUTS)
    if foreign:
        shown_names = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise BagError(
            f"{out} holds files fer-ros demo did not write ({shown_names}); nothing was deleted: "
            "choose another --out"
        )
    shutil.rmtree(out)


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


class DemoFailed(RuntimeError):
    """A process of the demo failed (its log says why): the run failed, not its input."""


class Child:
    """A process in its own session (a Ctrl-C meant for the parent does not reach it), its stdout
    and stderr in a log file. The demo runs fer_node and the recorder this way; so do the tests."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict | None = None):
        self.name, self.log_path = name, Path(log)
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, *texts: str, timeout: float = 60.0) -> bool:
        """True once every text has appeared in the output; False on timeout or when it exits
        first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(t in self.output() for t in texts):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return all(t in self.output() for t in texts)

    def tail(self, lines: int = 8) -> str:
        return "\n".join("    " + line for line in self.output().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def fer_ros_child(name: str, args: list[str], log: Path) -> Child:
    return Child(name, [sys.executable, "-m", "fer_ros.cli", *args], log)


def failed(child: Child, what: str) -> DemoFailed:
    """The error for a child that failed, after showing the end of its log (the error is one
    line)."""
    print(f"{child.name} {what}; last lines of {child.log_path}:\n{child.tail()}", file=sys.stderr)
    return DemoFailed(f"{child.name} {what} (log: {child.log_path})")


class Printer:
    """Prints one line per EmotionArray as it arrives."""

    def __init__(self, truth: GroundTruth, first_ns: int, quiet: bool):
        self.truth, self.first_ns, self.quiet = truth, first_ns, quiet

    def __call__(self, msg, offset_ns: int) -> None:
        if self.quiet:
            return
        original = stamp_ns(msg.header) - offset_ns
        truth = self.truth.at(original) or "?"
        t = (original - self.first_ns) * 1e-9
        if not msg.faces:
            print(f"  {t:6.2f} s  {NO_FACE:<9}         truth {truth:<9}", flush=True)
            return
        face = msg.faces[0]
        mark = "" if face.label == truth else "   <- wrong"
        print(
            f"  {t:6.2f} s  {face.label:<9} {face.confidence:4.2f}   truth {truth:<9} "
            f"latency {face.latency_ms:5.1f} ms"
            f"  (node {face.processing_ms:4.1f} ms){mark}",
            flush=True,
        )


def read_recording(path: Path, truth: GroundTruth, offset_ns: int) -> list[dict]:
    """The recorded /emotions as rows: original stamp, truth, label, confidence, latencies."""
    store = typestore()
    rows = []
    with closing(open_bag(path)) as reader:
        for connection, _, raw in reader.messages(
            connections=connections_for(reader, "/emotions")
        ):
            msg = store.deserialize_cdr(raw, connection.msgtype)
            original = stamp_ns(msg.header) - offset_ns
            face = msg.faces[0] if len(msg.faces) else None
            rows.append(
                {
                    "stamp_ns": original,
                    "truth": truth.at(original),
                    "label": face.label if face else NO_FACE,
                    "confidence": float(face.confidence) if face else 0.0,
                    "latency_ms": float(face.latency_ms) if face else None,
                    "processing_ms": float(face.processing_ms) if face else None,
                    "model": face.model if face else "",
                }
            )
    rows.sort(key=lambda r: r["stamp_ns"])
    return rows


def demo_report(rows, truth: GroundTruth, labels, sent: int, out: Path, title: str) -> dict:
    """report.json's content from the recorded rows; writes timeline.png (and the confusion
    matrix)."""
    first = truth.times_ns[0]
    predicted = [r["label"] for r in rows]
    plot_timeline(
        [(r["stamp_ns"] - first) * 1e-9 for r in rows],
        predicted,
        [r["confidence"] for r in rows],
        [r["truth"] for r in rows],
        labels,
        out / "timeline.png",
        title=title,
    )
    pairs = [(r["truth"], r["label"]) for r in rows if r["truth"]]
    return {
        "title": title,
        "model": next((r["model"] for r in rows if r["model"]), ""),
        "labels": list(labels),
        "frames": {
            "total": sent,
            "processed": len(rows),
            "dropped": sent - len(rows),
            "with_face": sum(1 for p in predicted if p != NO_FACE),
        },
        "latency_ms": {
            "end_to_end": latency_stats(
                r["latency_ms"] for r in rows if r["latency_ms"] is not None
            ),
            "node": latency_stats(
                r["processing_ms"] for r in rows if r["processing_ms"] is not None
            ),
        },
        "predicted_counts": {
            k: predicted.count(k)
            for k in sorted(set(predicted), key=predicted.count, reverse=True)
        },
        "ground_truth": truth.source,
        "accuracy": accuracy_with_confusion(pairs, labels, out, title=title) if pairs else None,
    }


DETECTOR = "none"  # the demo's frames are face crops


def run_demo(args) -> int:
    from fer_ros.model.checkpoint import read_meta

    checkpoint = demo_checkpoint(args.checkpoint)
    graph = private_graph()  # children inherit it
    prepare_process()  # this process publishes the camera frames
    out = args.out
    clear_demo_output(out)
    out.mkdir(parents=True)
    (out / "INCOMPLETE").write_text(
        "fer-ros demo is running or stopped before the end; report.json is missing\n"
    )
    labels = read_meta(checkpoint).labels
    print(
        "fer-ros demo: synthetic faces -> fer_node (own process, real DDS) -> recorder -> report"
    )
    print(f"  checkpoint {shown(checkpoint)} ({', '.join(labels)}); {graph}")
    bag, synth_args, truth = synthetic_bag(args, out, labels)
    recording, sent, offset_ns = run_live(args, checkpoint, out, bag, synth_args, truth)
    report_recording(
        args, checkpoint, out, bag, synth_args, truth, labels, recording, sent, offset_ns
    )
    real_face(out, args.clip_frames)
    (out / "INCOMPLETE").unlink()
    return 0


def synthetic_bag(args, out: Path, labels):
    """Step 1: the bag of synthetic faces and its labels: (bag, synth-bag's arguments, ground
    truth)."""
    from fer_ros.bags import synth as synth_bag

    t0 = time.monotonic()
    # Draw the expressions the model knows (FER's 7, or AffectNet's 8 with contempt).
    label_set = next(
        (name for name, names in LABEL_SETS.items() if list(names) == list(labels)), "fer7"
    )
    bag = out / "synthetic"
    synth = argparse.ArgumentParser()
    synth_bag.add_arguments(synth)  # synth-bag's own defaults: 30 Hz face crops, /camera/image_raw
    synth_args = synth.parse_args(
        [
            str(bag),
            "--frames",
            str(args.frames),
            "--labels",
            label_set,
            "--seed",
            str(args.seed),
            "--force",
        ]
    )
    schedule = synth_bag.write_bag(synth_args)
    runs = 1 + sum(a != b for a, b in zip(schedule, schedule[1:]))
    print(
        f"[1/6] synthetic bag: {args.frames} frames ({synth_args.size}x{synth_args.size} face "
        "crops) at "
        f"{synth_args.rate:g} Hz, {len(set(schedule))} expressions in {runs} runs -> {shown(bag)} "
        f"({time.monotonic() - t0:.1f} s)"
    )
    with closing(open_bag(bag)) as reader:
        truth = labels_from_bag(reader, synth_args.labels_topic)
    return bag, synth_args, truth


def run_live(args, checkpoint: Path, out: Path, bag: Path, synth_args, truth):
    """Steps 2-5: fer_node and a recorder in their own processes, the bag replayed into the node:
    (the recording, frames sent, the replay's stamp offset)."""
    node = recorder = None
    try:
        t0 = time.monotonic()
        node = fer_ros_child(
            "fer_node",
            [
                "run",
                "--checkpoint",
                str(checkpoint),
                "--image",
                synth_args.topic,
                "-p",
                f"detector:={DETECTOR}",
                *sum((["-p", p] for p in args.param), []),
            ],
            out / "node.log",
        )
        if not node.wait_for("listening on", timeout=180):
            raise failed(node, "did not start")
        print(
            f"[2/6] fer_node up (detector {DETECTOR}), log {shown(out / 'node.log')} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        recording = out / "recorded"
        recorder = fer_ros_child(
            "recorder",
            ["record", str(recording), "--topics", "/emotion", "/emotions"],
            out / "recorder.log",
        )
        if not recorder.wait_for("recording /emotion ", "recording /emotions ", timeout=60):
            raise failed(recorder, "did not start recording")
        print(f"[3/6] recorder up: /emotion /emotions -> {shown(recording)}")
        print(
            f"[4/6] replaying {args.frames} frames at {synth_args.rate * args.rate:g} Hz into "
            f"{synth_args.topic}; "
            "results as they arrive:"
        )
        sent, printed, offset_ns, seconds = play_and_listen(
            bag, synth_args.topic, Printer(truth, truth.times_ns[0], args.quiet), rate=args.rate
        )
        for child in (recorder, node):
            code = child.stop()
            if code != 0:
                raise failed(child, f"exited with {code}")
        print(
            f"[5/6] stopped fer_node and the recorder: {sent} frames sent in {seconds:.1f} s, "
            f"{printed} results "
            f"received live"
        )
    finally:
        for child in (recorder, node):
            if child is not None:
                child.stop()
    return recording, sent, offset_ns


def report_recording(
    args,
    checkpoint: Path,
    out: Path,
    bag: Path,
    synth_args,
    truth,
    labels,
    recording: Path,
    sent: int,
    offset_ns: int,
) -> None:
    """The recorded results against the bag's labels: report.json and the plots, summed up."""
    rows = read_recording(recording, truth, offset_ns)
    if not rows:
        raise DemoFailed(
            f"the recorder captured no /emotions; see {out / 'node.log'} and "
            f"{out / 'recorder.log'}"
        )
    report = demo_report(
        rows, truth, labels, sent, out, title=f"fer-ros demo - {rows[0]['model']}"
    )
    report.update(
        checkpoint=str(checkpoint),
        bag=str(bag),
        recording=str(recording),
        replay_rate=args.rate,
        detector=DETECTOR,
        stamp_offset_ns=offset_ns,
    )
    write_report(report, out)
    print(f"report (recorded /emotions vs the bag's {synth_args.labels_topic} labels):")
    for line in summary_lines(report):
        print("  " + line)
    print(
        "  latency: end_to_end = camera stamp to the node's publish (DDS transport + queue + "
        "inference); "
        "node = the node's own work"
    )
    plots = [out / "timeline.png"] + ([out / "confusion.png"] if report["accuracy"] else [])
    print(f"  plots: {', '.join(shown(p) for p in plots)}")
    print(f"  report: {shown(out / 'report.json')}")


def real_face(out: Path, frames: int) -> None:
    """The shipped real model on a real person: a clip of the astronaut photo through `fer-ros
    video`."""
    from fer_ros.video import analyse
    from fer_ros.video.clip import write_clip
    from fer_ros.video.report import summary_lines as video_lines

    t0 = time.monotonic()
    clip = write_clip(out / "astronaut.avi", frames, 640, 480, fps=15)
    parser = argparse.ArgumentParser()
    analyse.add_arguments(
        parser
    )  # fer-ros video's own defaults: the shipped model, the node's pipeline
    video_args = parser.parse_args([str(clip), "--out", str(out / "astronaut_fer"), "--force"])
    summary, result = analyse.analyse(video_args)
    print(
        f"[6/6] a real face: the shipped model {summary['model']} (detector "
        f"{summary['detector']}) on "
        f"{shown(clip)}, {frames} frames of the astronaut photo moved, scaled and tilted, through "
        f"fer-ros video ({time.monotonic() - t0:.1f} s):"
    )
    for line in video_lines(summary):
        print("  " + line)
    files = ", ".join(v for v in summary["outputs"].values() if v)
    print(
        f"  outputs: {shown(result)}/ ({files}); a showcase, not an accuracy claim (see the "
        "benchmarks)"
    )


def run(args) -> int:
    return run_demo(args)
