"""What a run of the pipeline over a stream of frames comes to: latency, accuracy, plots.

Shared by `fer-ros bag-eval` (offline) and `fer-ros demo` (live results recorded from the
node): both hand in per-frame rows and get the same report.json, PNGs and printed summary.
"""

import json
from pathlib import Path

import numpy as np

from fer_ros.atomic import atomic_write_text

NO_FACE = "no face"  # prediction of a frame with ground truth but no face found


def accuracy_with_confusion(pairs, labels, out_dir: Path, title: str) -> dict:
    """Accuracy, macro-F1 and a confusion matrix (PNG + JSON) from (true, predicted) label pairs.

    Classes are the model's labels, plus 'unknown' (below the confidence threshold, or a face
    too small to read) and 'no face' columns when such predictions occur; a true label the model
    does not know is counted in `unknown_truth` and left out.
    """
    import torch

    from fer_ros.metrics import confusion_matrix, plot_confusion, summarize

    classes = list(labels)
    for extra in sorted({p for _, p in pairs} - set(classes)):
        classes.append(extra)
    index = {c: i for i, c in enumerate(classes)}
    known = [(t, p) for t, p in pairs if t in labels]
    unknown_truth = sorted({t for t, _ in pairs if t not in labels})
    true = torch.tensor([index[t] for t, _ in known], dtype=torch.long)
    pred = torch.tensor([index[p] for _, p in known], dtype=torch.long)
    cm = confusion_matrix(true, pred, len(classes))
    summary = summarize(cm, classes)
    summary["unknown_truth"] = {"frames": len(pairs) - len(known), "labels": unknown_truth}
    summary["confusion_png"] = str(
        plot_confusion(cm, classes, out_dir / "confusion.png", title=title).name
    )
    atomic_write_text(
        json.dumps({"classes": classes, "matrix": cm.tolist()}, indent=1) + "\n",
        out_dir / "confusion.json",
    )
    summary["confusion_json"] = "confusion.json"
    return summary


def plot_timeline(
    times_s, predicted, confidence, truth, labels, path: Path, title: str = ""
) -> Path:
    """Predicted expression per frame (dots, shaded by confidence) over the true one (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(labels) + sorted(
        {p for p in predicted if p not in labels} | {t for t in truth if t and t not in labels}
    )
    row = {c: i for i, c in enumerate(classes)}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 4.8), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    t = np.asarray(times_s, dtype=np.float64)
    if any(truth):
        known = [i for i, v in enumerate(truth) if v]
        top.step(
            t[known],
            [row[truth[i]] for i in known],
            where="post",
            color="0.6",
            lw=6,
            alpha=0.5,
            label="ground truth",
        )
    top.scatter(
        t,
        [row[p] for p in predicted],
        c=np.asarray(confidence),
        cmap="viridis",
        vmin=0,
        vmax=1,
        s=10,
        label="predicted",
        zorder=3,
    )
    top.set_yticks(range(len(classes)), classes)
    top.set_ylim(-0.5, len(classes) - 0.5)
    top.legend(loc="upper right", fontsize=8)
    if title:
        top.set_title(title)
    bottom.plot(t, confidence, lw=1)
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("confidence")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(report: dict, out_dir: Path) -> Path:
    path = out_dir / "report.json"
    atomic_write_text(json.dumps(report, indent=2) + "\n", path)
    return path


def summary_lines(report: dict) -> list[str]:
    """A few readable lines: counts, accuracy, latency percentiles, where the files are."""
    frames = report["frames"]
    lines = [
        f"frames: {frames['processed']} processed of {frames['total']}"
        + (f", {frames['skipped']} skipped" if frames.get("skipped") else "")
        + (f", {frames['dropped']} dropped by the node" if frames.get("dropped") else "")
        + (f", {frames['with_face']} with a face" if "with_face" in frames else "")
        + (f" ({frames['too_small']} too small to read)" if frames.get("too_small") else "")
    ]
    for reason, count in (report.get("skipped_reasons") or {}).items():
        lines.append(f"  skipped {count}x: {reason}")
    acc = report.get("accuracy")
    if acc:
        lines.append(
            f"accuracy: {acc['accuracy']:.1%} over {acc['samples']} labelled frames, "
            f"macro-F1 {acc['macro_f1']:.3f} (ground truth: {report['ground_truth']})"
        )
    else:
        lines.append("accuracy: no ground truth (label topic or --labels-csv)")
    for name, stats in report["latency_ms"].items():
        if stats["count"]:
            lines.append(
                f"{name + ' ms':<15} p50 {stats['p50']:7.1f}  p95 {stats['p95']:7.1f}  "
                f"p99 {stats['p99']:7.1f}  max {stats['max']:7.1f}"
            )
    counts = report.get("predicted_counts") or {}
    if counts:
        lines.append("predicted: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return lines
