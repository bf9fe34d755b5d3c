"""End-to-end latency of fer_node: camera process -> node process -> listener process.

A publisher process sends 640x480 bgr8 frames with one real face at 30 Hz for --duration seconds
(best-effort, with the shipped Fast DDS profile, as a camera driver started by the launch file
would); fer_node runs in its own process (`fer-ros run`); this process listens to /emotions and
/diagnostics and samples the node's CPU and memory from /proc. It prints a table and writes JSON.

    .venv/bin/python benchmarks/node_latency.py --duration 60 --json benchmarks/results/node_latency_cpu.json
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


def face_frame(size=(640, 480)) -> np.ndarray:
    """The astronaut photo (a real frontal face) centred in a 640x480 frame, BGR."""
    import cv2
    import skimage.data

    width, height = size
    face = cv2.resize(skimage.data.astronaut(), (height, height), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    left = (width - height) // 2
    frame[:, left:left + height] = face
    return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def publish(duration: float, rate: float, crop: int) -> None:
    """The camera process."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from fer_ros.ros.dds import tune_allocator

    tune_allocator()
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, FRAME_TOPIC, qos_profile_sensor_data)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    frame = face_frame()
    if crop:
        import cv2
        frame = cv2.resize(frame[30:330, 170:470], (crop, crop), interpolation=cv2.INTER_AREA)
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                data=frame.tobytes())
    count = int(duration * rate)
    start = time.monotonic()
    for i in range(count):
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "bench_camera"
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    print(f"sent {count}", flush=True)
    time.sleep(0.5)
    rclpy.try_shutdown()


def proc_sample(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, resident MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def make_checkpoint(path: Path, input_size: int) -> None:
    import torch

    from fer_ros.model.checkpoint import ModelMeta, save_checkpoint
    from fer_ros.model.preprocess import Preprocess
    from fer_ros.labels import FER7
    from fer_ros.model.mit import build_model

    torch.manual_seed(0)
    meta = ModelMeta(labels=list(FER7), preprocess=Preprocess(input_size=input_size),
                     dataset="random weights (speed only)")
    save_checkpoint(path, build_model("mit_b0", num_classes=7).eval(), meta)


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from fer_ros.ros.dds import large_image_env, tune_allocator
    from fer_ros.msg import EmotionArray

    env = large_image_env()
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 40))
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID",
                                           "FASTDDS_DEFAULT_PROFILES_FILE")})
    workdir = Path(tempfile.mkdtemp(prefix="fer_bench_"))
    checkpoint = args.checkpoint
    if not checkpoint:
        checkpoint = workdir / f"random_{args.input_size}.safetensors"
        make_checkpoint(checkpoint, args.input_size)
    fer_ros = str(Path(sys.executable).parent / "fer-ros")
    node_cmd = [fer_ros, "run", "--checkpoint", str(checkpoint), "--image", FRAME_TOPIC, "--namespace", "bench",
                "-p", f"detector:={args.detector}", "-p", "diagnostics_period:=1.0"]
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
    rclpy.init()
    listener = rclpy.create_node("bench_listener")
    arrivals, faces, diagnostics = [], [], []

    def on_emotions(msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        arrivals.append((now, (now - stamp) / 1e6))
        faces.append(len(msg.faces))

    listener.create_subscription(EmotionArray, "/bench/emotions", on_emotions, 100)
    listener.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    camera = subprocess.Popen([sys.executable, __file__, "--role", "publisher", "--duration", str(args.duration),
                               "--rate", str(args.rate), "--crop", str(args.crop)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples = []
    next_sample = time.monotonic()
    while camera.poll() is None:
        rclpy.spin_once(listener, timeout_sec=0.01)
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic(), *proc_sample(node.pid)))
            next_sample += 1.0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(listener, timeout_sec=0.01)
    sent = int(camera.stdout.read().decode().split("sent ")[-1].split()[0])
    node.send_signal(2)
    node.wait(20)
    listener.destroy_node()
    rclpy.try_shutdown()

    latencies = np.array([lat for _, lat in arrivals])
    times = np.array([t for t, _ in arrivals]) / 1e9
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    tenth = max(1, len(latencies) // 6)
    values = {}
    for d in diagnostics[-3:]:
        for status in d.status:
            if status.name.startswith("/bench/fer_node"):
                values = {kv.key: kv.value for kv in status.values}
    cpu_used = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0]) * 100 if len(samples) > 1 else 0
    rss = [s[2] for s in samples]
    return {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_average_before": os.getloadavg()},
        "settings": {"duration_s": args.duration, "rate_hz": args.rate, "frame": "640x480 bgr8" if not args.crop
                     else f"{args.crop}x{args.crop} bgr8", "detector": args.detector,
                     "input_size": args.input_size, "params": args.param, "qos": "best_effort depth 1",
                     "checkpoint": str(args.checkpoint or "random weights")},
        "frames_sent": sent, "frames_answered": len(arrivals), "answered_fps": len(arrivals) / span if span else 0,
        "drop_rate": 1 - len(arrivals) / sent if sent else 1.0,
        "faces_found_rate": float(np.mean([f > 0 for f in faces])) if faces else 0.0,
        "latency_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "p99": pct(latencies, 99),
                       "max": float(latencies.max()) if len(latencies) else float("nan")},
        "latency_p50_first_sixth_ms": pct(latencies[:tenth], 50),
        "latency_p50_last_sixth_ms": pct(latencies[-tenth:], 50),
        "node_detect_p50_ms": float(values.get("detect_p50_ms", "nan")),
        "node_classify_p50_ms": float(values.get("classify_p50_ms", "nan")),
        "node_backend": values.get("backend", ""),
        "node_cpu_percent": cpu_used,
        # After 10 s the engine's arenas and DDS buffers are warm: growth from there on would be a leak.
        "node_rss_mb": {"start": rss[0] if rss else 0, "at_10s": rss[min(10, len(rss) - 1)] if rss else 0,
                        "end": rss[-1] if rss else 0, "max": max(rss) if rss else 0},
    }


