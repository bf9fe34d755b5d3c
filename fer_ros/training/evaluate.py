"""`fer-ros evaluate`: score a checkpoint on a data set split, through the engine the node runs.

    fer-ros evaluate runs/fer2013/best.safetensors --data fer2013.csv --split test --out
    eval/fer2013

Images go through `fer_ros.inference.engine.Engine` with the back-end the node would pick (ONNX
Runtime on a CPU, PyTorch on a GPU) and the checkpoint's own preprocessing, so the figures are
those a deployed model gets; the report names the back-end. Training scores its validation and test
splits with the same `predict` (`confusion` is its confusion matrix, `checkpoint_metrics` the
metrics of a checkpoint on a split). Writes metrics.json (accuracy, macro-F1, per-class
recall/precision/F1), confusion.json and confusion.png, and prints a short table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fer_ros.errors import ConfigError
from fer_ros.metrics import confusion_matrix, plot_confusion, summarize
from fer_ros.paths import output_folder
from fer_ros.training.config import check_tta
from fer_ros.training.datasets import all_reports, load_splits, pick_split

TTA_SEED = 0
TTA_ROTATE = (
    30.0  # degrees, as the paper's training augmentation, when the checkpoint does not say
)


def _random_views(engine, crops, n: int, rotate: float) -> np.ndarray:
    """Mean probabilities over n random flips and rotations (within ±rotate degrees) of each crop,
    drawn from a fixed seed: the same crops give the same answer."""
    from fer_ros.training.augment import random_affine
    from fer_ros.training.config import AugmentConfig

    pre = engine.preprocess
    x = pre.batch(crops).float().div_(255)  # (N, 3, S, S)
    g = torch.Generator().manual_seed(TTA_SEED)
    augment = AugmentConfig(flip=True, rotate=rotate)
    total = 0
    for _ in range(n):
        view = random_affine(x, pre.input_size, augment, g)
        total = total + engine.predict_tensor(pre.normalize(view))
    return total / n


@torch.no_grad()
def predict(
    engine, dataset, batch_size: int = 64, tta: str = "none", indices=None, progress: bool = False
) -> tuple[np.ndarray, torch.Tensor]:
    """(probabilities (N, classes), true class (N,), -1 for unusable samples) of `engine` over a
    data set (or the `indices` of it). tta: "flip" averages each face with its mirror image;
    "random:N" averages N random flips and rotations (as in training, from a fixed seed)."""
    check_tta(tta)
    rotate = float(engine.meta.train_config.get("augment", {}).get("rotate", TTA_ROTATE))
    indices = range(len(dataset)) if indices is None else list(indices)
    starts = range(0, len(indices), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="evaluating", unit="batch", leave=False)
    probs, trues = [], []
    for start in starts:
        items = [dataset[i] for i in indices[start : start + batch_size]]
        crops = [img.numpy() for img, _ in items]
        if tta == "flip":
            p = (engine.predict(crops) + engine.predict([c[:, ::-1] for c in crops])) / 2
        elif tta.startswith("random:"):
            p = _random_views(engine, crops, int(tta.partition(":")[2]), rotate)
        else:
            p = engine.predict(crops)
        targets = torch.stack([torch.as_tensor(t) for _, t in items])
        probs.append(p)
        trues.append(targets.argmax(1) if targets.dim() == 2 else targets)
    if not probs:
        return np.zeros((0, len(engine.labels)), np.float32), torch.zeros(0, dtype=torch.long)
    return np.concatenate(probs), torch.cat(trues)


def confusion(
    engine, dataset, batch_size: int = 64, tta: str = "none", indices=None, progress: bool = False
) -> torch.Tensor:
    """The confusion matrix (true x predicted) of `engine` on a data set."""
    probs, true = predict(engine, dataset, batch_size, tta, indices, progress)
    return confusion_matrix(true, torch.from_numpy(probs.argmax(1)), len(engine.labels))


def checkpoint_metrics(
    checkpoint: str | Path,
    data_format: str,
    root: str | Path,
    split: str = "test",
    tta: str = "none",
    batch_size: int = 64,
    device: str = "auto",
    backend: str = "auto",
    out_dir: str | Path | None = None,
    progress: bool = False,
    **data_options,
) -> dict:
    """Metrics of a checkpoint on one split; with out_dir, also the JSON and PNG reports."""
    from fer_ros.inference.engine import Engine

    check_tta(tta)
    with Engine.from_checkpoint(checkpoint, device=device, backend=backend) as engine:
        pre = engine.preprocess
        labels = tuple(engine.labels)
        splits = load_splits(
            data_format,
            root,
            labels,
            **({"color": pre.color, "size": pre.input_size} | data_options),
        )
        dataset = pick_split(splits, split)
        probs, true = predict(engine, dataset, batch_size, tta, progress=progress)
        cm = confusion_matrix(true, torch.from_numpy(probs.argmax(1)), len(labels))
        unusable = int((true < 0).sum())
        metrics = summarize(cm, labels) | {
            "checkpoint": str(checkpoint),
            "model": engine.model_id,
            "backend": engine.backend,
            "device": engine.device,
            "data": f"{data_format}:{root}",
            "split": split,
            "tta": tta,
            "unusable_samples": unusable,
            "data_report": all_reports(splits).lines(),
        }
        if tta != "none":  # every TTA figure comes with the plain one beside it
            plain = summarize(confusion(engine, dataset, batch_size, progress=progress), labels)
            metrics["no_tta"] = {k: plain[k] for k in ("accuracy", "macro_f1", "mean_recall")}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from fer_ros.atomic import atomic_write_text

        atomic_write_text(json.dumps(metrics, indent=1), out / "metrics.json")
        atomic_write_text(
            json.dumps({"classes": list(labels), "matrix": cm.tolist()}), out / "confusion.json"
        )
        plot_confusion(cm, labels, out / "confusion.png", f"{Path(checkpoint).name} on {split}")
    return metrics


def format_table(metrics: dict) -> str:
    lines = [
        f"{metrics['split']}: {metrics['samples']} images  accuracy {metrics['accuracy']:.4f}  "
        f"macro-F1 {metrics['macro_f1']:.4f}  mean recall {metrics['mean_recall']:.4f}"
        + (
            f"  (TTA {metrics['tta']}; without: accuracy {metrics['no_tta']['accuracy']:.4f}, "
            "macro-F1 "
            f"{metrics['no_tta']['macro_f1']:.4f})"
            if "no_tta" in metrics
            else ""
        )
        + (f"  [{metrics['backend']} on {metrics['device']}]" if "backend" in metrics else "")
    ]
    lines.append(f"{'class':<10} {'recall':>7} {'prec.':>7} {'F1':>7} {'n':>6}")
    for c, v in metrics["per_class"].items():
        lines.append(
            f"{c:<10} {v['recall']:7.4f} {v['precision']:7.4f} {v['f1']:7.4f} {v['support']:6d}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="fer_ros .safetensors checkpoint")
    parser.add_argument(
        "--data", default="", help="data set file or folder (not needed for --format synthetic)"
    )
    parser.add_argument(
        "--format", default="auto", help="data set format (default: detected from --data)"
    )
    parser.add_argument(
        "--split", default="test", help="split to score: train, val or test (default test)"
    )
    parser.add_argument(
        "--tta",
        default="none",
        help="test-time augmentation: none, flip (average with the "
        "mirror image) or random:N (N random flips and rotations as in training, fixed seed)",
    )
    parser.add_argument("--out", help="folder for metrics.json, confusion.json and confusion.png")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto (as the node: ONNX Runtime on a CPU), torch or onnxruntime",
    )
    parser.add_argument(
        "--target", default="majority", help="FER+ targets: majority or probability"
    )
    parser.add_argument(
        "--synthetic-n", type=int, default=1400, help="faces per split for --format synthetic"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --format synthetic")


def run(args: argparse.Namespace) -> int:
    import sys

    options = {"target": args.target}
    if args.format == "synthetic":
        options = {
            "n_train": 0,
            "n_val": args.synthetic_n,
            "n_test": args.synthetic_n,
            "seed": args.seed,
        }
    elif not args.data:
        raise ConfigError("no data set given (--data PATH)")
    if args.out:
        output_folder(args.out, "--out")
    metrics = checkpoint_metrics(
        args.checkpoint,
        args.format,
        args.data,
        args.split,
        args.tta,
        args.batch_size,
        args.device,
        args.backend,
        args.out,
        progress=sys.stderr.isatty(),
        **options,
    )
    for line in metrics["data_report"]:
        print(line)
    print(format_table(metrics))
    if args.out:
        print(f"reports in {args.out}/ (metrics.json, confusion.json, confusion.png)")
    return 0
