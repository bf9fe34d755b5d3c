"""How small a face can be read: expression accuracy against face width, fer_ros beside the peers.

Every `taiwanese_dev` photo (whole 256x256 posed photos, one face each) is scaled so its face is W
pixels wide (the width yuface finds at full size) and placed in the middle of a grey 640x480 frame,
as a robot's camera sees a person further away. The frame goes through the node's pipeline
(`Pipeline.process`: detector, crop, engine) with the detector allowed down to 12 px, so the curve
says what the classifier can read, not what the default detector settings find. The peers are given
the very crop the pipeline classified (their own resize), as in benchmarks/cross_dataset.py. A face
that is not found counts as wrong for every model; "found" is reported beside.

    python benchmarks/face_size.py --data <dir> --json benchmarks/results/face_size.json

<dir> holds taiwanese_dev/. Writes the JSON, a .txt table beside it and a .png plot of the curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cross_dataset import PEERS, REPO, Peer, scores  # noqa: E402 (a sibling script, not a package)

from fer_ros.inference.crops import face_crop  # noqa: E402
from fer_ros.inference.engine import Engine, EngineOptions  # noqa: E402
from fer_ros.inference.faces import Face  # noqa: E402
from fer_ros.inference.pipeline import Pipeline, PipelineOptions  # noqa: E402
from fer_ros.labels import FER7, canonical  # noqa: E402

WIDTHS = (16, 20, 24, 32, 48, 64)
FRAME = (480, 640)


def photos(folder: Path) -> list[tuple[np.ndarray, str]]:
    return [
        (cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), canonical(p.parent.name))
        for p in sorted(folder.glob("*/*.jpg"))
    ]


def in_frame(rgb: np.ndarray, scale: float) -> np.ndarray:
    """The photo scaled by `scale`, centred in a grey 640x480 frame."""
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((*FRAME, 3), 128, np.uint8)
    h, w = small.shape[:2]
    y, x = (FRAME[0] - h) // 2, (FRAME[1] - w) // 2
    frame[y : y + h, x : x + w] = small
    return frame


def one_width(engine: Engine, options: PipelineOptions, faces: list, width: int):
    """(truth, fer_ros probabilities, found, crops) with every face `width` px wide."""
    pipeline = Pipeline(engine, options)
    truth, probs, found, crops = [], [], [], []
    for i, (rgb, label, face_width) in enumerate(faces):
        frame = in_frame(rgb, width / face_width)
        result = pipeline.process(frame, now=i * 10.0)  # 10 s apart: nothing carries over
        row = np.zeros(len(FER7), np.float32)
        crop = frame
        if result.faces:
            face = result.faces[0]
            crop = face_crop(
                frame,
                Face(face.box, face.landmarks, face.score),
                pipeline.detector_name,
                options.face_crop,
                options.face_margin,
            )
            row[[FER7.index(c) for c in engine.labels]] = face.probabilities
        truth.append(label)
        probs.append(row)
        found.append(bool(result.faces))
        crops.append(crop)
    pipeline.close()
    return truth, np.stack(probs), np.array(found), crops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with taiwanese_dev/")
    parser.add_argument("--peers", type=Path, default=REPO.parent / "shared" / "peers")
    parser.add_argument(
        "--checkpoint", default="", help="fer_ros checkpoint (default: the shipped model)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    engine = Engine.from_options(EngineOptions(checkpoint=args.checkpoint))
    engine.warmup()
    base = PipelineOptions(detect_async=False, detect_every=1)
    # The width each face has at full size, by the node's default detector.
    probe = Pipeline(engine, base)
    faces = []
    for i, (rgb, label) in enumerate(photos(args.data / "taiwanese_dev")):
        result = probe.process(rgb, now=i * 10.0)
        if result.faces:
            faces.append((rgb, label, float(result.faces[0].box[2])))
    probe.close()
    options = dataclasses.replace(base, min_face_size=12, detect_scale=1.0)
    peers = (
        {name: Peer(name, args.peers).predict for name in PEERS}
        if all((args.peers / f).is_file() for f, _ in PEERS.values())
        else {}
    )
    results = {}
    for width in WIDTHS:
        truth, probs, found, crops = one_width(engine, options, faces, width)
        row = {
            "found": round(100.0 * float(found.mean()), 1),
            "fer_ros": scores(truth, probs, found),
        }
        for name, predict in peers.items():
            row[name] = scores(truth, predict(crops), found)
        results[str(width)] = row
        print(
            f"{width:3d} px: found {row['found']} %, "
            + ", ".join(f"{m} {row[m]['accuracy']} %" for m in ("fer_ros", *peers)),
            flush=True,
        )
    out = {
        "model": engine.model_id,
        "faces": len(faces),
        "detector": probe.detector_name,
        "min_face_size": options.min_face_size,
        "widths": list(WIDTHS),
        "results": results,
    }
    engine.close()
    text = table(out)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        args.json.with_suffix(".txt").write_text(text)
        plot(out, args.json.with_suffix(".png"))
    return 0


def table(out: dict) -> str:
    models = [m for m in ("fer_ros", *PEERS) if m in out["results"][str(out["widths"][0])]]
    lines = [
        f"{out['faces']} taiwanese_dev faces, fer_ros model {out['model']}, detector "
        f"{out['detector']}",
        "",
        "| face width | found | " + " | ".join(f"{m} accuracy" for m in models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for w in out["widths"]:
        row = out["results"][str(w)]
        lines.append(
            f"| {w} px | {row['found']} % | "
            + " | ".join(f"{row[m]['accuracy']} %" for m in models)
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = out["widths"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for model in ("fer_ros", *PEERS):
        if model in out["results"][str(widths[0])]:
            ax.plot(
                widths,
                [out["results"][str(w)][model]["accuracy"] for w in widths],
                marker="o",
                label=model,
            )
    ax.plot(widths, [out["results"][str(w)]["found"] for w in widths], "k--", label="faces found")
    ax.set_xlabel("face width in the 640x480 frame (px)")
    ax.set_ylabel("%")
    ax.set_title("taiwanese_dev through the pipeline, by face width")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
