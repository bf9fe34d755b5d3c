"""What the CPU can do for the classifier: ONNX Runtime as the engine runs it, with ONNX Runtime's
transformer fusions, and int8 static quantisation, timed at batch 1 and scored on real faces.

For each variant: the batch-1 latency (median and p90 of --runs calls, 2 threads, threads sleeping
as the engine's default) of the shipped model at its own input size and of random MiT-b0 weights at
224x224, and, for the shipped model, the PublicTest accuracy of the same graph. int8 is calibrated
on --calibration Training faces (never on PublicTest), static, QDQ, per channel.

    python benchmarks/cpu_model.py --data <dir>/fer2013 --json benchmarks/results/cpu_model.json

A variant is worth shipping as an engine option only if it is at least 5 % faster at both sizes and
loses at most 0.5 points of PublicTest accuracy; the table says which do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ACCURACY_GATE = 0.005  # points of PublicTest accuracy a faster variant may lose
SPEED_GATE = 0.05  # how much faster (both sizes) it must be to be worth an option


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the engine's default
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def latencies(sessions: dict, size: int, runs: int, rounds: int = 10, warmup: int = 20) -> dict:
    """Batch-1 latency of each session, interleaved in `rounds` blocks so that a slow minute of a
    shared machine hits every variant alike (sequential timing made 10 % differences come and
    go)."""
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    times = {name: [] for name in sessions}
    for sess in sessions.values():
        for _ in range(warmup):
            sess.run(None, {"input": x})
    for _ in range(rounds):
        for name, sess in sessions.items():
            for _ in range(max(1, runs // rounds)):
                t0 = time.perf_counter()
                sess.run(None, {"input": x})
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        name: {
            "median_ms": round(statistics.median(t), 3),
            "p90_ms": round(float(np.percentile(t, 90)), 3),
        }
        for name, t in times.items()
    }


def faces(root: Path, split: str, pre, limit: int | None = None, seed: int = 0):
    """(normalised inputs (N, 3, S, S), labels) of an image-folder split, through the engine's
    preprocessing."""
    from fer_ros.model.preprocess import normalize
    from fer_ros.training.datasets import load_splits

    data = load_splits("fer2013_folder", root, "fer7", color=pre.color, size=pre.input_size)[split]
    order = (
        np.arange(len(data))
        if limit is None
        else np.random.default_rng(seed).permutation(len(data))[:limit]
    )
    crops = [data[int(i)][0].numpy() for i in order]
    x = normalize(
        torch.from_numpy(pre.resize(crops)).permute(0, 3, 1, 2), pre.mean, pre.std
    ).numpy()
    return x, np.array([int(data[int(i)][1]) for i in order])


def accuracy(sess, x: np.ndarray, y: np.ndarray) -> float:
    logits = np.concatenate(
        [sess.run(None, {"input": x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )
    return float((logits.argmax(1) == y).mean())


class Calibration:
    """onnxruntime.quantization's CalibrationDataReader over a few hundred inputs, one at a
    time."""

    def __init__(self, x: np.ndarray):
        self.items = iter([{"input": x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.items, None)


def variants(model, size: int, workdir: Path, calibration: np.ndarray) -> dict[str, Path]:
    """fp32 as the engine exports it, the same with ORT's transformer fusions, and int8 static."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static
    from onnxruntime.transformers.optimizer import optimize_model

    from fer_ros.model.export import export_onnx

    fp32 = export_onnx(model, workdir / f"fp32_{size}.onnx", size, dynamic_batch=True)
    fused = workdir / f"fused_{size}.onnx"
    optimize_model(
        str(fp32), model_type="vit", num_heads=0, hidden_size=0, opt_level=1
    ).save_model_to_file(str(fused))
    prepared = workdir / f"prepared_{size}.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    int8 = workdir / f"int8_{size}.onnx"
    quantize_static(
        str(prepared),
        str(int8),
        Calibration(calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return {
        "onnxruntime fp32 (engine)": fp32,
        "onnxruntime fp32 + transformer fusions": fused,
        "onnxruntime int8 static (QDQ, per channel)": int8,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="the fer2013 image folder (train/ and val/)")
    parser.add_argument("--checkpoint", default="", help="default: the shipped model")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--calibration", type=int, default=512, help="Training faces for int8 calibration"
    )
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    from fer_ros.model.checkpoint import load_checkpoint
    from fer_ros.model.mit import build_model
    from fer_ros.paths import default_checkpoint
    from fer_ros.tools.bench import machine

    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    model, meta = load_checkpoint(checkpoint)
    pre = meta.preprocess
    val_x, val_y = faces(Path(args.data), "val", pre)
    calib_x, _ = faces(Path(args.data), "train", pre, limit=args.calibration)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shipped = variants(model, pre.input_size, Path(tmp), calib_x)
        torch.manual_seed(0)
        random224 = build_model("mit_b0", num_classes=7).eval()
        # Calibrated on the same faces at 224x224 (random weights: speed only, accuracy is
        # meaningless).
        big_calib = torch.nn.functional.interpolate(
            torch.from_numpy(calib_x[:128]), size=224, mode="bilinear", align_corners=False
        ).numpy()
        at224 = variants(random224, 224, Path(tmp), big_calib)
        own = {name: session(path, args.threads) for name, path in shipped.items()}
        small = latencies(own, pre.input_size, args.runs)
        big = latencies(
            {name: session(path, args.threads) for name, path in at224.items()}, 224, args.runs
        )
        plain = None
        for name in shipped:
            acc = accuracy(own[name], val_x, val_y)
            plain = acc if plain is None else plain
            rows.append(
                {
                    "variant": name,
                    "model_input": pre.input_size,
                    "batch1": small[name],
                    "batch1_224_random_weights": big[name],
                    "publictest_accuracy": round(acc, 4),
                    "accuracy_change": round(acc - plain, 4),
                    "file_mb": round(shipped[name].stat().st_size / 1e6, 2),
                }
            )
    # Ships only if clearly faster (beyond timing noise) at the shipped size and at 224, and
    # accurate.
    for r in rows:
        r["passes_gate"] = (
            r["batch1"]["median_ms"] < (1 - SPEED_GATE) * rows[0]["batch1"]["median_ms"]
            and r["batch1_224_random_weights"]["median_ms"]
            < (1 - SPEED_GATE) * rows[0]["batch1_224_random_weights"]["median_ms"]
            and r["accuracy_change"] >= -ACCURACY_GATE
        )
    report = {
        "checkpoint": checkpoint.name,
        "publictest_images": int(len(val_y)),
        "threads": args.threads,
        "runs": args.runs,
        "accuracy_gate_points": ACCURACY_GATE * 100,
        "speed_gate": SPEED_GATE,
        "machine": machine(),
        "results": rows,
    }
    lines = [
        f"{'variant':<44} {'batch-1 ms at ' + str(pre.input_size):>16} {'at 224 ms':>10} "
        f"{'PublicTest':>10} "
        f"{'change':>7} {'ships?':>6}"
    ]
    for r in rows:
        lines.append(
            f"{r['variant']:<44} {r['batch1']['median_ms']:16.2f} "
            f"{r['batch1_224_random_weights']['median_ms']:10.2f} "
            f"{r['publictest_accuracy']:10.4f} {r['accuracy_change'] * 100:+6.2f} "
            f"{('yes' if r['passes_gate'] else 'no') if r is not rows[0] else '-':>6}"
        )
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        Path(args.json).with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
