"""End-to-end training throughput: images per second through the real training pipeline.

Each measured step is what `fer-ros train` does: the DataLoader hands over a uint8 batch of an
in-memory FER2013-shaped data set (48x48 grey, decoded once), the batch goes to the device, is
flipped/rotated/resized to 224x224 there (`fer_ros.training.augment`), and the model takes a
forward + backward + SGD step (`fer_ros.training.train.train_step`). Warm-up steps (and
compilation) are excluded; the figure is the median of timed windows.

    python benchmarks/train_throughput.py                          # CPU, and CUDA when present
    python benchmarks/train_throughput.py --device cuda --steps 50 --compile

Writes benchmarks/results/train_throughput_<device>.json and .txt (the table it prints).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from fer_ros.training.augment import prepare_batch
from fer_ros.training.build import build, make_optimizer
from fer_ros.training.config import load_config
from fer_ros.training.datasets import ArrayDataset
from fer_ros.training.distributed import amp_dtype
from fer_ros.training.sampling import EpochSampler, make_loader
from fer_ros.training.train import train_step

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    amp: str,
    compile_: bool,
    size: int = 224,
) -> dict:
    cfg = load_config(
        "fer2013",
        {
            "train.batch_size": batch,
            "train.amp": amp,
            "data.input_size": size,
            "train.channels_last": True,
        },
    )
    n = batch * (steps + warmup)
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(
        torch.randint(0, 256, (n, 48, 48, 1), dtype=torch.uint8, generator=g),
        torch.randint(0, 7, (n,), generator=g),
        tuple(range(7)),
        "gray",
    )
    model = build(cfg, 7).to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model)
    amp_t = amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_t == torch.float16)
    net = torch.compile(model) if compile_ else model
    aug = torch.Generator(device=device).manual_seed(0)
    loader = make_loader(data, batch, EpochSampler(n, 0), workers=0, device=device)
    times = []
    _sync(device)
    t = time.perf_counter()
    for i, (images, targets) in enumerate(loader):
        train_step(net, model, optimizer, scaler, images, targets, cfg, aug, amp_t)
        _sync(device)
        now = time.perf_counter()
        if i >= warmup:
            times.append(now - t)
        t = now
    step_s = statistics.median(times)
    # The input side alone (loader + transfer + augmentation), to show whether it could be the
    # bottleneck.
    data_times = []
    for images, _ in make_loader(data, batch, EpochSampler(n, 1), workers=0, device=device):
        t = time.perf_counter()
        prepare_batch(
            images.to(device, non_blocking=True),
            size=size,
            color="gray",
            mean=cfg.data.mean,
            std=cfg.data.std,
            augment=cfg.augment,
            generator=aug,
            channels_last=True,
        )
        _sync(device)
        data_times.append(time.perf_counter() - t)
    data_s = statistics.median(data_times[warmup:] or data_times)
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    else:
        mem = None
    return {
        "device": str(device),
        "batch": batch,
        "input": size,
        "amp": "fp32" if amp_t is None else str(amp_t).replace("torch.", ""),
        "compile": compile_,
        "steps_timed": len(times),
        "step_ms_median": round(step_s * 1000, 1),
        "img_per_s": round(batch / step_s, 1),
        "input_pipeline_img_per_s": round(batch / data_s, 1),
        "peak_gpu_mem_gib": None if mem is None else round(mem, 2),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="all", help="cpu, cuda or all (default: cpu, and cuda when present)"
    )
    parser.add_argument("--batches", default="48,256")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 3 on CPU, 50 on CUDA)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps first (default 1 CPU, 10 CUDA)"
    )
    parser.add_argument("--amp", default="auto", help="auto (bf16 on CUDA), bf16, fp16, off")
    parser.add_argument(
        "--compile", action="store_true", help="also measure with torch.compile (CUDA)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--note", default="", help="free text stored with the results (machine, load)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    for dev_name in devices:
        device = torch.device(dev_name)
        steps = args.steps or (50 if device.type == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
        rows = []
        variants = (
            [(False, args.amp)] if device.type == "cpu" else [(False, "off"), (False, args.amp)]
        )
        if args.compile and device.type == "cuda":
            variants.append((True, args.amp))
        for batch in (int(b) for b in args.batches.split(",")):
            for compile_, amp in variants:
                rows.append(measure(device, batch, steps, warmup, amp, compile_))
                print(json.dumps(rows[-1]), flush=True)
        result = {
            "what": "end-to-end training throughput: in-memory FER2013-shaped data (48x48 grey) "
            "-> "
            "device -> flip/rotate/resize to 224 -> MiT-b0 fusion forward+backward+SGD step",
            "device_name": device_name(device),
            "torch": torch.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "note": args.note,
            "rows": rows,
        }
        lines = [
            f"# {result['what']}",
            f"# {result['device_name']}, torch {torch.__version__}, "
            f"{steps} timed steps after {warmup} warm-up (median step)"
            + (f"; {args.note}" if args.note else ""),
            f"{'batch':>5} {'amp':>8} {'compile':>7} {'step ms':>9} {'img/s':>8} "
            f"{'input-side img/s':>17}",
        ]
        lines += [
            f"{r['batch']:>5} {r['amp']:>8} {str(r['compile']):>7} {r['step_ms_median']:>9} "
            f"{r['img_per_s']:>8} "
            f"{r['input_pipeline_img_per_s']:>17}"
            for r in rows
        ]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"train_throughput_{device.type}.json").write_text(
            json.dumps(result, indent=1) + "\n"
        )
        (args.out / f"train_throughput_{device.type}.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
