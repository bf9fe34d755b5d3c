"""Where a CPU training epoch goes: data loading, augmentation, forward, backward, optimiser.

Builds a run exactly as `fer-ros train` does (`fer_ros.training.train.start`: the recipe's data,
sampler, loader, model and optimiser) and times `--steps` training steps stage by stage, then one
pass of validation, and scales both to a whole epoch of the recipe. Each stage is timed on its
own (`torch` on the CPU is synchronous), so the stages add up to the step.

    python benchmarks/epoch_profile.py --data <dir>/ferplus/fer2013.csv \\
        --json benchmarks/results/epoch_profile_cpu.json

Run it on a quiet machine: another process on the same cores moves every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fer_ros.training.augment import prepare_batch
from fer_ros.training.config import load_config
from fer_ros.training.train import start, validate

STAGES = ("load", "augment", "forward", "backward", "optimiser")


def timed_steps(run, steps: int) -> dict[str, list[float]]:
    """Milliseconds per stage for `steps` steps (after two warm-up steps)."""
    cfg, times = run.cfg, {stage: [] for stage in STAGES}
    run.model.train()
    batches = iter(run.loader)
    for i in range(steps + 2):
        t0 = time.perf_counter()
        images, targets = next(batches)
        t1 = time.perf_counter()
        x = prepare_batch(
            images,
            size=cfg.data.input_size,
            color=cfg.data.color,
            mean=cfg.data.mean,
            std=cfg.data.std,
            augment=cfg.augment,
            generator=run.aug_gen,
            channels_last=cfg.train.channels_last,
        )
        t2 = time.perf_counter()
        logits = run.net(x)
        if targets.dim() == 2:
            loss = F.cross_entropy(logits, targets, weight=run.loss_weight)
        else:
            loss = F.cross_entropy(logits, targets, weight=run.loss_weight, ignore_index=-1)
        t3 = time.perf_counter()
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip)
        run.optimizer.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        t5 = time.perf_counter()
        if i >= 2:
            for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                times[stage].append((b - a) * 1e3)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="the recipe's data (fer2013.csv)")
    parser.add_argument("--config", default="fer2013_cpu", help="recipe (default fer2013_cpu)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--set", action="append", default=[], help="section.key=value")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer_ros_profile-") as out:
        overrides = [f"data.root={args.data}", f"train.out_dir={out}", "train.resume=false"]
        cfg = load_config(args.config, overrides + args.set)
        t0 = time.perf_counter()
        run = start(cfg)
        setup_s = time.perf_counter() - t0
        times = timed_steps(run, args.steps)
        t0 = time.perf_counter()
        validate(run, run.val_set)
        val_s = time.perf_counter() - t0
    step_ms = {s: round(sum(v) / len(v), 2) for s, v in times.items()}
    total = sum(step_ms.values())
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "config": args.config,
        "overrides": args.set,
        "batch_size": cfg.train.batch_size,
        "input_size": cfg.data.input_size,
        "workers": cfg.data.workers,
        "steps_timed": args.steps,
        "setup_s": round(setup_s, 1),
        "step_ms": step_ms,
        "step_share_pct": {s: round(100 * v / total, 1) for s, v in step_ms.items()},
        "steps_per_epoch": run.steps_per_epoch,
        "train_epoch_s": round(total * run.steps_per_epoch / 1e3, 1),
        "validation_s": round(val_s, 1),
        "img_per_s": round(cfg.train.batch_size * 1e3 / total, 1),
    }
    lines = [
        f"{args.config}: batch {result['batch_size']}, input {result['input_size']}, "
        f"{result['steps_per_epoch']} steps an epoch, {result['machine']}",
        "| stage | ms a step | share |",
        "|---|---|---|",
        *(f"| {s} | {step_ms[s]} | {result['step_share_pct'][s]} % |" for s in STAGES),
        f"| step | {round(total, 2)} | {result['img_per_s']} img/s |",
        f"epoch: {result['train_epoch_s']} s training + {result['validation_s']} s validation",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        args.json.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
