"""The small-faces group of benchmarks/faces.py: people 2-4 m from a robot's camera.

Faces from the `taiwanese_dev` photos, each with the head and shoulders around it (a face alone,
cut at its box, is not what a camera sees), scaled so the face is 16, 20, 24 or 32 px wide, four
to a frame on real backgrounds: 640x480 frames, and 1280x720 frames (searched in tiles). Found /
missed / false per width for each search setting (`min_face_size`, and the width a face is brought
to in the searched image, `CNN_MIN_SIDE`), with the cost of one whole-frame search; then how soon
the pipeline at the node's defaults reports a face that walks into a frame where another face is
already followed (real time, 30 frames a second).
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

import cv2
import numpy as np

from fer_ros.inference import search
from fer_ros.inference.faces import DetectorOptions, make_detector
from fer_ros.inference.pipeline import Pipeline, PipelineOptions
from fer_ros.metrics import percentile

WIDTHS = (16, 20, 24, 32)
# (min_face_size, CNN_MIN_SIDE): the old default (40: the frame at detect_scale, x0.5), the
# defaults (20, 20: x1.0), 20 px faces searched at 24 px (x1.2), then smaller faces still.
SETTINGS = ((40, 20), (20, 20), (20, 24), (16, 20), (12, 20))
FRAME_SIZES = ((640, 480), (1280, 720))


def heads(root: Path, every: int = 3) -> list[tuple[np.ndarray, tuple]]:
    """Head-and-shoulders cuts of every `every`-th taiwanese_dev photo with one face, and the
    face's box in the cut (yuface at full size)."""
    detector = make_detector(
        DetectorOptions(detector="yuface", detect_scale=1.0, min_face_size=24)
    )
    out = []
    for path in sorted(root.glob("*/*.jpg"))[::every]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        faces = detector(rgb)
        if len(faces) != 1:
            continue
        x, y, w, h = faces[0].box
        height, width = rgb.shape[:2]
        x0, y0 = max(0, int(x - 0.6 * w)), max(0, int(y - 0.6 * h))
        x1, y1 = min(width, int(x + 1.6 * w)), min(height, int(y + 1.6 * h))
        out.append((rgb[y0:y1, x0:x1], (x - x0, y - y0, w, h)))
    return out


def place(frame, boxes, taken, head, width: int, rng: random.Random) -> bool:
    """Paste `head` scaled so its face is `width` px wide where it overlaps nothing pasted yet."""
    cut, (fx, fy, fw, fh) = head
    s = width / fw
    small = cv2.resize(cut, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    for _ in range(100):
        x, y = rng.randint(0, frame.shape[1] - w), rng.randint(0, frame.shape[0] - h)
        if all(
            x + w <= bx or bx + bw <= x or y + h <= by or by + bh <= y for bx, by, bw, bh in taken
        ):
            frame[y : y + h, x : x + w] = small
            taken.append((x, y, w, h))
            boxes.append((x + fx * s, y + fy * s, fw * s, fh * s))
            return True
    return False


def small_frames(cuts, backgrounds, width: int, size, count: int, rng: random.Random):
    """`count` frames of `size` with four faces `width` px wide, and their boxes."""
    frames = []
    for i in range(count):
        frame = cv2.resize(backgrounds[i % len(backgrounds)], size, interpolation=cv2.INTER_AREA)
        boxes, taken = [], []
        for _ in range(4):
            place(frame, boxes, taken, cuts[rng.randrange(len(cuts))], width, rng)
        frames.append((frame, boxes))
    return frames


def sweep(cuts, backgrounds, count_faces, timing, frames_per_width: int = 25) -> dict:
    """Found / missed / false per width and frame size for every setting, and ms a search."""
    sets = {
        f"{w}x{h}": {
            width: small_frames(
                cuts, backgrounds, width, (w, h), frames_per_width, random.Random(width)
            )
            for width in WIDTHS
        }
        for w, h in FRAME_SIZES
    }
    default_side, out = search.CNN_MIN_SIDE, []
    try:
        for min_face_size, side in SETTINGS:
            search.CNN_MIN_SIDE = side
            options = DetectorOptions(detector="yuface", min_face_size=min_face_size)
            detector = make_detector(options)
            row = {"min_face_size": min_face_size, "cnn_min_side": side}
            for frame_size, by_width in sets.items():
                shape = by_width[WIDTHS[0]][0][0].shape
                row[frame_size] = {
                    "scale": round(search.search_scale(0.5, min_face_size, shape, None), 3),
                    "widths": {str(w): count_faces(detector, fr) for w, fr in by_width.items()},
                    "ms": timing(detector, by_width[WIDTHS[-1]][0][0]),
                }
            out.append(row)
            print(summary(row), flush=True)
    finally:
        search.CNN_MIN_SIDE = default_side
    return {"frames_per_width": frames_per_width, "faces_per_frame": 4, "settings": out}


def summary(row: dict) -> str:
    parts = [f"min_face_size {row['min_face_size']:2d} side {row['cnn_min_side']}"]
    for frame_size in (f"{w}x{h}" for w, h in FRAME_SIZES):
        r = row[frame_size]
        found = " ".join(
            f"{w}:{c['found']}/{c['missed']}/{c['false']}" for w, c in r["widths"].items()
        )
        parts.append(f"{frame_size} x{r['scale']} {found} {r['ms']['p50_ms']} ms")
    return " | ".join(parts)


def new_face_delay(engine, cuts, backgrounds, trials: int = 20, width: int = 24) -> dict:
    """Seconds from the first frame showing a new face `width` px wide to the first result that
    has it, at the pipeline's defaults, 30 frames a second in real time, while a 96 px face is
    already followed (the periodic search runs beside the frames)."""
    rng, delays = random.Random(7), []
    period = 1.0 / 30.0
    for trial in range(trials):
        frame = cv2.resize(backgrounds[trial % len(backgrounds)], (640, 480))
        boxes, taken = [], []
        place(frame, boxes, taken, cuts[rng.randrange(len(cuts))], 96, rng)
        before = frame.copy()
        place(frame, boxes, taken, cuts[rng.randrange(len(cuts))], width, rng)
        nx, ny, nw, nh = boxes[-1]
        pipeline = Pipeline(engine, PipelineOptions())
        start = time.monotonic()
        for i in range(15):  # half a second with the first face alone
            pipeline.process(before, now=time.monotonic())
            time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
        shown, delay = time.monotonic(), None
        for i in range(60):  # two seconds with both
            result = pipeline.process(frame, now=time.monotonic())
            if any(
                nx <= f.box[0] + f.box[2] / 2 <= nx + nw
                and ny <= f.box[1] + f.box[3] / 2 <= ny + nh
                for f in result.faces
            ):
                delay = time.monotonic() - shown
                break
            time.sleep(max(0.0, shown + (i + 1) * period - time.monotonic()))
        pipeline.close()
        delays.append(delay)
    found = [d for d in delays if d is not None]
    return {
        "width": width,
        "trials": trials,
        "found": len(found),
        "p50_s": round(percentile(found, 50), 3) if found else None,
        "max_s": round(max(found), 3) if found else None,
        "defaults": {
            k: v
            for k, v in dataclasses.asdict(PipelineOptions()).items()
            if k in ("min_face_size", "detect_scale", "detect_every", "detect_async")
        },
    }
