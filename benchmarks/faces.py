"""Face detection benchmark: every detector on the same frames, small faces, and the shipped
classifier through the whole pipeline for each detector and crop mode.

Frames (each set is skipped, saying why, when its source is absent):
  astronaut    scikit-image's astronaut (public domain), one frontal face, in a 640x480 frame
  groups       640x480 frames composed of 2-4 muxspace val faces (news photos; three-quarter views
               among them) of 48-180 px on real backgrounds, boxes known
  turned       muxspace val faces (128x128) padded into a 384x384 canvas, so a detector sees some
               background: news-photo faces, many of them turned or tilted
  taiwanese    the whole 256x256 photos of ../shared/data/taiwanese_dev (one frontal face each)
  small_faces  taiwanese_dev heads scaled to faces of 16-32 px, four to a 640x480 or 1280x720
               frame, for several search settings; and how soon a new face is reported
               (benchmarks/small_faces.py)

A detection matches a face when its centre lies in the face's box (known boxes) and each face takes
at most one detection; every other box is false. Timing: the whole-frame search of the astronaut
frame at 640x480 and 320x240, one detector thread.

Accuracy: `taiwanese_dev` through `Pipeline.process` (the node's detector, crop and engine, the
shipped model) for each detector and crop mode; a photo where no face is found counts as wrong.

    python benchmarks/faces.py --data <dir> --json benchmarks/results/faces.json

<dir> holds muxspace/ and taiwanese_dev/ as the shared tars unpack.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from fer_ros.inference.engine import Engine, EngineOptions
from fer_ros.inference.faces import DetectorOptions, make_detector
from fer_ros.inference.pipeline import Pipeline, PipelineOptions
from fer_ros.labels import canonical
from fer_ros.metrics import percentile

sys.path.insert(0, str(Path(__file__).parent))
import small_faces  # noqa: E402  (a sibling script, not part of the package)

DETECTORS = ("yuface", "haar")
# (detector, face_crop, face_margin): the crop sweep on taiwanese_dev.
CROP_SWEEP = (
    [("haar", "box", m) for m in (0.0, 0.1, 0.2)]
    + [("haar", "framed", m) for m in (0.0, 0.1)]
    + [("yuface", "box", m) for m in (0.0, 0.1, 0.2)]
    + [("yuface", "framed", m) for m in (0.0, 0.05, 0.1, 0.2)]
    + [("yuface", "aligned", m) for m in (0.0, 0.1)]
)
ASTRONAUT_FACE = (160, 45, 120, 150)  # by eye, in the 512x512 photo: brow to chin, ear to ear


def astronaut_frame(size=(640, 480)) -> tuple[np.ndarray, list]:
    photo = skimage.data.astronaut()
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
    k = 480 / 512
    x, y, w, h = ASTRONAUT_FACE
    box = (80 + x * k, y * k, w * k, h * k)
    if size != (640, 480):
        s = size[0] / 640
        frame, box = (
            cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
            tuple(v * s for v in box),
        )
    return frame, [box]


def backgrounds() -> list[np.ndarray]:
    """Real photos without faces, as 640x480 backgrounds."""
    photos = [
        skimage.data.coffee(),
        skimage.data.rocket(),
        cv2.cvtColor(skimage.data.brick(), cv2.COLOR_GRAY2RGB),
        cv2.cvtColor(skimage.data.grass(), cv2.COLOR_GRAY2RGB),
    ]
    return [cv2.resize(p, (640, 480), interpolation=cv2.INTER_AREA) for p in photos]


def grey_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)


def group_frames(
    faces: list[Path], count: int, rng: random.Random
) -> list[tuple[np.ndarray, list]]:
    """Frames of 2-4 faces, no two overlapping; the first face of each frame is 48 px (the node's
    smallest face at its default settings must be found)."""
    frames, bgs, it = [], backgrounds(), iter(faces)
    for i in range(count):
        frame, boxes = bgs[i % len(bgs)].copy(), []
        for k in range(rng.randint(2, 4)):
            side = 48 if k == 0 else rng.randint(64, 180)
            for _ in range(50):
                x, y = rng.randint(0, 640 - side), rng.randint(0, 480 - side)
                if all(
                    x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y
                    for bx, by, bw, bh in boxes
                ):
                    break
            else:
                continue
            frame[y : y + side, x : x + side] = cv2.resize(
                grey_rgb(next(it)), (side, side), interpolation=cv2.INTER_AREA
            )
            boxes.append((x, y, side, side))
        frames.append((frame, boxes))
    return frames


def turned_frames(faces: list[Path]) -> list[tuple[np.ndarray, list]]:
    out = []
    for path in faces:
        face = grey_rgb(path)
        side = face.shape[0]
        out.append(
            (
                cv2.copyMakeBorder(face, side, side, side, side, cv2.BORDER_REPLICATE),
                [(side, side, side, side)],
            )
        )
    return out


def taiwanese_frames(root: Path) -> list[tuple[np.ndarray, list, str]]:
    """Whole photos; the face is somewhere in the middle (head and shoulders): the known box is the
    middle 70 % of the width and the top 85 % of the height."""
    out = []
    for path in sorted(root.glob("*/*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        out.append((rgb, [(0.15 * w, 0.0, 0.7 * w, 0.85 * h)], canonical(path.parent.name)))
    return out


def count(detector, frames) -> dict:
    found = missed = false = 0
    for frame, truth, *_ in frames:
        faces = detector(frame)
        taken = set()
        for bx, by, bw, bh in truth:
            hit = next(
                (
                    i
                    for i, f in enumerate(faces)
                    if i not in taken
                    and bx <= f.box[0] + f.box[2] / 2 <= bx + bw
                    and by <= f.box[1] + f.box[3] / 2 <= by + bh
                ),
                None,
            )
            if hit is None:
                missed += 1
            else:
                found += 1
                taken.add(hit)
        false += len(faces) - len(taken)
    total = found + missed
    return {
        "faces": total,
        "found": found,
        "missed": missed,
        "false": false,
        "found_pct": round(100.0 * found / total, 1) if total else None,
    }


def timing(detector, frame: np.ndarray, runs: int = 40) -> dict:
    detector(frame)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        detector(frame)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(percentile(times, 50), 2), "p90_ms": round(percentile(times, 90), 2)}


def pipeline_accuracy(engine, frames, detector: str, face_crop: str, margin: float) -> dict:
    options = PipelineOptions(
        detector=detector,
        face_crop=face_crop,
        face_margin=margin,
        detect_every=1,
        detect_async=False,
    )
    pipeline = Pipeline(engine, options)
    right = found = 0
    per_class: dict[str, list[int]] = {}
    for i, (frame, _, label) in enumerate(frames):
        result = pipeline.process(frame, now=float(i) * 10.0)  # 10 s apart: no face carries over
        guess = result.faces[0].label if result.faces else None
        found += guess is not None
        right += guess == label
        per_class.setdefault(label, [0, 0])
        per_class[label][0] += guess == label
        per_class[label][1] += 1
    pipeline.close()
    return {
        "detector": detector,
        "face_crop": face_crop,
        "face_margin": margin,
        "accuracy": round(100.0 * right / len(frames), 2),
        "face_found_pct": round(100.0 * found / len(frames), 1),
        "recall": {k: round(100.0 * r / n, 1) for k, (r, n) in sorted(per_class.items())},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="folder with muxspace/ and taiwanese_dev/"
    )
    parser.add_argument("--groups", type=int, default=30, help="composed multi-face frames")
    parser.add_argument("--turned", type=int, default=400, help="padded muxspace val faces")
    parser.add_argument("--checkpoint", default="", help="classifier (default: the shipped model)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # the node's detect_threads default
    rng = random.Random(0)
    sets = {"astronaut": [astronaut_frame()]}
    skipped = {}
    mux = sorted((args.data / "muxspace" / "val").glob("*/*.jpg")) if args.data else []
    if mux:
        rng.shuffle(mux)
        sets["groups"] = group_frames(mux[args.turned :], args.groups, rng)
        sets["turned"] = turned_frames(mux[: args.turned])
    else:
        skipped["groups"] = skipped["turned"] = "no --data/muxspace/val/<class>/*.jpg"
    taiwanese = taiwanese_frames(args.data / "taiwanese_dev") if args.data else []
    if taiwanese:
        sets["taiwanese"] = taiwanese
    else:
        skipped["taiwanese"] = "no --data/taiwanese_dev/<class>/*.jpg"

    node_defaults = DetectorOptions()
    detection = {}
    for name in DETECTORS:
        detector = make_detector(dataclasses.replace(node_defaults, detector=name))
        row = {set_name: count(detector, frames) for set_name, frames in sets.items()}
        found = sum(r["found"] for r in row.values())
        faces = sum(r["faces"] for r in row.values())
        row["all"] = {
            "faces": faces,
            "found": found,
            "false": sum(r["false"] for r in row.values()),
            "found_pct": round(100.0 * found / faces, 1),
        }
        full = make_detector(dataclasses.replace(node_defaults, detector=name, detect_scale=1.0))
        row["ms_640x480_full_size"] = timing(full, astronaut_frame()[0])
        row["ms_320x240_full_size"] = timing(full, astronaut_frame((320, 240))[0])
        row["ms_640x480_default_scale"] = timing(detector, astronaut_frame()[0])
        detection[name] = row
        print(
            f"{name:7s} "
            + "  ".join(
                f"{k} {v['found']}/{v['missed'] if 'missed' in v else v['faces'] - v['found']}"
                f"/{v['false']}"
                for k, v in row.items()
                if "found" in v
            )
            + f"  | ms 640x480 {row['ms_640x480_full_size']['p50_ms']}, 320x240 "
            f"{row['ms_320x240_full_size']['p50_ms']}, default scale "
            f"{row['ms_640x480_default_scale']['p50_ms']}",
            flush=True,
        )

    small = {}
    if taiwanese:
        cuts = small_faces.heads(args.data / "taiwanese_dev")
        small = small_faces.sweep(cuts, backgrounds(), count, timing)
    else:
        skipped["small_faces"] = "no --data/taiwanese_dev/<class>/*.jpg"

    sweep = []
    if taiwanese:
        engine = Engine.from_options(EngineOptions(checkpoint=args.checkpoint))
        engine.warmup()
        small["new_face"] = small_faces.new_face_delay(engine, cuts, backgrounds())
        print(f"new face: {small['new_face']}", flush=True)
        for det, mode, margin in CROP_SWEEP:
            sweep.append(pipeline_accuracy(engine, taiwanese, det, mode, margin))
            r = sweep[-1]
            print(
                f"taiwanese_dev {det:7s} {mode:8s} margin {margin:<4g} accuracy "
                f"{r['accuracy']:5.1f} %  "
                f"faces found {r['face_found_pct']} %",
                flush=True,
            )
        model = engine.model_id
        engine.close()
    else:
        model = None
    result = {
        "node_defaults": dataclasses.asdict(node_defaults),
        "skipped": skipped,
        "frames": {k: len(v) for k, v in sets.items()},
        "detection": detection,
        "small_faces": small,
        "taiwanese_dev_pipeline": {"model": model, "runs": sweep},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        args.json.with_suffix(".txt").write_text(table(result))
    print(table(result))
    return 0


def table(result: dict) -> str:
    lines = [
        "| detector | "
        + " | ".join(f"{k}: found / missed / false" for k in result["frames"])
        + " | all found | ms 640x480 | ms 320x240 | ms 640x480 at the node's defaults |",
        "|---" * (len(result["frames"]) + 5) + "|",
    ]
    for name, row in result["detection"].items():
        cells = [
            f"{row[k]['found']} / {row[k]['missed']} / {row[k]['false']}" for k in result["frames"]
        ]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {row['all']['found_pct']} % | "
            f"{row['ms_640x480_full_size']['p50_ms']} | {row['ms_320x240_full_size']['p50_ms']} | "
            f"{row['ms_640x480_default_scale']['p50_ms']} |"
        )
    small = result.get("small_faces") or {}
    if small.get("settings"):
        lines += ["", "Small faces (found / missed / false of 100 per width; ms per search):", ""]
        sizes = [k for k in small["settings"][0] if "x" in k]
        widths = list(small["settings"][0][sizes[0]]["widths"])
        lines.append(
            "| min_face_size | CNN_MIN_SIDE | "
            + " | ".join(f"{size} {w} px" for size in sizes for w in widths)
            + " | "
            + " | ".join(f"{size} ms (scale)" for size in sizes)
            + " |"
        )
        lines.append("|---" * (2 + len(sizes) * (len(widths) + 1)) + "|")
        for row in small["settings"]:
            cells = [
                f"{c['found']} / {c['missed']} / {c['false']}"
                for size in sizes
                for c in row[size]["widths"].values()
            ]
            cells += [f"{row[size]['ms']['p50_ms']} (x{row[size]['scale']})" for size in sizes]
            lines.append(
                f"| {row['min_face_size']} | {row['cnn_min_side']} | " + " | ".join(cells) + " |"
            )
    if small.get("new_face"):
        n = small["new_face"]
        lines += [
            "",
            f"A new {n['width']} px face beside a followed one, defaults, 30 Hz: found in "
            f"{n['found']} of {n['trials']} trials, p50 {n['p50_s']} s, at most {n['max_s']} s.",
        ]
    runs = result["taiwanese_dev_pipeline"]["runs"]
    if runs:
        lines += [
            "",
            f"taiwanese_dev through the pipeline ({result['taiwanese_dev_pipeline']['model']}):",
            "",
            "| detector | face_crop | face_margin | accuracy | faces found |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['detector']} | {r['face_crop']} | {r['face_margin']:g} | {r['accuracy']:.1f} % "
            "| "
            f"{r['face_found_pct']} % |"
            for r in runs
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