def table(r: dict) -> str:
    lat = r["latency_ms"]
    rows = [
        ("frames sent / answered", f"{r['frames_sent']} / {r['frames_answered']}  (drop {r['drop_rate']:.1%})"),
        ("answered frames/s", f"{r['answered_fps']:.1f}"),
        ("faces found in answered frames", f"{r['faces_found_rate']:.1%}"),
        ("end-to-end latency p50/p95/p99/max ms", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}"),
        ("latency p50 first / last sixth ms", f"{r['latency_p50_first_sixth_ms']:.1f} / {r['latency_p50_last_sixth_ms']:.1f}"),
        ("node detect / classify p50 ms", f"{r['node_detect_p50_ms']:.1f} / {r['node_classify_p50_ms']:.1f}  ({r['node_backend']})"),
        ("node CPU %", f"{r['node_cpu_percent']:.0f}"),
        ("node RSS MB start / at 10 s / end / max", "{start:.0f} / {at_10s:.0f} / {end:.0f} / {max:.0f}".format(
            **r["node_rss_mb"])),
    ]
    s = r["settings"]
    head = f"fer_node, {s['frame']} at {s['rate_hz']:g} Hz for {s['duration_s']:g} s, detector {s['detector']}, " \
           f"model input {s['input_size']}, {r['machine']['cpus']} CPUs"
    width = max(len(k) for k, _ in rows)
    return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", default="bench", choices=("bench", "publisher"), help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--crop", type=int, default=0, help="send square face crops of this size instead of 640x480")
    parser.add_argument("--detector", default="haar")
    parser.add_argument("--input-size", type=int, default=224, help="model input size of the random checkpoint")
    parser.add_argument("--checkpoint", default="", help="use this checkpoint instead of random weights")
    parser.add_argument("-p", "--param", action="append", default=[], help="extra node parameter NAME:=VALUE")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    if args.role == "publisher":
        publish(args.duration, args.rate, args.crop)
        return
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        Path(args.json).with_suffix(".txt").write_text(table(result) + "\n")


if __name__ == "__main__":
    main()
