"""What `fer-ros video` writes about a video: the per-face table, the timeline plot, the summary.

Rows are one per face per frame, plus one per frame with no face (empty face_id), so a plot or a
pandas group-by sees when nobody was there.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

CSV_FIXED = [
    "frame",
    "time_s",
    "faces",
    "face_id",
    "x",
    "y",
    "width",
    "height",
    "label",
    "confidence",
    "too_small",
]
MAX_PLOTTED_FACES = 8  # the faces seen longest get a row each; the rest are in the CSV


def frame_rows(index: int, time_s: float, faces) -> list[dict]:
    """The CSV rows of one frame (faces: fer_ros.api.DetectedFace, largest first)."""
    base = {"frame": index, "time_s": round(time_s, 4), "faces": len(faces)}
    if not faces:
        return [base]
    return [
        {**base, **{k: round(v, 5) if isinstance(v, float) else v for k, v in face.row().items()}}
        for face in faces
    ]


def write_csv(rows: list[dict], labels, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIXED + [f"p_{c}" for c in labels], restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def per_face(rows: list[dict]) -> dict[int, list[dict]]:
    faces = defaultdict(list)
    for row in rows:
        if row.get("face_id", "") != "":
            faces[row["face_id"]].append(row)
    return dict(faces)


def summarize(rows: list[dict], labels) -> dict:
    """Frames with and without a face, and for each face: when it was there, its expressions'
    shares."""
    frames = {r["frame"] for r in rows}
    empty = {r["frame"] for r in rows if r["faces"] == 0}
    faces = {}
    for face_id, own in sorted(per_face(rows).items()):
        counts = Counter(r["label"] for r in own)
        faces[str(face_id)] = {
            "frames": len(own),
            "first_s": own[0]["time_s"],
            "last_s": own[-1]["time_s"],
            "share": {label: round(n / len(own), 4) for label, n in counts.most_common()},
            "mean_probabilities": {
                c: round(float(np.mean([r[f"p_{c}"] for r in own])), 4) for c in labels
            },
        }
    return {
        "frames": {
            "processed": len(frames),
            "with_face": len(frames) - len(empty),
            "no_face": len(empty),
        },
        "faces_seen": len(faces),
        "faces": faces,
    }


def summary_lines(summary: dict) -> list[str]:
    frames = summary["frames"]
    lines = [
        f"{frames['processed']} frames processed in {summary['seconds']:.1f} s "
        f"({summary['frames_per_second']:.1f} frames/s): {frames['with_face']} with a face, "
        f"{frames['no_face']} without",
        f"faces seen: {summary['faces_seen']}",
    ]
    for face_id, face in summary["faces"].items():
        shares = ", ".join(f"{label} {share:.0%}" for label, share in face["share"].items())
        lines.append(
            f"  face {face_id}: {face['frames']} frames, "
            f"{face['first_s']:.2f}-{face['last_s']:.2f} s: "
            f"{shares}"
        )
    return lines


def plot_timeline(rows: list[dict], labels, path: Path, title: str = "") -> Path:
    """One panel per face (expression over time, dots shaded by confidence) under a strip of how
    many faces each frame held (0: nobody there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces = sorted(per_face(rows).items(), key=lambda item: -len(item[1]))[:MAX_PLOTTED_FACES]
    faces.sort()
    classes = list(labels) + sorted({r["label"] for _, own in faces for r in own} - set(labels))
    row_of = {c: i for i, c in enumerate(classes)}
    frames = {}
    for r in rows:
        frames[r["frame"]] = (r["time_s"], r["faces"])
    times, counts = zip(*sorted(frames.values())) if frames else ((), ())
    fig, axes = plt.subplots(
        1 + max(1, len(faces)),
        1,
        figsize=(10, 1.4 + 2.2 * max(1, len(faces))),
        dpi=110,
        sharex=True,
        gridspec_kw={"height_ratios": [1] + [3] * max(1, len(faces))},
        squeeze=False,
    )
    strip = axes[0][0]
    strip.step(times, counts, where="post", lw=1.2, color="0.3")
    strip.fill_between(times, counts, step="post", alpha=0.2, color="0.3")
    strip.set_ylabel("faces", fontsize=8)
    strip.set_ylim(0, max(counts, default=0) + 0.5)
    if title:
        strip.set_title(title, fontsize=9)
    for (face_id, own), ax in zip(faces, [a[0] for a in axes[1:]]):
        dots = ax.scatter(
            [r["time_s"] for r in own],
            [row_of[r["label"]] for r in own],
            c=[r["confidence"] for r in own],
            cmap="viridis",
            vmin=0,
            vmax=1,
            s=12,
            zorder=3,
        )
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_ylim(-0.5, len(classes) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylabel(f"face {face_id}", fontsize=9)
    if not faces:
        axes[1][0].text(
            0.5, 0.5, "no face found", ha="center", va="center", transform=axes[1][0].transAxes
        )
        axes[1][0].set_yticks([])
    else:
        fig.colorbar(
            dots, ax=[a[0] for a in axes[1:]], label="confidence", fraction=0.03, pad=0.01
        )
    axes[-1][0].set_xlabel("time (s)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
