"""`fer-ros bench`: time MiT-fusion the way the paper did (224x224, batch 48, warm-up, 300 runs,
mean and median), plus batch-1 latency and a batch sweep, on CPU and/or CUDA, with transformers'
SegformerModel (the MiT-b0 encoder alone) timed in the same run as a reference.

Random weights by default (speed does not depend on them); `--checkpoint` times a trained model at
its own input size and class count instead. Every fer_ros row goes
through `Engine.predict_tensor` (the call the node makes after preprocessing): input already on the
device, probabilities back on the host. Reference rows time the bare module call, synchronised.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from fer_ros.errors import ConfigError
from fer_ros.inference.engine import Engine
from fer_ros.labels import FER7
from fer_ros.model.checkpoint import ModelMeta
from fer_ros.model.macs import count_macs
from fer_ros.model.mit import build_model, count_params
from fer_ros.model.preprocess import Preprocess


@dataclass
class Row:
    name: str
    device: str
    batch: int
    mean_ms: float
    median_ms: float
    p90_ms: float
    runs: int
    images_per_s: float


def time_call(
    fn: Callable[[], object], runs: int, warmup: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
    """Wall time of each of `runs` calls, in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summarise(name: str, device: str, batch: int, times: list[float]) -> Row:
    median = statistics.median(times)
    return Row(
        name,
        device,
        batch,
        mean_ms=round(statistics.fmean(times), 3),
        median_ms=round(median, 3),
        p90_ms=round(float(np.percentile(times, 90)), 3),
        runs=len(times),
        images_per_s=round(batch * 1e3 / median, 1),
    )


def engine_configs(device: str) -> list[tuple[str, dict]]:
    """(row name, Engine keyword arguments) of each configuration timed on `device`."""
    if device == "cpu":
        return [("fer_ros torch fp32 eager", dict(backend="torch")),
                ("fer_ros onnxruntime fp32 (engine default)", dict(backend="onnxruntime")),
                ("fer_ros onnxruntime fp32 "
                 "spin=True", dict(backend="onnxruntime", spin=True))]  # fmt: skip
    return [
        ("fer_ros torch fp32 eager", dict(precision="fp32", compile=False, batch_sizes=())),
        ("fer_ros fp16 eager", dict(precision="fp16", compile=False, batch_sizes=())),
        ("fer_ros fp16 cuda-graph", dict(precision="fp16", compile=False)),
        ("fer_ros fp16 compile+cuda-graph (engine default)", dict(precision="fp16", compile=True)),
    ]


def reference_segformer(device: str, dtype: torch.dtype):
    """transformers' SegformerModel (MiT-b0 encoder, no head), or None when transformers is
    absent."""
    try:
        from transformers import SegformerConfig, SegformerModel
    except ImportError:
        return None
    return SegformerModel(SegformerConfig()).to(device, dtype).eval()


def model_source(args: argparse.Namespace) -> Callable[[], tuple[torch.nn.Module, ModelMeta]]:
    """A function giving a fresh (model, meta): the checkpoint's, or random MiT-b0 weights at
    --size."""
    if args.checkpoint:
        from fer_ros.model.checkpoint import load_checkpoint, read_meta

        read_meta(args.checkpoint)  # a missing or corrupt file fails here, before any timing
        return lambda: load_checkpoint(args.checkpoint)

    def random_model():
        torch.manual_seed(0)
        return build_model(num_classes=7), ModelMeta(
            labels=list(FER7), preprocess=Preprocess(input_size=args.size)
        )

    return random_model


def bench_device(device: str, args: argparse.Namespace, batches: list[int]) -> list[Row]:
    rows: list[Row] = []
    make = model_source(args)
    size = make()[1].preprocess.input_size
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)

    def runs_for(batch: int) -> int:
        if batch == args.batch:
            return args.runs
        return args.latency_runs if batch == 1 else args.sweep_runs

    for name, kwargs in engine_configs(device):
        if device == "cuda":
            kwargs["batch_sizes"] = kwargs.get("batch_sizes", tuple(sorted(set(batches))))
        model, meta = make()
        engine = Engine(model, meta, device=device, threads=args.threads, **kwargs)
        t0 = time.perf_counter()
        engine.warmup()
        note = f"{name}: ready in {time.perf_counter() - t0:.1f} s"
        print(
            note
            + (
                f" ({', '.join(engine._runner.notes)})"
                if getattr(engine._runner, "notes", None)
                else ""
            )
        )
        for b in batches:
            x = torch.randn(b, 3, size, size, device=device)
            # time_call runs the lambda before the loop moves on.
            times = time_call(lambda: engine.predict_tensor(x), runs_for(b), args.warmup)  # noqa: B023
            rows.append(summarise(name, device, b, times))
            print(format_row(rows[-1]), flush=True)
        engine.close()

    if not args.no_reference:
        dtypes = [("fp32", torch.float32)] + (
            [("fp16", torch.float16)] if device == "cuda" else []
        )
        for label, dtype in dtypes:
            ref = reference_segformer(device, dtype)
            if ref is None:
                print("transformers not installed: reference rows skipped")
                break
            name = f"transformers SegformerModel MiT-b0 encoder {label}"
            for b in batches:
                x = torch.randn(b, 3, size, size, device=device, dtype=dtype)
                with torch.inference_mode():
                    times = time_call(
                        lambda: ref(pixel_values=x),  # noqa: B023 (timed in this iteration)
                        runs_for(b),
                        args.warmup,
                        sync,
                    )
                rows.append(summarise(name, device, b, times))
                print(format_row(rows[-1]), flush=True)
            del ref
    return rows


