"""Short fine-tuning runs for a model that carries over to other faces, judged on every dev set.

Each experiment fine-tunes the shipped model (`model.init`) with `fer-ros train` for a few hundred
steps, one lever changed, then scores its best checkpoint with benchmarks/cross_dataset.py on the three
dev sets at once: PublicTest (accuracy), muxspace val (macro-recall) and taiwanese_dev through the
node's pipeline (accuracy). Never on PublicTest alone; never trained on taiwanese_dev.

    python benchmarks/faces_anywhere_recipe.py run --data <dir> --runs runs/anywhere [--only A,B] [--threads 1]
    python benchmarks/faces_anywhere_recipe.py collect --data <dir> --runs runs/anywhere \\
        --json benchmarks/results/faces_anywhere_recipe.json

<dir> holds fer2013/, muxspace/ and taiwanese_dev/. `run` skips experiments that have a summary
(it resumes); `collect` scores each finished run once (cached in its folder) and writes the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "fer2013_mit_b0_64.safetensors"


def base(data: Path, steps: int) -> list[str]:
    return ["--config", "fer2013_cpu", "--data", str(data / "fer2013"), "--no-progress",
            "--set", f"model.init={SHIPPED}", "--set", "optim.lr=3e-4", "--set", "optim.warmup_steps=100",
            "--set", "train.epochs=1", "--set", f"train.steps_per_epoch={steps}", "--set", "data.test_split=val"]


CAMERA = ["--set", "augment.aspect=0.15", "--set", "augment.blur=0.3", "--set", "augment.noise=0.03",
          "--set", "augment.gamma=0.3", "--set", "augment.scale=0.2"]


def experiments(data: Path) -> dict:
    mux = ["--set", f"data.extra_train={data / 'muxspace'}", "--set", "train.balance=sampler",
           "--set", "train.balance_power=0.5"]
    return {  # name -> (what changes, overrides)
        "A_fer_camera": ("FER2013 only, camera augmentations (aspect, blur, noise, gamma, scale 0.2)", CAMERA),
        "B_fer_mux_camera": ("FER2013 + muxspace, sampler balanced by class (power 0.5), camera augmentations",
                             CAMERA + mux),
        "C_fer_mux": ("FER2013 + muxspace, balanced sampler, the shipped recipe's augmentations", mux),
        "D_fer_mux_camera_w05": ("as B, muxspace faces drawn half as often", CAMERA + mux +
                                 ["--set", "data.extra_weight=0.5"]),
        "E_fer_camera_power06": ("as A, class weights (1 / frequency) ** 0.6 (shipped: 0.3)",
                                 CAMERA + ["--set", "train.balance_power=0.6"]),
        "F_fer_mux_camera_w025": ("as A, plus muxspace drawn a quarter as often, balanced by class in the loss",
                                  CAMERA + ["--set", f"data.extra_train={data / 'muxspace'}",
                                            "--set", "data.extra_weight=0.25"]),
        "G_fer_camera_80px": ("as A, 80x80 input (the model is size-agnostic: no position embeddings)",
                              CAMERA + ["--set", "data.input_size=80"]),
        "H_fer_camera_lr1e3": ("as A, peak learning rate 1e-3 (A: 3e-4)", CAMERA + ["--set", "optim.lr=1e-3"]),
        "I_fer_camera_power1": ("as A, class weights (1 / frequency) ** 1 (fully balanced)",
                                CAMERA + ["--set", "train.balance_power=1.0"]),
        "J_fer_mux_camera_power06_w01": ("as E, plus muxspace drawn a tenth as often",
                                         CAMERA + ["--set", "train.balance_power=0.6",
                                                   "--set", f"data.extra_train={data / 'muxspace'}",
                                                   "--set", "data.extra_weight=0.1"]),
    }


def run(args) -> int:
    chosen = set(args.only.split(",")) if args.only else None
    for name, (_, overrides) in experiments(args.data).items():
        out = args.runs / name
        if (chosen and name.split("_")[0] not in chosen) or (out / "summary.json").is_file():
            continue
        command = [sys.executable, "-m", "fer_ros.cli", "train", *base(args.data, args.steps), "--out", str(out),
                   "--set", f"train.threads={args.threads}", *overrides]
        print(" ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            print(f"{name} failed", file=sys.stderr)
    return 0


def score(checkpoint: Path, data: Path, cache: Path) -> dict:
    if not cache.is_file():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "cross_dataset.py"), "--data", str(data),
                        "--no-peers", "--checkpoint", str(checkpoint), "--json", str(cache)], check=True,
                       stdout=subprocess.DEVNULL)
    results = json.loads(cache.read_text())["results"]
    return {"publictest_acc": results["publictest"]["fer_ros"]["accuracy"],
            "muxspace_macro_recall": results["muxspace"]["fer_ros"]["macro_recall"],
            "taiwanese_pipeline_acc": results["taiwanese"]["fer_ros_pipeline"]["accuracy"],
            "taiwanese_pipeline_macro_recall": results["taiwanese"]["fer_ros_pipeline"]["macro_recall"]}


def collect(args) -> int:
    rows = [{"name": "shipped", "change": "the shipped model, no fine-tuning",
             **score(SHIPPED, args.data, args.runs / "shipped_scores.json")}]
    for name, (change, overrides) in experiments(args.data).items():
        folder = args.runs / name
        if (folder / "best.safetensors").is_file():
            rows.append({"name": name, "change": change, **score(folder / "best.safetensors", args.data,
                                                                 folder / "dev_scores.json")})
    lines = ["| run | change | PublicTest acc | muxspace val macro-recall | taiwanese_dev pipeline acc | "
             "taiwanese_dev macro-recall |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['change']} | {r['publictest_acc']:.2f} | {r['muxspace_macro_recall']:.1f} | "
              f"{r['taiwanese_pipeline_acc']:.2f} | {r['taiwanese_pipeline_macro_recall']:.1f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2) + "\n")
        args.json.with_suffix(".txt").write_text(text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "collect"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs/anywhere"))
    parser.add_argument("--steps", type=int, default=300, help="training steps of each experiment")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated experiment letters, e.g. A,B")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    return run(args) if args.action == "run" else collect(args)


if __name__ == "__main__":
    sys.exit(main())
