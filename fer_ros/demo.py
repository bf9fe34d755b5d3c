"""`fer-ros demo` (`make demo`): the whole chain, live, on this machine, in a couple of minutes.

1. writes a bag of synthetic faces with their true expressions (`fer-ros synth-bag`),
2. starts fer_node in its own process with the demo checkpoint (`fer-ros run`, detector none),
3. starts a recorder of /emotion and /emotions in another process (`fer-ros record`),
4. replays the bag into the node over real DDS at the recorded rate, restamped so that the
   node's latency_ms is camera-to-result, and prints each result as it arrives,
5. stops the node and the recorder, then scores the *recorded* results against the bag's
   labels (matched by header stamp) and writes the report beside them.

Everything lands in --out (default out/demo): the bag, the recording, the logs, report.json,
timeline.png and confusion.png. While it runs the folder holds an INCOMPLETE file saying so.
The ROS graph is private: a random ROS_DOMAIN_ID unless one is set, localhost discovery
unless another range is set.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from fer_ros.bag_replay import prepare_process
from fer_ros.bags import BagError, GroundTruth, connections_for, labels_from_bag, one_line, open_bag, stamp_ns
from fer_ros.labels import LABEL_SETS
from fer_ros.paths import share_dir
from fer_ros.report import NO_FACE, latency_stats, plot_timeline, score, summary_lines, write_report

DEMO_CHECKPOINT = "models/fer_synthetic_mit_b0.safetensors"  # under the installed share/fer_ros


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=300, help="frames in the synthetic bag (default 300 = 10 s)")
    parser.add_argument("--rate", type=float, default=1.0, help="replay speed factor (default 1: 30 Hz)")
    parser.add_argument("--checkpoint", default=None, help=f"checkpoint (default: the installed {DEMO_CHECKPOINT})")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra fer_node parameter (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic bag")
    parser.add_argument("--quiet", action="store_true", help="do not print every result")


def demo_checkpoint(path: str | None) -> Path:
    if path:
        if not Path(path).is_file():
            raise BagError(f"checkpoint {path} does not exist")
        return Path(path)
    try:
        candidate = share_dir() / DEMO_CHECKPOINT
    except FileNotFoundError as err:
        raise BagError(str(err)) from None
    if not candidate.is_file():
        raise BagError(f"the demo checkpoint {DEMO_CHECKPOINT} is not installed ({candidate}); train one with "
                       "`fer-ros train --config training/configs/synthetic.yaml` and pass --checkpoint")
    return candidate


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def private_graph() -> str:
    """Keep the demo's ROS graph to itself (children inherit the environment)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return f"ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}, discovery {os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']}"


