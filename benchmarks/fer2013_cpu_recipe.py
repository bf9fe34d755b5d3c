"""The short runs behind the CPU recipe (fer_ros/training/configs/fer2013_cpu.yaml), and their
table.

Each experiment is `fer-ros train` for 6 epochs on FER2013 (train = Training, val = PublicTest)
with a base recipe plus one change, scored on PublicTest; a 6-epoch cosine schedule is short, so
these compare levers against each other, not against the full 70-epoch run.

    python benchmarks/fer2013_cpu_recipe.py run --data <dir>/fer2013 --runs runs/recipe   # ~1 h
    on 2 cores
    python benchmarks/fer2013_cpu_recipe.py collect --runs runs/recipe --json
    benchmarks/results/fer2013_cpu_recipe.json

`run` trains every experiment that has no summary yet (so it resumes after an interruption);
`collect` reads the run folders and writes the table (JSON and .txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# The base: AdamW, short warm-up, cosine, light regularisation, 64x64, batch 64, 2 threads.
BASE = [
    "--config",
    "fer2013",
    "--format",
    "fer2013_folder",
    "--no-progress",
    "--set",
    "model.pretrained=none",
    "--set",
    "data.test_split=val",
    "--set",
    "optim.name=adamw",
    "--set",
    "optim.lr=1e-3",
    "--set",
    "optim.weight_decay=0.05",
    "--set",
    "optim.decay_norm_bias=false",
    "--set",
    "optim.schedule=cosine",
    "--set",
    "optim.warmup_steps=500",
    "--set",
    "optim.min_lr=1e-5",
    "--set",
    "optim.grad_clip=1.0",
    "--set",
    "train.batch_size=64",
    "--set",
    "train.early_stop=0",
    "--set",
    "train.epochs=6",
    "--set",
    "train.threads=2",
    "--set",
    "train.channels_last=false",
    "--set",
    "train.amp=off",
    "--set",
    "augment.rotate=10",
    "--set",
    "augment.scale=0.1",
    "--set",
    "augment.translate=0.05",
    "--set",
    "model.drop_rate=0.1",
    "--set",
    "model.drop_path_rate=0.05",
    "--set",
    "data.input_size=64",
]

# name -> (what changes, the overrides)
EXPERIMENTS = {
    "E1_base64": ("base: 64x64, AdamW lr 1e-3", []),
    "E2_base48": ("input 48x48 (FER2013's own size)", ["--set", "data.input_size=48"]),
    "E4_lr2e-3": ("lr 2e-3", ["--set", "optim.lr=2e-3"]),
    "E5_ema": ("weight EMA 0.998", ["--set", "train.ema=0.998"]),
    "E6_bal05": (
        "class weights (1/frequency)^0.5 in the loss",
        ["--set", "train.balance=loss", "--set", "train.balance_power=0.5"],
    ),
}


def run(args) -> int:
    for name, (_, overrides) in EXPERIMENTS.items():
        out = Path(args.runs) / name
        if (out / "summary.json").is_file():
            continue
        command = [
            sys.executable,
            "-m",
            "fer_ros.cli",
            "train",
            *BASE,
            "--data",
            args.data,
            "--out",
            str(out),
            *overrides,
        ]
        print(" ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            print(f"{name} failed", file=sys.stderr)
    return 0


def collect(args) -> int:
    rows = []
    for name, (change, overrides) in EXPERIMENTS.items():
        folder = Path(args.runs) / name
        history = (
            json.loads((folder / "history.json").read_text())
            if (folder / "history.json").is_file()
            else []
        )
        summary = (
            json.loads((folder / "summary.json").read_text())
            if (folder / "summary.json").is_file()
            else {}
        )
        test = summary.get("test", {})
        rows.append(
            {
                "name": name,
                "change": change,
                "overrides": overrides,
                "epochs": len(history),
                "publictest_acc_by_epoch": [round(h["val_acc"], 4) for h in history],
                "publictest_acc": round(test["accuracy"], 4) if test else None,
                "publictest_macro_f1": round(test["macro_f1"], 4) if test else None,
                "recall": {c: round(r, 3) for c, r in test.get("per_class_recall", {}).items()},
                "train_img_per_s": round(
                    sorted(h["img_per_s"] for h in history)[len(history) // 2], 1
                )
                if history
                else None,
                "note": ""
                if test or not history
                else f"stopped after {len(history)} epochs, macro-F1 "
                f"{history[-1]['val_macro_f1']:.3f}",
            }
        )
    report = {
        "protocol": "fer-ros train, 6 epochs, FER2013 Training -> PublicTest (val), 2 CPU cores",
        "base": BASE,
        "experiments": rows,
    }
    text = table(report)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        Path(args.json).with_suffix(".txt").write_text(text + "\n")
    return 0


def table(report: dict) -> str:
    lines = [
        f"{'experiment':<12} {'change':<46} {'acc':>6} {'F1':>6} {'disgust':>7} {'happy':>6} "
        f"{'img/s':>6}"
    ]
    for r in report["experiments"]:
        acc = f"{r['publictest_acc']:.3f}" if r["publictest_acc"] is not None else "  -"
        f1 = f"{r['publictest_macro_f1']:.3f}" if r["publictest_macro_f1"] is not None else "  -"
        lines.append(
            f"{r['name']:<12} {r['change']:<46} {acc:>6} {f1:>6} "
            f"{r['recall'].get('disgust', 0):7.2f} "
            f"{r['recall'].get('happy', 0):6.2f} {r['train_img_per_s'] or 0:6.0f}"
            + (
                f"  ({r['note']}; PublicTest by epoch {r['publictest_acc_by_epoch']})"
                if r["note"]
                else ""
            )
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True, help="the fer2013 folder (train/ and val/)")
    r.add_argument("--runs", default="runs/recipe")
    c = sub.add_parser("collect")
    c.add_argument("--runs", default="runs/recipe")
    c.add_argument("--json", default="")
    args = parser.parse_args()
    return run(args) if args.command == "run" else collect(args)


if __name__ == "__main__":
    sys.exit(main())
