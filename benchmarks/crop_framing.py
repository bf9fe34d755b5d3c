"""Where each detector's box falls inside the training faces: the geometry behind
`fer_ros.inference.crops`.

FER2013 and muxspace come as tight face crops with no boxes. To crop a detected face the way the
model saw its training faces, run each detector on training faces padded into a larger canvas (so
it sees some background) and measure its box (and landmarks) in units of the original crop's side.
The crop rule then inverts that: crop side = box size x `side`, centre = box centre + `shift` x
side.

On padded crops Haar's box fills the crop (side 1.02): FER2013's faces were registered with a box
of that kind. The CNN's box there is biased by the canvas' repeated edges: on whole photos (where
both detectors see real surroundings) its crop by that rule came out 12 % larger than Haar's, and
scored 5 points lower. So the CNN's framing is chained through Haar's: Haar's box against the CNN's
on whole photos (`--photos`, one face each), then Haar's framing on the training faces.

    python benchmarks/crop_framing.py --data <dir> [--per-set 2000] --json
    benchmarks/results/crop_framing.json

<dir> holds fer2013/ and muxspace/ as the shared tars unpack (`<dir>/<set>/train/<class>/*.jpg`).
A set that is absent is skipped with a reason.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fer_ros.inference.faces import DetectorOptions, make_detector

SETS = {
    "fer2013": 3,
    "muxspace": 1,
}  # name -> upscaling before padding (FER2013 is 48x48, muxspace 128x128)
DETECTORS = ("yuface", "haar")


def padded(path: Path, up: int) -> tuple[np.ndarray, int, int]:
    """The face, upscaled, in the middle of a canvas three times its side; (rgb, pad, side)."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    side = grey.shape[0] * up
    grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_LINEAR)
    canvas = cv2.copyMakeBorder(grey, side, side, side, side, cv2.BORDER_REPLICATE)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB), side, side


def measure(detector, files: list[Path], up: int) -> dict:
    boxes, points, missed = [], [], 0
    for path in files:
        rgb, pad, side = padded(path, up)
        faces = detector(rgb)
        centre = np.array([pad + side / 2, pad + side / 2])
        if not faces:
            missed += 1
            continue
        face = min(
            faces,
            key=lambda f: np.hypot(*(np.array(f.box[:2]) + np.array(f.box[2:]) / 2 - centre)),
        )
        x, y, w, h = face.box
        boxes.append([(x - pad) / side, (y - pad) / side, w / side, h / side])
        if face.landmarks is not None:
            points.append(((face.landmarks - pad) / side).ravel())
    b = np.array(boxes)
    size = np.sqrt(b[:, 2] * b[:, 3])  # the box's geometric-mean side, in crop sides
    out = {
        "faces": len(files),
        "found": len(boxes),
        "missed": missed,
        "box_median": dict(zip(("x", "y", "w", "h"), np.round(np.median(b, 0), 4).tolist())),
        "side": round(float(np.median(1.0 / size)), 4),  # crop side per box size
        "side_q25_q75": np.round(np.percentile(1.0 / size, [25, 75]), 4).tolist(),
        "shift": [
            round(float(np.median(0.5 - (b[:, 0] + b[:, 2] / 2))), 4),
            round(float(np.median(0.5 - (b[:, 1] + b[:, 3] / 2))), 4),
        ],  # crop centre - box centre
    }
    if points:
        out["landmarks_median"] = (
            np.round(np.median(np.array(points), 0), 4).reshape(5, 2).tolist()
        )
    return out


def chain_through_haar(photos: list[Path], haar_framing: dict) -> dict:
    """The CNN's framing as Haar's box measured against the CNN's on whole photos, then Haar's
    framing."""
    cnn = make_detector(DetectorOptions(detector="yuface", detect_scale=1.0, min_face_size=24))
    haar = make_detector(DetectorOptions(detector="haar", detect_scale=1.0, min_face_size=24))
    ratios, shifts = [], []
    for path in photos:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        a, b = cnn(rgb), haar(rgb)
        if len(a) != 1 or len(b) != 1:
            continue
        (x, y, w, h), (hx, hy, hw, hh) = a[0].box, b[0].box
        size = np.sqrt(w * h)
        ratios.append(np.sqrt(hw * hh) / size)  # Haar's box side per CNN box size
        shifts.append(((hx + hw / 2 - x - w / 2) / size, (hy + hh / 2 - y - h / 2) / size))
    ratio = float(np.median(ratios))
    shift = np.median(shifts, 0)
    side = haar_framing["side"] * ratio
    # crop centre = CNN box centre + (Haar centre - CNN centre) + Haar's own shift, in crop sides
    total = [float(shift[i] / side + haar_framing["shift"][i]) for i in range(2)]
    return {
        "photos": len(photos),
        "used": len(ratios),
        "haar_side_per_cnn_side": round(ratio, 4),
        "haar_centre_minus_cnn_centre": np.round(shift, 4).tolist(),
        "side": round(side, 4),
        "shift": [round(v, 4) for v in total],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--per-set", type=int, default=2000, help="faces sampled from each set's train split"
    )
    parser.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="whole photos with one face each, <dir>/<class>/*.jpg (e.g. taiwanese_dev)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    results = {}
    for name, up in SETS.items():
        files = sorted((args.data / name / "train").glob("*/*.jpg"))
        if not files:
            print(
                f"{name}: skipped, no {args.data / name / 'train'}/<class>/*.jpg", file=sys.stderr
            )
            continue
        rng.shuffle(files)
        files = files[: args.per_set]
        for det in DETECTORS:
            detector = make_detector(
                DetectorOptions(detector=det, detect_scale=1.0, min_face_size=8)
            )
            t0 = time.perf_counter()
            results.setdefault(det, {})[name] = measure(detector, files, up)
            print(
                f"{det:7s} {name:9s} {json.dumps(results[det][name])} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
    for det, per_set in results.items():  # the sets weigh equally: one rule for both
        per_set["pooled"] = {
            "side": round(float(np.mean([s["side"] for s in per_set.values()])), 4),
            "shift": np.round(np.mean([s["shift"] for s in per_set.values()], 0), 4).tolist(),
        }
        if all(
            "landmarks_median" in s
            for s in per_set.values()
            if isinstance(s, dict) and "found" in s
        ):
            marks = [s["landmarks_median"] for s in per_set.values() if "landmarks_median" in s]
            if marks:
                per_set["pooled"]["landmarks"] = np.round(np.mean(marks, 0), 4).tolist()
        print(f"{det}: pooled {per_set['pooled']}")
    chained = None
    photos = sorted(args.photos.glob("*/*.jpg")) if args.photos else []
    if photos and "haar" in results:
        chained = chain_through_haar(photos, results["haar"]["pooled"])
        print(f"yuface through haar on {len(photos)} whole photos: {chained}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "per_set_sample": args.per_set,
                    "results": results,
                    "yuface_chained_through_haar": chained,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
