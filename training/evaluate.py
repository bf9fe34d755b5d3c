"""`fer-ros evaluate`: score a checkpoint on a data set split.

    fer-ros evaluate runs/fer2013/best.safetensors --data fer2013.csv --split test --flip --out eval/fer2013

Images go through the checkpoint's own preprocessing (`fer_ros.preprocess.Preprocess`, the code the
node runs), so the figures are those a deployed model gets. Writes metrics.json (accuracy, macro-F1,
per-class recall/precision/F1), confusion.json and confusion.png, and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from fer_ros.training.datasets import DatasetError, all_reports, load_splits, pick_split
from fer_ros.training.metrics import confusion_matrix, plot_confusion, summarize


@torch.no_grad()
def predict(model, preprocess, dataset, batch_size: int = 64, device: str | torch.device = "cpu",
            flip: bool = False, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, classes), true class (N,), -1 for unusable samples) for a whole data set."""
    model = model.to(device).eval()
    probs, trues = [], []
    starts = range(0, len(dataset), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="evaluating", unit="batch", leave=False)
    for start in starts:
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        crops = [img.numpy() for img, _ in items]
        targets = torch.stack([torch.as_tensor(t) for _, t in items])
        x = preprocess(crops).to(device)
        p = model(x).float().softmax(1)
        if flip:  # test-time augmentation: average with the mirror image
            p = (p + model(x.flip(3)).float().softmax(1)) / 2
        probs.append(p.cpu())
        trues.append(targets.argmax(1) if targets.dim() == 2 else targets)
    if not probs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(probs), torch.cat(trues)


def evaluate_checkpoint(checkpoint: str | Path, data_format: str, root: str | Path, split: str = "test",
                        flip: bool = False, batch_size: int = 64, device: str = "cpu", out_dir: str | Path | None = None,
                        progress: bool = False, **data_options) -> dict:
    """Metrics of a checkpoint on one split; with out_dir, also the JSON and PNG reports."""
    from fer_ros.checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint, map_location=device)
    labels = tuple(meta.labels)
    options = {"color": meta.color, "size": meta.input_size} | data_options
    if data_format == "synthetic":
        options.setdefault("size", meta.input_size)
    splits = load_splits(data_format, root, labels, **options)
    dataset = pick_split(splits, split)
    probs, true = predict(model, meta.preprocess(), dataset, batch_size, device, flip, progress)
    cm = confusion_matrix(true, probs.argmax(1), len(labels))
    metrics = summarize(cm, labels) | {
        "checkpoint": str(checkpoint), "data": f"{data_format}:{root}", "split": split, "flip": flip,
        "unusable_samples": int((true < 0).sum()), "data_report": all_reports(splits).lines(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        (out / "confusion.json").write_text(json.dumps({"classes": list(labels), "matrix": cm.tolist()}))
        plot_confusion(cm, labels, out / "confusion.png", f"{Path(checkpoint).name} on {split}")
    return metrics


def format_table(metrics: dict) -> str:
    lines = [f"{metrics['split']}: {metrics['samples']} images  accuracy {metrics['accuracy']:.4f}  "
             f"macro-F1 {metrics['macro_f1']:.4f}  mean recall {metrics['mean_recall']:.4f}"
             + ("  (with flip TTA)" if metrics.get("flip") else "")]
    lines.append(f"{'class':<10} {'recall':>7} {'prec.':>7} {'F1':>7} {'n':>6}")
    for c, v in metrics["per_class"].items():
        lines.append(f"{c:<10} {v['recall']:7.4f} {v['precision']:7.4f} {v['f1']:7.4f} {v['support']:6d}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="fer_ros .safetensors checkpoint")
    parser.add_argument("--data", default="", help="data set file or folder (not needed for --format synthetic)")
    parser.add_argument("--format", default="auto", help="data set format (default: detected from --data)")
    parser.add_argument("--split", default="test", help="split to score: train, val or test (default test)")
    parser.add_argument("--flip", action="store_true", help="test-time augmentation: average with the mirror image")
    parser.add_argument("--out", help="folder for metrics.json, confusion.json and confusion.png")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--target", default="majority", help="FER+ targets: majority or probability")
    parser.add_argument("--synthetic-n", type=int, default=1400, help="faces per split for --format synthetic")
    parser.add_argument("--seed", type=int, default=0, help="seed of --format synthetic")


def run(args: argparse.Namespace) -> int:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    options = {"target": args.target}
    if args.format == "synthetic":
        options = {"n_train": 0, "n_val": args.synthetic_n, "n_test": args.synthetic_n, "seed": args.seed}
    elif not args.data:
        print("fer-ros evaluate: no data set given (--data PATH)", file=sys.stderr)
        return 2
    try:
        metrics = evaluate_checkpoint(args.checkpoint, args.format, args.data, args.split, args.flip, args.batch_size,
                                      device, args.out, progress=sys.stderr.isatty(), **options)
    except (DatasetError, FileNotFoundError, ValueError) as e:
        print(f"fer-ros evaluate: {e}", file=sys.stderr)
        return 1
    for line in metrics["data_report"]:
        print(line)
    print(format_table(metrics))
    if args.out:
        print(f"reports in {args.out}/ (metrics.json, confusion.json, confusion.png)")
    return 0