def format_row(r: Row) -> str:
    return (
        f"{r.name:52s} {r.device:5s} {r.batch:5d} {r.mean_ms:9.2f} {r.median_ms:9.2f} "
        f"{r.p90_ms:9.2f} "
        f"{r.runs:5d} {r.images_per_s:9.1f}"
    )


HEADER = (
    f"{'name':52s} {'dev':5s} {'batch':>5s} {'mean_ms':>9s} {'median_ms':>9s} {'p90_ms':>9s} "
    f"{'runs':>5s} {'img/s':>9s}"
)


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    if hasattr(os, "getloadavg"):  # other work on the machine shows up here, and in the timings
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        nargs="+",
        default=None,
        help="cpu and/or cuda (default: cpu, plus cuda if present)",
    )
    parser.add_argument(
        "--size", type=int, default=224, help="input size of the random model (default 224)"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="time this fer_ros checkpoint (at its own input size) "
        "instead of random MiT-b0 weights",
    )
    parser.add_argument("--batch", type=int, default=48, help="the paper-protocol batch size")
    parser.add_argument("--runs", type=int, default=300, help="timed runs at --batch (paper: 300)")
    parser.add_argument("--latency-runs", type=int, default=300, help="timed runs at batch 1")
    parser.add_argument(
        "--sweep-runs", type=int, default=100, help="timed runs at the other sweep sizes"
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--sweep",
        default="1,4,16,48",
        help="comma-separated batch sizes (always includes 1 and --batch)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (torch and ONNX Runtime)"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip transformers' SegformerModel"
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if unknown := [d for d in devices if d not in ("cpu", "cuda")]:
        raise ConfigError(f"unknown device {unknown[0]!r}; use cpu and/or cuda")
    if "cuda" in devices and not torch.cuda.is_available():
        raise ConfigError(
            f"--device cuda but CUDA is not available to this PyTorch ({torch.__version__})"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = sorted({1, args.batch, *(int(b) for b in args.sweep.split(",") if b)})
    model, meta = model_source(args)()
    size = meta.preprocess.input_size
    params, macs = count_params(model), count_macs(model, size)
    what = (
        f"{args.checkpoint} ({meta.arch['variant']}"
        if args.checkpoint
        else "random weights (mit_b0"
    )
    print(
        f"{what} + fusion, {meta.num_classes} classes): {params:,} parameters; "
        f"{macs['conv_linear'] / 1e9:.3f} "
        f"G MACs at {size}x{size} (conv + linear; {macs['total'] / 1e9:.3f} G with the attention "
        "products)"
    )
    machine_at_start = machine()
    print(f"machine: {machine_at_start}")
    print(HEADER)
    rows: list[Row] = []
    for device in devices:
        rows += bench_device(device, args, batches)
    print()
    print(HEADER)
    for r in rows:
        print(format_row(r))
    if args.json:
        report = {
            "params": params,
            "macs": macs["conv_linear"],
            "macs_with_attention": macs["total"],
            "macs_counts": "Conv2d + Linear multiply-accumulates for one image "
            "(fer_ros.model.macs)",
            "input_size": size,
            "checkpoint": args.checkpoint,
            "protocol": {
                "batch": args.batch,
                "runs": args.runs,
                "latency_runs": args.latency_runs,
                "sweep_runs": args.sweep_runs,
                "warmup": args.warmup,
            },  # fmt: skip
            "machine": machine_at_start,
            "load_average_1min_at_end": machine().get("load_average_1min"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": [asdict(r) for r in rows],
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0
