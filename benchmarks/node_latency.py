"""End-to-end latency of fer_node, and where it goes: camera process -> node process -> listener.

A camera process sends bgr8 frames with real faces (the astronaut photo) at --rate for --duration
seconds (best effort, with the shipped Fast DDS profile, as a camera driver started by the launch
file would); fer_node runs in its own process (`fer-ros run`, the shipped model unless
--checkpoint);
this process listens to /emotions (end-to-end latency: image stamp to arrival), to the node's
~/timing (fer_ros/FrameTiming: transport, queue, decode, detect, classify, publish of every frame)
and to /diagnostics, and samples the node's CPU and memory from /proc. --load N runs N CPU-bound
processes beside them, as a robot's other work would. It prints a table and writes JSON.

    .venv/bin/python benchmarks/node_latency.py --duration 60 --json
    benchmarks/results/node_latency_cpu.json
    .venv/bin/python benchmarks/node_latency.py --load 1 -p max_age_ms:=150 --json ...
    .venv/bin/python benchmarks/node_latency.py --size 1280x720 --json ...     # 720p
    .venv/bin/python benchmarks/node_latency.py --faces 2 --json ...           # two people
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAME_TOPIC = "/bench/camera"
STAGES = ("transport", "queue", "decode", "detect", "classify", "publish")


def face_frame(width: int, height: int, faces: int) -> np.ndarray:
    """`faces` copies of the astronaut photo (a real frontal face) side by side in a frame, BGR."""
    import cv2
    import skimage.data

    side = min(height, width // faces)
    face = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    left = (width - side * faces) // 2
    for i in range(faces):
        frame[
            (height - side) // 2 : (height - side) // 2 + side,
            left + i * side : left + (i + 1) * side,
        ] = face
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def publish(args) -> None:
    """The camera process."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.ros.dds import tune_allocator

    tune_allocator()
    rclpy.init(
        args=[]
    )  # not sys.argv: the -p NAME:=VALUE items are the node's, not remap rules here
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, FRAME_TOPIC, qos_profile_sensor_data)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    width, height = (int(v) for v in args.size.split("x"))
    frame = face_frame(width, height, args.faces)
    if args.crop:
        import cv2

        frame = cv2.resize(
            frame[30:330, 170:470], (args.crop, args.crop), interpolation=cv2.INTER_AREA
        )
    msg = Image(
        height=frame.shape[0],
        width=frame.shape[1],
        encoding="bgr8",
        step=frame.shape[1] * 3,
        data=frame.tobytes(),
    )
    count = int(args.duration * args.rate)
    start = time.monotonic()
    for i in range(count):
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "bench_camera"
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
    print(f"sent {count}", flush=True)
    time.sleep(0.5)
    rclpy.try_shutdown()


