"""Turn a finished training run into a shipped model: the checkpoint under models/, its model card
(metrics JSON beside it), the resolved config, and the plots under benchmarks/results/.

    python maintainer/ship_model.py runs/anywhere --data <dir>/ferplus --name fer2013_mit_b0_64 \
        --calibrate <dir>/muxspace --dev-scores benchmarks/results/cross_dataset.json

The card's figures come from `fer-ros evaluate` on FER2013 PublicTest's raw pixels (<dir>/ferplus:
fer2013.csv with FER2013's labels, and fer2013new.csv's FER+ majority labels), through the engine
and back-end the node runs; the training figures from the run's own history and summary.

    --calibrate <dir>/muxspace   fit a softmax temperature on PublicTest's faces (original labels)
    and
                                 muxspace's val split (held-out news photos) together, and store
                                 it in
                                 the checkpoint when it lowers their ECE
    --dev-scores FILE            benchmarks/cross_dataset.py's JSON for this model: copied into
    the card
                                 (every dev-set figure beside the peers')
    --average-with M --alpha A   ship (1 - A) x M's weights + A x the run's (WiSE-FT: a fine-tune
    averaged
                                 with the model it started from keeps more of what that model knew)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run", type=Path, help="the run folder (best.safetensors, history.json, config.yaml, ...)"
    )
    parser.add_argument("--data", required=True, help="the data set the card is scored on")
    parser.add_argument(
        "--format", default="fer2013", help="the card's data format (fer2013: fer2013.csv)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--name", required=True, help="models/<name>.safetensors")
    parser.add_argument(
        "--config", default="faces_anywhere_cpu", help="the bundled config the run used"
    )
    parser.add_argument(
        "--wall-minutes",
        type=float,
        default=None,
        help="the run's wall time, when it was interrupted and resumed",
    )
    parser.add_argument(
        "--calibrate", type=Path, default=None, help="image-folder set whose val split fits T"
    )
    parser.add_argument(
        "--dev-scores", type=Path, default=None, help="cross_dataset.py JSON for the card"
    )
    parser.add_argument(
        "--average-with", type=Path, default=None, help="checkpoint the run was fine-tuned from"
    )
    parser.add_argument(
        "--alpha", type=float, default=1.0, help="the run's share of the averaged weights"
    )
    args = parser.parse_args()

    import torch

    from fer_ros.model.checkpoint import checkpoint_id, load_checkpoint, read_meta, save_checkpoint
    from fer_ros.tools.bench import machine
    from fer_ros.training.evaluate import checkpoint_metrics, format_table

    models, results = REPO / "models", REPO / "benchmarks" / "results" / args.name
    results.mkdir(parents=True, exist_ok=True)
    shipped = models / f"{args.name}.safetensors"
    # The repository names no machine's paths: the data root becomes "<dir>/<its folder name>" in
    # the checkpoint's resolved config and in the config beside it (the weights are copied
    # unchanged).
    model, meta = load_checkpoint(args.run / "best.safetensors")
    if args.average_with:
        meta.provenance["weights_averaged"] = average_weights(model, args.average_with, args.alpha)
    root = meta.train_config["data"]["root"]
    places = {str(args.run.resolve()): f"runs/{args.run.name}"}
    if args.run.resolve().parent != REPO:  # the runs it started from, beside it
        places[str(args.run.resolve().parent) + "/"] = "runs/"
    places |= {str(Path(root).parent): "<dir>", str(REPO) + "/": ""}
    meta.train_config, meta.provenance = (
        scrubbed(meta.train_config, places),
        scrubbed(meta.provenance, places),
    )
    save_checkpoint(shipped, model, meta, dtype=torch.float16)
    calibration = calibrate(shipped, args.calibrate, Path(args.data)) if args.calibrate else None
    if calibration and calibration["applied"]:
        meta.temperature = calibration["temperature"]
        save_checkpoint(shipped, model, meta, dtype=torch.float16)
    text = scrubbed((args.run / "config.yaml").read_text(), places)
    (models / f"{args.name}.yaml").write_text(text)
    for plot in ("curves.png",):
        shutil.copyfile(args.run / plot, results / plot)
    metrics = checkpoint_metrics(shipped, args.format, args.data, args.split, out_dir=results)
    ferplus = (
        checkpoint_metrics(shipped, "ferplus", args.data, args.split, target="majority")
        if (Path(args.data) / "fer2013new.csv").is_file()
        else None
    )
    saved = results / "metrics.json"
    saved.write_text(
        scrubbed(
            saved.read_text(),
            {
                str(shipped): f"models/{shipped.name}",
                str(args.data).rstrip("/"): f"<dir>/{Path(args.data).name}",
            },
        )
    )
    print(format_table(metrics))
    history = json.loads((args.run / "history.json").read_text())
    summary = json.loads((args.run / "summary.json").read_text())
    meta = read_meta(shipped)
    card = {
        "checkpoint": f"models/{shipped.name}",
        "model": checkpoint_id(shipped),
        "trained_on": meta.provenance,
        "input": {"size": meta.preprocess.input_size, "color": meta.preprocess.color},
        "made_with": f"fer-ros train --config {args.config} (models/{args.name}.yaml is the "
        "resolved config), "
        f"weights stored as {meta.train_config['train']['save_dtype']}"
        + (
            f", averaged with {args.average_with.name} (run's share {args.alpha:g})"
            if args.average_with
            else ""
        ),
        "publictest": {
            "split": f"{args.format}:{args.split} (FER2013 PublicTest, {metrics['samples']} "
            "faces)",
            "backend": metrics["backend"],
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "mean_recall": metrics["mean_recall"],
            "recall": {c: v["recall"] for c, v in metrics["per_class"].items()},
            "precision": {c: v["precision"] for c, v in metrics["per_class"].items()},
        },
        "publictest_ferplus": None
        if ferplus is None
        else {
            "split": f"ferplus:{args.split} (FER+ majority labels, {ferplus['samples']} faces)",
            "accuracy": ferplus["accuracy"],
            "macro_f1": ferplus["macro_f1"],
            "mean_recall": ferplus["mean_recall"],
            "recall": {c: v["recall"] for c, v in ferplus["per_class"].items()},
        },
        "training": {
            "epochs": len(history),
            "best_epoch": summary["best_epoch"],
            "best_val_acc": summary["best_val_acc"],
            "minutes": round(
                args.wall_minutes if args.wall_minutes else summary["seconds"] / 60, 1
            ),
            "median_epoch_minutes": round(
                sorted(h["epoch_s"] for h in history)[len(history) // 2] / 60, 2
            ),
            "median_img_per_s": sorted(h["img_per_s"] for h in history)[len(history) // 2],
            "machine": machine(),
            "history": history,
        },
        "calibration": calibration,
        "dev_sets": json.loads(args.dev_scores.read_text()) if args.dev_scores else None,
        "plots": {
            "curves": f"benchmarks/results/{args.name}/curves.png",
            "confusion": f"benchmarks/results/{args.name}/confusion.png",
        },
    }
    shipped.with_suffix(".metrics.json").write_text(json.dumps(card, indent=1) + "\n")
    print(
        f"shipped {shipped} ({shipped.stat().st_size / 1e6:.1f} MB); card "
        f"{shipped.with_suffix('.metrics.json')}"
    )
    return 0


def scrubbed(value, places: dict):
    """`value` (a string, or dicts and lists of them) with each machine path in `places` replaced:
    the repository names no machine's folders."""
    if isinstance(value, str):
        for path, shown in places.items():
            value = value.replace(path, shown)
        return value
    if isinstance(value, dict):
        return {k: scrubbed(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, places) for v in value]
    return value


