"""Classification metrics from a confusion matrix (rows: true class, columns: predicted class), the
plots of a run, and latency percentiles: what training, evaluation, the bag tools and the node
report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts; entries with true < 0 (unusable samples) are
    skipped."""
    keep = true >= 0
    idx = true[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarize(cm: torch.Tensor, classes: tuple[str, ...] | list[str]) -> dict:
    """Accuracy, macro-F1 and per-class recall / precision / F1 of a confusion matrix."""
    cm = cm.double()
    total = cm.sum().item()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(
        recall + precision > 0,
        2 * recall * precision / (recall + precision).clamp(min=1e-12),
        torch.zeros_like(tp),
    )
    present = support > 0  # macro averages over the classes the set contains
    return {
        "samples": int(total),
        "accuracy": tp.sum().item() / total if total else 0.0,
        "macro_f1": f1[present].mean().item() if present.any() else 0.0,
        "mean_recall": recall[present].mean().item() if present.any() else 0.0,
        "per_class": {
            c: {
                "recall": recall[i].item(),
                "precision": precision[i].item(),
                "f1": f1[i].item(),
                "support": int(support[i].item()),
            }
            for i, c in enumerate(classes)
        },
    }


def plot_confusion(cm: torch.Tensor, classes, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG, counts and percentages in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = cm.double()
    norm = cm / cm.sum(1, keepdim=True).clamp(min=1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2.2, 1.0 * n + 1.8), dpi=110)
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.0%}\n{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(history: list[dict], path: str | Path) -> Path:
    """Training loss and validation accuracy per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=110)
    a.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(epochs, [h["train_acc"] for h in history], label="train acc")
    b.plot(epochs, [h["val_acc"] for h in history], label="val acc")
    b.set_xlabel("epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def percentile(values, q: float) -> float:
    """The q-th percentile of an iterable of numbers (0.0 when empty)."""
    a = np.fromiter(values, dtype=np.float64)
    return float(np.percentile(a, q)) if a.size else 0.0


def latency_stats(values) -> dict:
    """count, mean, p50/p95/p99 and max of milliseconds (zeros when empty)."""
    a = np.fromiter(values, dtype=np.float64)
    if a.size == 0:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(a.max()),
    }


def calibration_error(probs: np.ndarray, true: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: the gap between confidence (the arg-max probability) and
    accuracy, averaged over `bins` equal-width confidence bins weighted by how many answers fall in
    each."""
    probs, true = np.asarray(probs, np.float64), np.asarray(true)
    confidence, correct = probs.max(1), probs.argmax(1) == true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap)


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as if the logits had been divided by `temperature` (softmax(log p / T)); the
    arg-max never changes. float32, rows summing to 1."""
    if temperature == 1.0:
        return np.asarray(probs, np.float32)
    z = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, true: np.ndarray) -> float:
    """The temperature (0.5-5) that minimises the negative log-likelihood of `true`: a grid search,
    then a finer one around its best (the NLL is smooth and has one minimum in T)."""
    true = np.asarray(true)

    def nll(t: float) -> float:
        p = with_temperature(probs, t).astype(np.float64)
        return float(-np.log(np.clip(p[np.arange(len(true)), true], 1e-12, None)).mean())

    grid = np.exp(np.linspace(np.log(0.5), np.log(5.0), 61))
    best = min(grid, key=nll)
    fine = np.linspace(best / 1.04, best * 1.04, 21)
    return round(float(min(fine, key=nll)), 3)
