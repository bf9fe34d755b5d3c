"""Short fine-tuning runs on FER2013's raw pixels, judged on every dev figure at once.

Each experiment fine-tunes a model (`model.init`, the shipped one unless --init) with `fer-ros
train` for a few hundred steps, one lever changed, then scores its best checkpoint with
benchmarks/cross_dataset.py on the four dev figures: PublicTest accuracy on FER2013's original
labels, PublicTest accuracy on FER+'s majority labels, muxspace val macro-recall, and taiwanese_dev
through the node's pipeline. Never on PublicTest alone; never trained on taiwanese_dev.

    python benchmarks/faces_anywhere_recipe.py run --data <dir> --runs runs/raw [--only T1,T2]
    [--threads 2]
    python benchmarks/faces_anywhere_recipe.py collect --data <dir> --runs runs/raw \\
        --json benchmarks/results/faces_anywhere_recipe.json

<dir> holds ferplus/ (tar -xJf ferplus.tar.xz), muxspace/ and taiwanese_dev/. `run` skips
experiments that have a summary (it resumes); `collect` scores each finished run once (cached in
its folder), adds any `--extra NAME=CHECKPOINT=WHAT` (a long run, an averaged model) and writes the
table. The experiments of the filtered FER2013 copy are in benchmarks/results/faces_anywhere/
(history).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "fer2013_mit_b0_64.safetensors"


def base(data: Path, steps: int, init: Path) -> list[str]:
    return [
        "--config",
        "faces_anywhere_cpu",
        "--data",
        str(data / "ferplus"),
        "--no-progress",
        "--set",
        f"model.init={init}",
        "--set",
        "train.epochs=1",
        "--set",
        f"train.steps_per_epoch={steps}",
    ]


def experiments(data: Path) -> dict:
    mux = ["--set", f"data.extra_train={data / 'muxspace'}"]
    return {  # name -> (what changes, overrides); all: camera augmentations, class weights ** 0.6
        "T1_original": (
            "FER2013's original labels (fer2013.csv), + muxspace x0.1",
            mux + ["--format", "fer2013", "--data", str(data / "ferplus" / "fer2013.csv")],
        ),
        "T2_votes": (
            "FER+'s vote distribution (target probability), + muxspace x0.1",
            mux + ["--set", "data.target=probability"],
        ),
        "T3_mixed": ("half original label, half votes (target mixed 0.5), + muxspace x0.1", mux),
        "T4_mixed_no_mux": ("as T3 without muxspace", []),
        "T5_mixed_vote03": ("as T3, votes' share 0.3", mux + ["--set", "data.vote_share=0.3"]),
        "T6_mixed_80px": ("as T3 at 80x80 input", mux + ["--set", "data.input_size=80"]),
        "T7_mixed_ema": (
            "as T3, weights averaged along the run (EMA 0.998)",
            mux + ["--set", "train.ema=0.998"],
        ),
        "T8_mixed_standardize": (
            "as T3, each face standardised (data.face_norm standardize)",
            mux + ["--set", "data.face_norm=standardize"],
        ),
        "T9_mixed_equalize": (
            "as T3, each face's histogram equalised (data.face_norm equalize)",
            mux + ["--set", "data.face_norm=equalize"],
        ),
        "T10_mixed_mixup": (
            "as T3 with mixup (Beta(0.2, 0.2))",
            mux + ["--set", "train.mixup=0.2"],
        ),
    }


def run(args) -> int:
    chosen = set(args.only.split(",")) if args.only else None
    for name, (_, overrides) in experiments(args.data).items():
        out = args.runs / name
        if (chosen and name.split("_")[0] not in chosen) or (out / "summary.json").is_file():
            continue
        command = [
            sys.executable,
            "-m",
            "fer_ros.cli",
            "train",
            *base(args.data, args.steps, args.init),
            "--out",
            str(out),
            "--set",
            f"train.threads={args.threads}",
            *overrides,
        ]
        print(" ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            print(f"{name} failed", file=sys.stderr)
    return 0


def score(checkpoint: Path, data: Path, cache: Path) -> dict:
    if not cache.is_file():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "benchmarks" / "cross_dataset.py"),
                "--data",
                str(data),
                "--no-peers",
                "--checkpoint",
                str(checkpoint),
                "--json",
                str(cache),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    results = json.loads(cache.read_text())["results"]
    return {
        "publictest_acc": results["publictest"]["fer_ros"]["accuracy"],
        "publictest_ferplus_acc": results["publictest_ferplus"]["fer_ros"]["accuracy"],
        "muxspace_macro_recall": results["muxspace"]["fer_ros"]["macro_recall"],
        "taiwanese_pipeline_acc": results["taiwanese"]["fer_ros_pipeline"]["accuracy"],
    }


def collect(args) -> int:
    rows = [
        {
            "name": "start",
            "change": f"{args.init.name}, where every run starts: no fine-tuning",
            **score(args.init, args.data, args.runs / "init_scores.json"),
        }
    ]
    for name, (change, _) in experiments(args.data).items():
        folder = args.runs / name
        if (folder / "best.safetensors").is_file():
            rows.append(
                {
                    "name": name,
                    "change": change,
                    **score(folder / "best.safetensors", args.data, folder / "dev_scores.json"),
                }
            )
    for extra in args.extra:
        name, _, rest = extra.partition("=")
        path, _, change = rest.partition("=")
        checkpoint = Path(path)
        rows.append(
            {
                "name": name,
                "change": change or checkpoint.name,
                **score(checkpoint, args.data, checkpoint.with_suffix(".dev_scores.json")),
            }
        )
    lines = [
        "| run | change | PublicTest acc | PublicTest FER+ acc | muxspace macro-recall | "
        "taiwanese_dev pipeline acc |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['name']} | {r['change']} | {r['publictest_acc']:.2f} | "
        f"{r['publictest_ferplus_acc']:.2f} | "
        f"{r['muxspace_macro_recall']:.1f} | {r['taiwanese_pipeline_acc']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps({"steps": args.steps, "init": args.init.name, "rows": rows}, indent=2)
            + "\n"
        )
        args.json.with_suffix(".txt").write_text(text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("run", "collect"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("runs/raw"))
    parser.add_argument(
        "--init", type=Path, default=SHIPPED, help="the model every experiment starts from"
    )
    parser.add_argument("--steps", type=int, default=600, help="training steps of each experiment")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only", default="", help="comma-separated experiment names' first parts, e.g. T1,T3"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT[=WHAT]",
        help="another checkpoint to score in the same table (a long run, an average)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    return run(args) if args.action == "run" else collect(args)


if __name__ == "__main__":
    sys.exit(main())