def average_weights(model, base_path: Path, alpha: float) -> dict:
    """Set `model`'s weights to (1 - alpha) x base's + alpha x its own (floating-point tensors; the
    rest, e.g. counters, stay the model's); returns what was done, for the provenance."""
    import torch

    from fer_ros.model.checkpoint import checkpoint_id, load_checkpoint

    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha must be within 0..1, got {alpha}")
    base, _ = load_checkpoint(base_path)
    mine, theirs = model.state_dict(), base.state_dict()
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise SystemExit(f"{base_path} is not the same architecture as the run's model")
    with torch.no_grad():
        model.load_state_dict(
            {
                k: torch.lerp(theirs[k].float(), v.float(), alpha).to(v.dtype)
                if v.is_floating_point()
                else v
                for k, v in mine.items()
            }
        )
    return {"base": checkpoint_id(base_path), "fine_tuned_share": alpha}


def calibrate(checkpoint: Path, root: Path, publictest: Path) -> dict:
    """Fit a temperature on <root>/val/<class>/*.jpg and on PublicTest's faces (fer2013.csv in
    `publictest`, original labels) together: one answer's confidence should mean the same on
    FER2013 and on news photos. Applied when it lowers the ECE of the two together."""
    import cv2
    import numpy as np

    from fer_ros.inference.engine import Engine
    from fer_ros.labels import canonical
    from fer_ros.metrics import calibration_error, fit_temperature, with_temperature
    from fer_ros.training.datasets import load_splits

    paths = sorted((root / "val").glob("*/*.jpg"))
    with Engine.from_checkpoint(checkpoint, device="cpu") as engine:
        crops = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
        truth = [canonical(p.parent.name) for p in paths]
        val = load_splits("fer2013", publictest, tuple(engine.labels))["val"]
        crops += [img[..., 0] for img in val.images.numpy()]
        truth += [val.classes[int(t)] for t in val.targets]
        probs = np.concatenate(
            [engine.predict(crops[i : i + 256]) for i in range(0, len(crops), 256)]
        )
        true = np.array([engine.labels.index(t) for t in truth])
    t = fit_temperature(probs, true)
    before, after = (
        calibration_error(probs, true),
        calibration_error(with_temperature(probs, t), true),
    )
    print(
        f"temperature {t} on {root.name} val + PublicTest ({len(true)} faces): ECE {before:.4f} "
        f"-> {after:.4f}"
    )
    return {
        "fitted_on": f"<dir>/{root.name}/val ({len(paths)} faces) + FER2013 PublicTest "
        f"({len(val)} faces)",
        "temperature": t,
        "ece_before": round(before, 4),
        "ece_after": round(after, 4),
        "applied": after < before,
    }


if __name__ == "__main__":
    sys.exit(main())