def burn() -> None:
    """A CPU-bound process: another program wanting a whole core."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


def proc_sample(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def make_checkpoint(path: Path, input_size: int) -> None:
    import torch

    from fer_ros.labels import FER7
    from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
    from fer_ros.model.mit import build_model
    from fer_ros.model.preprocess import Preprocess

    torch.manual_seed(0)
    meta = ModelMeta(
        labels=list(FER7),
        preprocess=Preprocess(input_size=input_size),
        dataset="random weights (speed only)",
    )
    save_checkpoint(path, build_model("mit_b0", num_classes=7).eval(), meta)


def stats(values) -> dict:
    from fer_ros.metrics import latency_stats

    return {
        k: round(v, 2) if isinstance(v, float) else v for k, v in latency_stats(values).items()
    }


def run(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from fer_ros.model.checkpoint import read_meta
    from fer_ros.msg import EmotionArray, FrameTiming
    from fer_ros.paths import default_checkpoint
    from fer_ros.ros.dds import large_image_env, tune_allocator
    from fer_ros.ros.domain import private_graph

    graph = private_graph()
    env = large_image_env()
    workdir = Path(tempfile.mkdtemp(prefix="fer_bench_"))
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.random_input_size:
        checkpoint = workdir / f"random_{args.random_input_size}.safetensors"
        make_checkpoint(checkpoint, args.random_input_size)
    meta = read_meta(checkpoint or default_checkpoint())
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    node_cmd = [
        fer_ros,
        "run",
        "--image",
        FRAME_TOPIC,
        "--namespace",
        "bench",
        "-p",
        f"detector:={args.detector}",
        "-p",
        "diagnostics_period:=1.0",
    ]
    if checkpoint:
        node_cmd += ["--checkpoint", str(checkpoint)]
    for item in args.param:
        node_cmd += ["-p", item]
    node_log = open(workdir / "node.log", "wb")
    node = subprocess.Popen(node_cmd, env=env, stdout=node_log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while b"listening on" not in (workdir / "node.log").read_bytes():
        if node.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("fer_node did not start:\n" + (workdir / "node.log").read_text())
        time.sleep(0.2)

    tune_allocator()
    rclpy.init(
        args=[]
    )  # not sys.argv: the -p NAME:=VALUE items are the node's, not remap rules here
    listener = rclpy.create_node("bench_listener")
    arrivals, faces, timings, diagnostics = [], [], [], []

    def on_emotions(msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        arrivals.append((now, (now - stamp) / 1e6))
        faces.append(len(msg.faces))

    listener.create_subscription(EmotionArray, "/bench/emotions", on_emotions, 100)
    listener.create_subscription(FrameTiming, "/bench/fer_node/timing", timings.append, 100)
    listener.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    loads = [
        subprocess.Popen([sys.executable, __file__, "--role", "load"]) for _ in range(args.load)
    ]
    camera = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "publisher",
            "--duration",
            str(args.duration),
            "--rate",
            str(args.rate),
            "--crop",
            str(args.crop),
            "--size",
            args.size,
            "--faces",
            str(args.faces),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    samples = []
    next_sample = time.monotonic()
    try:
        while camera.poll() is None:
            rclpy.spin_once(listener, timeout_sec=0.01)
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic(), *proc_sample(node.pid)))
                next_sample += 1.0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            rclpy.spin_once(listener, timeout_sec=0.01)
    finally:
        for load in loads:
            load.kill()
            load.wait()
    sent = int(camera.stdout.read().decode().split("sent ")[-1].split()[0])
    node.send_signal(2)
    node.wait(20)
    listener.destroy_node()
    rclpy.try_shutdown()

    latencies = np.array([lat for _, lat in arrivals])
    times = np.array([t for t, _ in arrivals]) / 1e9
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    sixth = max(1, len(latencies) // 6)
    values = {}
    for d in diagnostics:
        for status in d.status:
            kv = {k.key: k.value for k in status.values}
            if kv.get("node") == "/bench/fer_node":
                values = kv
    cpu_used = (
        (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0]) * 100
        if len(samples) > 1
        else 0
    )
    rss = [s[2] for s in samples]
    stage = {
        name: np.array([getattr(t, f"{name}_ms") for t in timings]) for name in (*STAGES, "total")
    }
    tail = {}
    if len(timings) >= 20:  # where the slowest 2 % of frames spent their time, against all frames
        slow = stage["total"] >= np.percentile(stage["total"], 98)
        tail = {
            name: {
                "all_mean": round(float(stage[name].mean()), 2),
                "slowest_2pct_mean": round(float(stage[name][slow].mean()), 2),
            }
            for name in STAGES
        }
        tail["full_search_share"] = {
            "all": round(float(np.mean([t.full_search for t in timings])), 3),
            "slowest_2pct": round(
                float(np.mean([t.full_search for t, s in zip(timings, slow) if s])), 3
            ),
        }
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_before": os.getloadavg(),
        },
        "settings": {
            "duration_s": args.duration,
            "rate_hz": args.rate,
            "frame": f"{args.crop}x{args.crop} bgr8" if args.crop else f"{args.size} bgr8",
            "faces_per_frame": args.faces,
            "detector": args.detector,
            "model": values.get("model", ""),
            "model_input": meta.preprocess.input_size,
            "params": args.param,
            "load_processes": args.load,
            "qos": "best_effort depth 1",
            "graph": graph,
            "checkpoint": str(checkpoint) if checkpoint else "the shipped default model",
        },
        "frames_sent": sent,
        "frames_answered": len(arrivals),
        "answered_fps": len(arrivals) / span if span else 0,
        "node_frames_dropped": int(values.get("frames_dropped", 0)),
        "node_frames_stale": int(values.get("frames_stale", 0)),
        "faces_found_rate": float(np.mean([f >= args.faces for f in faces])) if faces else 0.0,
        "latency_ms": stats(latencies),
        "latency_p50_first_sixth_ms": round(float(np.median(latencies[:sixth])), 2)
        if len(latencies)
        else None,
        "latency_p50_last_sixth_ms": round(float(np.median(latencies[-sixth:])), 2)
        if len(latencies)
        else None,
        "stages_ms": {name: stats(stage[name]) for name in (*STAGES, "total")},
        "tail": tail,
        "node_backend": values.get("backend", ""),
        "node_cpu_percent": round(cpu_used, 1),
        # After 10 s the engine's arenas and DDS buffers are warm: growth from there on would be a
        # leak.
        "node_rss_mb": {
            "start": rss[0] if rss else 0,
            "at_10s": rss[min(10, len(rss) - 1)] if rss else 0,
            "end": rss[-1] if rss else 0,
            "max": max(rss) if rss else 0,
        },
    }


def table(r: dict) -> str:
    lat = r["latency_ms"]
    rows = [
        (
            "frames sent / answered",
            f"{r['frames_sent']} / {r['frames_answered']}  (node dropped "
            f"{r['node_frames_dropped']} replaced, {r['node_frames_stale']} too old)",
        ),
        ("answered frames/s", f"{r['answered_fps']:.1f}"),
        ("frames with every face found", f"{r['faces_found_rate']:.1%}"),
        (
            "end-to-end latency p50/p95/p99/max ms",
            f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}",
        ),
        (
            "latency p50 first / last sixth ms",
            f"{r['latency_p50_first_sixth_ms']} / {r['latency_p50_last_sixth_ms']}",
        ),
        ("node CPU %, backend", f"{r['node_cpu_percent']:.0f}  ({r['node_backend']})"),
        (
            "node RSS MB start / at 10 s / end / max",
            "{start:.0f} / {at_10s:.0f} / {end:.0f} / {max:.0f}".format(**r["node_rss_mb"]),
        ),
    ]
    s = r["settings"]
    head = (
        f"fer_node, {s['frame']} with {s['faces_per_frame']} face(s) at {s['rate_hz']:g} Hz for "
        f"{s['duration_s']:g} s, detector {s['detector']}, model {s['model']} (input "
        f"{s['model_input']}), "
        f"{s['load_processes']} CPU-bound process(es) beside it, {r['machine']['cpus']} CPUs"
        + (f", {' '.join(s['params'])}" if s["params"] else "")
    )
    width = max(len(k) for k, _ in rows)
    lines = [head] + [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append(
        f"  {'stage ms':<12} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"
        + (f" {'mean':>7} {'slowest 2% mean':>16}" if r["tail"] else "")
    )
    for name, st in r["stages_ms"].items():
        tail = r["tail"].get(name)
        lines.append(
            f"  {name:<12} {st['p50']:7.1f} {st['p95']:7.1f} {st['p99']:7.1f} {st['max']:7.1f}"
            + (f" {tail['all_mean']:7.1f} {tail['slowest_2pct_mean']:16.1f}" if tail else "")
        )
    if r["tail"]:
        share = r["tail"]["full_search_share"]
        lines.append(
            f"  full-frame searches: {share['all']:.0%} of all frames, "
            f"{share['slowest_2pct']:.0%} of the "
            f"slowest 2 %"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--role", default="bench", choices=("bench", "publisher", "load"), help=argparse.SUPPRESS
    )
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument(
        "--size", default="640x480", help="frame size WIDTHxHEIGHT (default 640x480)"
    )
    parser.add_argument(
        "--faces", type=int, default=1, help="faces per frame, side by side (default 1)"
    )
    parser.add_argument(
        "--crop", type=int, default=0, help="send square face crops of this size instead"
    )
    parser.add_argument(
        "--detector",
        default="auto",
        help="the node's detector parameter (default auto, as shipped)",
    )
    parser.add_argument(
        "--checkpoint", default="", help="checkpoint to run (default: the shipped model)"
    )
    parser.add_argument(
        "--random-input-size",
        type=int,
        default=0,
        help="run random MiT-b0 weights at this input size instead (speed only)",
    )
    parser.add_argument(
        "--load", type=int, default=0, help="CPU-bound processes to run beside the node"
    )
    parser.add_argument(
        "-p", "--param", action="append", default=[], help="extra node parameter NAME:=VALUE"
    )
    parser.add_argument(
        "--json", default="", help="write the results here (and the table beside it, .txt)"
    )
    args = parser.parse_args()
    if args.role == "publisher":
        publish(args)
        return
    if args.role == "load":
        burn()
        return
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        Path(args.json).with_suffix(".txt").write_text(table(result) + "\n")


if __name__ == "__main__":
    main()