class Child:
    """A `fer-ros` sub-command in its own process and session, output to a log file."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name, self.log_path = name, log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "fer_ros.cli", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, *texts: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.log_path.read_text(errors="replace")
            if all(t in output for t in texts):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        exited = self.proc.poll() is not None
        state = f"exited with {self.proc.returncode}" if exited else f"not ready after {timeout:g} s"
        raise BagError(f"{self.name} {state}; last lines of {self.log_path}:\n" + self.tail())

    def tail(self, lines: int = 8) -> str:
        return "\n".join("    " + line for line in self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Printer:
    """Prints one line per EmotionArray as it arrives; counts them."""

    def __init__(self, truth: GroundTruth, offset_ns, first_ns: int, quiet: bool):
        self.truth, self.offset_ns, self.first_ns, self.quiet = truth, offset_ns, first_ns, quiet
        self.count, self.last = 0, time.monotonic()

    def __call__(self, msg) -> None:
        self.count += 1
        self.last = time.monotonic()
        if self.quiet:
            return
        original = stamp_ns(msg.header) - self.offset_ns()
        truth = self.truth.at(original) or "?"
        t = (original - self.first_ns) * 1e-9
        if not msg.faces:
            print(f"  {t:6.2f} s  {NO_FACE:<9}         truth {truth:<9}", flush=True)
            return
        face = msg.faces[0]
        mark = "" if face.label == truth else "   <- wrong"
        print(f"  {t:6.2f} s  {face.label:<9} {face.confidence:4.2f}   truth {truth:<9} "
              f"latency {face.latency_ms:5.1f} ms"
              f"  (node {face.processing_ms:4.1f} ms){mark}", flush=True)


def replay_live(bag: Path, topic: str, truth: GroundTruth, args) -> tuple[int, int, int, float]:
    """Replay the bag into the node, printing results; (sent, printed, stamp offset ns, seconds)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    from fer_ros.bag_replay import Replayer
    from fer_ros.msg import EmotionArray

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("fer_demo")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        with closing(open_bag(bag)) as reader:
            replayer = Replayer(node, reader, [topic], restamp=True)
            printer = Printer(truth, lambda: replayer.offset_ns, truth.times_ns[0], args.quiet)
            sub = node.create_subscription(EmotionArray, "/emotions", printer,
                                           QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
            threading.Thread(target=executor.spin, daemon=True).start()
            deadline = time.monotonic() + 30
            # The node's image subscription, our results subscription and the recorder's.
            while time.monotonic() < deadline and not (
                    replayer.wait_for_subscribers(0.1) and sub.get_publisher_count() > 0
                    and node.count_subscribers("/emotions") >= 2):
                time.sleep(0.1)
            if time.monotonic() >= deadline:
                raise BagError("fer_node and the recorder did not connect within 30 s")
            time.sleep(0.5)  # discovery between the node and the recorder completes alongside
            started = time.monotonic()
            sent = replayer.play(rate=args.rate)
            # The node answers each frame within milliseconds; give it a moment for the last ones.
            while printer.count < sent and time.monotonic() - printer.last < 3.0:
                time.sleep(0.05)
            return sent, printer.count, replayer.offset_ns, time.monotonic() - started
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()


def read_recording(path: Path, truth: GroundTruth, offset_ns: int) -> list[dict]:
    """The recorded /emotions as rows: original stamp, truth, label, confidence, latencies."""
    from fer_ros.bagtypes import typestore

    store = typestore()
    rows = []
    with closing(open_bag(path)) as reader:
        for connection, _, raw in reader.messages(connections=connections_for(reader, "/emotions")):
            msg = store.deserialize_cdr(raw, connection.msgtype)
            original = stamp_ns(msg.header) - offset_ns
            face = msg.faces[0] if len(msg.faces) else None
            rows.append({"stamp_ns": original, "truth": truth.at(original), "label": face.label if face else NO_FACE,
                         "confidence": float(face.confidence) if face else 0.0,
                         "latency_ms": float(face.latency_ms) if face else None,
                         "processing_ms": float(face.processing_ms) if face else None,
                         "model": face.model if face else ""})
    rows.sort(key=lambda r: r["stamp_ns"])
    return rows


def evaluate(rows, truth: GroundTruth, labels, sent: int, out: Path, title: str) -> dict:
    first = truth.times_ns[0]
    predicted = [r["label"] for r in rows]
    plot_timeline([(r["stamp_ns"] - first) * 1e-9 for r in rows], predicted, [r["confidence"] for r in rows],
                  [r["truth"] for r in rows], labels, out / "timeline.png", title=title)
    pairs = [(r["truth"], r["label"]) for r in rows if r["truth"]]
    return {
        "title": title, "model": next((r["model"] for r in rows if r["model"]), ""), "labels": list(labels),
        "frames": {"total": sent, "processed": len(rows), "dropped": sent - len(rows),
                   "with_face": sum(1 for p in predicted if p != NO_FACE)},
        "latency_ms": {"end_to_end": latency_stats(r["latency_ms"] for r in rows if r["latency_ms"] is not None),
                       "node": latency_stats(r["processing_ms"] for r in rows if r["processing_ms"] is not None)},
        "predicted_counts": {k: predicted.count(k) for k in sorted(set(predicted), key=predicted.count, reverse=True)},
        "ground_truth": truth.source,
        "accuracy": score(pairs, labels, out, title=title) if pairs else None,
    }


def run_demo(args) -> int:
    from fer_ros.checkpoint import read_meta
    from fer_ros import synth_bag

    checkpoint = demo_checkpoint(args.checkpoint)
    graph = private_graph()
    prepare_process()  # this process publishes the camera frames
    out = args.out
    if out.exists() and not (out / "report.json").exists() and not (out / "INCOMPLETE").exists() and any(out.iterdir()):
        raise BagError(f"{out} exists and is not a demo output: choose another --out")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "INCOMPLETE").write_text("fer-ros demo is running or stopped before the end; report.json is missing\n")
    labels = read_meta(checkpoint).labels
    # Draw the expressions the model knows (FER's 7, or AffectNet's 8 with contempt).
    label_set = next((name for name, names in LABEL_SETS.items() if list(names) == list(labels)), "fer7")
    print("fer-ros demo: synthetic faces -> fer_node (own process, real DDS) -> recorder -> report")
    print(f"  checkpoint {shown(checkpoint)} ({', '.join(labels)}); {graph}")

    t0 = time.monotonic()
    bag = out / "synthetic"
    synth = argparse.ArgumentParser()
    synth_bag.add_arguments(synth)  # synth-bag's own defaults: 30 Hz face crops, /camera/image_raw
    synth_args = synth.parse_args([str(bag), "--frames", str(args.frames), "--labels", label_set,
                                   "--seed", str(args.seed), "--force"])
    schedule = synth_bag.write_bag(synth_args)
    runs = 1 + sum(a != b for a, b in zip(schedule, schedule[1:]))
    print(f"[1/5] synthetic bag: {args.frames} frames ({synth_args.size}x{synth_args.size} face crops) at "
          f"{synth_args.rate:g} Hz, {len(set(schedule))} expressions in {runs} runs -> {shown(bag)} "
          f"({time.monotonic() - t0:.1f} s)")
    with closing(open_bag(bag)) as reader:
        truth = labels_from_bag(reader, synth_args.labels_topic)

    detector = "none"  # the frames are face crops
    node = recorder = None
    try:
        t0 = time.monotonic()
        node = Child("fer_node", ["run", "--checkpoint", str(checkpoint), "--image", synth_args.topic,
                                  "-p", f"detector:={detector}", *sum((["-p", p] for p in args.param), [])],
                     out / "node.log")
        node.wait_for("listening on", timeout=180)
        print(f"[2/5] fer_node up (detector {detector}), log {shown(out / 'node.log')} "
              f"({time.monotonic() - t0:.1f} s)")
        recording = out / "recorded"
        recorder = Child("recorder", ["record", str(recording), "--topics", "/emotion", "/emotions"],
                         out / "recorder.log")
        recorder.wait_for("recording /emotion ", "recording /emotions ", timeout=60)
        print(f"[3/5] recorder up: /emotion /emotions -> {shown(recording)}")
        print(f"[4/5] replaying {args.frames} frames at {synth_args.rate * args.rate:g} Hz into {synth_args.topic}; "
              "results as they arrive:")
        sent, printed, offset_ns, seconds = replay_live(bag, synth_args.topic, truth, args)
        for child in (recorder, node):
            code = child.stop()
            if code != 0:
                raise BagError(f"{child.name} exited with {code}; last lines of {child.log_path}:\n{child.tail()}")
        print(f"[5/5] stopped fer_node and the recorder: {sent} frames sent in {seconds:.1f} s, {printed} results "
              f"received live")
    finally:
        for child in (recorder, node):
            if child is not None:
                child.stop()

    rows = read_recording(recording, truth, offset_ns)
    if not rows:
        raise BagError(f"the recorder captured no /emotions; see {out / 'node.log'} and {out / 'recorder.log'}")
    report = evaluate(rows, truth, labels, sent, out, title=f"fer-ros demo - {rows[0]['model']}")
    report.update(checkpoint=str(checkpoint), bag=str(bag), recording=str(recording), replay_rate=args.rate,
                  detector=detector, stamp_offset_ns=offset_ns)
    write_report(report, out)
    (out / "INCOMPLETE").unlink()
    print(f"report (recorded /emotions vs the bag's {synth_args.labels_topic} labels):")
    for line in summary_lines(report):
        print("  " + line)
    print("  latency: end_to_end = camera stamp to the node's publish (DDS transport + queue + inference); "
          "node = the node's own work")
    plots = [out / "timeline.png"] + ([out / "confusion.png"] if report["accuracy"] else [])
    print(f"  plots: {', '.join(shown(p) for p in plots)}")
    print(f"  report: {shown(out / 'report.json')}")
    return 0


def run(args) -> int:
    try:
        return run_demo(args)
    except BagError as err:
        print(f"fer-ros demo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fer-ros demo: interrupted; {args.out} is incomplete", file=sys.stderr)
        return 130
    except Exception as err:
        print(f"fer-ros demo: error: {type(err).__name__}: {one_line(err)}", file=sys.stderr)
        return 1
