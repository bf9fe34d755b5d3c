"""Procedurally drawn faces whose expression is visible in the eyes, brows and mouth.

Used wherever a real face data set cannot be: tests, the node's tests and the demo bag. Every
expression has its own geometry (mouth curve and opening, eye opening, brow slant), and every
image its own nuisance factors (skin and hair colour, pose, scale, background clutter, noise,
blur), so a classifier has to read the expression, not the picture.

    rng = np.random.default_rng(0)
    face = draw_face("happy", rng, size=96)               # (96, 96, 3) uint8 RGB, face fills it
    frame, (x, y, w, h) = draw_scene("sad", rng)         # 640x480 clutter with one face in it

Everything is deterministic given the generator's seed.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_ros.atomic import atomic_file
from fer_ros.errors import ConfigError
from fer_ros.labels import AFFECTNET8, FER7, LABEL_SETS

# Faces are drawn on a canvas of this size, then warped (pose) and shrunk: drawing large and
# downsampling gives smooth edges at any output size.
_CANVAS = 256
_SHIFT = 4  # cv2 fixed-point bits: coordinates carry 1/16 px precision
_ONE = 1 << _SHIFT
_MID = _CANVAS / 2  # the canvas centre, where the face is drawn


@dataclass(frozen=True)
class Expression:
    """Geometry of one expression, as ranges [lo, hi] sampled per face. Units: canvas pixels."""

    mouth_curve: tuple[float, float]  # + corners up (smile), - corners down (frown)
    mouth_open: tuple[float, float]  # gap between the lips
    mouth_width: tuple[float, float]
    eye_open: tuple[float, float]  # lid opening as a fraction of a relaxed eye
    brow_lift: tuple[float, float]  # + brows up, away from the eyes
    brow_slant: tuple[float, float]  # + inner ends down (anger), - inner ends up (sadness, fear)
    smirk: tuple[float, float] = (0.0, 0.0)  # one-sided lift of the right mouth corner (contempt)
    teeth: bool = False
    nose_wrinkle: bool = False


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(
        mouth_curve=(-2, 2),
        mouth_open=(0, 0),
        mouth_width=(44, 54),
        eye_open=(0.85, 1.0),
        brow_lift=(-2, 2),
        brow_slant=(-1.5, 1.5),
    ),
    "happy": Expression(
        mouth_curve=(20, 28),
        mouth_open=(6, 14),
        mouth_width=(64, 78),
        eye_open=(0.45, 0.65),
        brow_lift=(2, 6),
        brow_slant=(-2, 0),
        teeth=True,
    ),
    "sad": Expression(
        mouth_curve=(-20, -13),
        mouth_open=(0, 0),
        mouth_width=(44, 56),
        eye_open=(0.6, 0.8),
        brow_lift=(0, 4),
        brow_slant=(-13, -8),
    ),
    "surprise": Expression(
        mouth_curve=(-1, 1),
        mouth_open=(30, 40),
        mouth_width=(26, 34),
        eye_open=(1.3, 1.5),
        brow_lift=(16, 22),
        brow_slant=(-2, 2),
    ),
    "fear": Expression(
        mouth_curve=(-8, -4),
        mouth_open=(12, 18),
        mouth_width=(56, 68),
        eye_open=(1.25, 1.45),
        brow_lift=(10, 14),
        brow_slant=(-11, -7),
        teeth=True,
    ),
    "angry": Expression(
        mouth_curve=(-6, -2),
        mouth_open=(0, 0),
        mouth_width=(34, 42),
        eye_open=(0.5, 0.7),
        brow_lift=(-10, -6),
        brow_slant=(12, 16),
    ),
    "disgust": Expression(
        mouth_curve=(-12, -6),
        mouth_open=(5, 9),
        mouth_width=(40, 50),
        eye_open=(0.4, 0.6),
        brow_lift=(-8, -4),
        brow_slant=(4, 8),
        smirk=(-10, -6),
        teeth=True,
        nose_wrinkle=True,
    ),
    "contempt": Expression(
        mouth_curve=(-1, 2),
        mouth_open=(0, 0),
        mouth_width=(44, 52),
        eye_open=(0.75, 0.9),
        brow_lift=(0, 3),
        brow_slant=(-1, 1),
        smirk=(14, 20),
    ),
}
assert set(EXPRESSIONS) == set(AFFECTNET8), "every canonical label needs a drawn expression"


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _pts(points) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _quad(p0, p1, p2, n: int = 24) -> np.ndarray:
    """Points of the quadratic Bezier curve p0 -> p2 pulled towards p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _random_colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, size=3))


def draw_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered RGB background: a colour gradient under random rectangles, discs and lines."""
    c0 = np.array(_random_colour(rng), dtype=np.float32)
    c1 = np.array(_random_colour(rng), dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xx * math.cos(angle) + yy * math.sin(angle)) / max(width, height)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8)
    scale = max(width, height)
    for _ in range(int(rng.integers(4, 12))):
        colour = _random_colour(rng)
        kind = rng.integers(3)
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        if kind == 0:
            w, h = (int(v) for v in rng.integers(scale // 20, scale // 3, size=2))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, -1)
        elif kind == 1:
            cv2.circle(
                img, (x0, y0), int(rng.integers(scale // 40, scale // 6)), colour, -1, cv2.LINE_AA
            )
        else:
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(
                img,
                (x0, y0),
                (x1, y1),
                colour,
                int(rng.integers(1, max(2, scale // 60))),
                cv2.LINE_AA,
            )
    return img


def _draw_eye(img, cx, cy, open_frac, iris, rng_dx, side):
    """One eye: white, iris and pupil inside lids whose opening sets how much of it shows."""
    w, h = 17.0, 10.0 * open_frac
    cv2.ellipse(
        img,
        _pts((cx, cy)),
        _pts((w, max(h, 1.2))),
        0,
        0,
        360,
        (245, 245, 240),
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )
    # The iris is clipped to the opening by drawing it into a mask of the eye white.
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(
        mask, _pts((cx, cy)), _pts((w, max(h, 1.2))), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT
    )
    layer = img.copy()
    cv2.circle(layer, _pts((cx + rng_dx, cy)), int(8.5 * _ONE), iris, -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(
        layer, _pts((cx + rng_dx, cy)), int(4.0 * _ONE), (15, 15, 15), -1, cv2.LINE_AA, _SHIFT
    )
    m = mask[..., None].astype(np.float32) / 255.0
    img[:] = (layer * m + img * (1 - m)).astype(np.uint8)
    cv2.ellipse(
        img,
        _pts((cx, cy)),
        _pts((w, max(h, 1.2))),
        0,
        0,
        360,
        (40, 30, 30),
        2,
        cv2.LINE_AA,
        _SHIFT,
    )


def _draw_head(
    img: np.ndarray, alpha: np.ndarray, rng: np.random.Generator
) -> tuple[tuple, tuple, float, float]:
    """Hair behind the head, then ears, head, hair fringe on top; (skin, hair, half-width,
    half-height)."""
    skin = np.array([rng.uniform(90, 250), 0, 0])
    skin[1] = skin[0] * rng.uniform(0.65, 0.85)
    skin[2] = skin[1] * rng.uniform(0.7, 0.95)
    skin = tuple(int(v) for v in skin)
    hair = _random_colour(rng, 0, 120) if rng.random() < 0.8 else _random_colour(rng, 120, 256)
    fw, fh = rng.uniform(82, 94), rng.uniform(104, 116)  # face half-width / half-height
    if rng.random() < 0.85:
        cv2.ellipse(
            img,
            _pts((_MID, _MID - 12)),
            _pts((fw + 10, fh + 8)),
            0,
            180,
            360,
            hair,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
        cv2.ellipse(
            alpha,
            _pts((_MID, _MID - 12)),
            _pts((fw + 10, fh + 8)),
            0,
            180,
            360,
            255,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    for sx in (-1, 1):
        cv2.ellipse(
            img,
            _pts((_MID + sx * fw, _MID)),
            _pts((12, 22)),
            0,
            0,
            360,
            skin,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
        cv2.ellipse(
            alpha,
            _pts((_MID + sx * fw, _MID)),
            _pts((12, 22)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    cv2.ellipse(img, _pts((_MID, _MID)), _pts((fw, fh)), 0, 0, 360, skin, -1, cv2.LINE_AA, _SHIFT)
    cv2.ellipse(alpha, _pts((_MID, _MID)), _pts((fw, fh)), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.7:
        fringe = rng.uniform(0.25, 0.45) * fh
        cv2.ellipse(
            img,
            _pts((_MID, _MID - fh + fringe * 0.3)),
            _pts((fw * 0.95, fringe)),
            0,
            180,
            360,
            hair,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    return skin, hair, fw, fh


def _draw_eyes_and_brows(img: np.ndarray, ex, line: tuple, rng: np.random.Generator) -> float:
    """Eyes and brows, mirrored; the inner end of a brow moves with brow_slant. Returns the eyes'
    height."""
    eye_y, eye_dx = _MID - 14 + rng.uniform(-4, 4), rng.uniform(32, 38)
    eye_open = _u(rng, ex.eye_open)
    iris = _random_colour(rng, 30, 160)
    gaze = rng.uniform(-3, 3)
    lift, slant = _u(rng, ex.brow_lift), _u(rng, ex.brow_slant)
    brow_t = int(rng.integers(5, 9))
    for sx in (-1, 1):
        ex_x = _MID + sx * eye_dx
        _draw_eye(img, ex_x, eye_y, eye_open, iris, gaze, sx)
        brow_y = eye_y - 24 - lift
        inner = (ex_x - sx * 20, brow_y + slant)
        outer = (ex_x + sx * 20, brow_y - slant * 0.4)
        mid = (ex_x, brow_y - 5 - slant * 0.1)
        cv2.polylines(
            img, [_pts(_quad(inner, mid, outer))], False, line, brow_t, cv2.LINE_AA, _SHIFT
        )
    return eye_y


def _draw_mouth(img: np.ndarray, ex, rng: np.random.Generator) -> None:
    """Two lip curves between the corners; the corners move with curve (both) and smirk (one)."""
    mw = _u(rng, ex.mouth_width) / 2
    curve, gap, smirk = _u(rng, ex.mouth_curve), _u(rng, ex.mouth_open), _u(rng, ex.smirk)
    my = _MID + 55 + rng.uniform(-4, 4)
    left, right = (_MID - mw, my - curve), (_MID + mw, my - curve - smirk)
    # Control points sit below the corners by ~2x the curve: a smile bows down in the middle.
    mid_y = my + curve * 0.6 - smirk * 0.3
    upper = _quad(left, (_MID, mid_y - gap * 0.6 - 2), right)
    lower = _quad(right, (_MID, mid_y + gap * 1.6 + 2), left)
    lip = (int(rng.uniform(120, 200)), int(rng.uniform(40, 90)), int(rng.uniform(50, 90)))
    if gap <= 0.5:
        cv2.polylines(img, [_pts(upper)], False, lip, 6, cv2.LINE_AA, _SHIFT)
        return
    inside = np.concatenate([upper, lower])
    cv2.fillPoly(img, [_pts(inside)], (50, 15, 20), cv2.LINE_AA, _SHIFT)
    if ex.teeth:
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [_pts(inside)], 255, cv2.LINE_AA, _SHIFT)
        band = np.zeros(img.shape[:2], np.uint8)
        top = float(np.min(upper[:, 1]))
        cv2.rectangle(band, (0, int(top)), (_CANVAS, int(top + max(4.0, gap * 0.45))), 255, -1)
        m = ((mask.astype(np.float32) * band.astype(np.float32)) / 255.0**2)[..., None]
        img[:] = (np.array([235, 235, 225], np.float32) * m + img * (1 - m)).astype(np.uint8)
    cv2.polylines(img, [_pts(inside)], True, lip, 4, cv2.LINE_AA, _SHIFT)


def _draw_face_layer(label: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The face on a _CANVAS square: (RGB image, float alpha mask in [0, 1]), frontal, unscaled.
    The parts draw from `rng` in this order: reordering them would change every synthetic face."""
    ex = EXPRESSIONS[label]
    img = np.zeros((_CANVAS, _CANVAS, 3), np.uint8)
    alpha = np.zeros((_CANVAS, _CANVAS), np.uint8)
    skin, hair, _, _ = _draw_head(img, alpha, rng)
    dark = tuple(int(v * 0.35) for v in skin)
    line = tuple(int(v * 0.5) for v in hair) if rng.random() < 0.5 else dark
    eye_y = _draw_eyes_and_brows(img, ex, line, rng)
    # Nose: a short ridge and nostrils; disgust wrinkles the bridge.
    nose_y = _MID + 22
    cv2.polylines(
        img,
        [_pts([(_MID - 2, eye_y + 8), (_MID - 6, nose_y), (_MID + 6, nose_y)])],
        False,
        dark,
        3,
        cv2.LINE_AA,
        _SHIFT,
    )
    if ex.nose_wrinkle:
        for k in range(3):
            y = eye_y + 4 + 5 * k
            cv2.polylines(
                img,
                [_pts(_quad((_MID - 12, y + 2), (_MID, y - 3), (_MID + 12, y + 2), 10))],
                False,
                dark,
                2,
                cv2.LINE_AA,
                _SHIFT,
            )
    _draw_mouth(img, ex, rng)
    # Cheek blush on some faces: colour variation that carries no label.
    if rng.random() < 0.3:
        layer = img.copy()
        for sx in (-1, 1):
            cv2.circle(
                layer,
                _pts((_MID + sx * 50, _MID + 28)),
                14 * _ONE,
                (230, 120, 120),
                -1,
                cv2.LINE_AA,
                _SHIFT,
            )
        img[:] = cv2.addWeighted(layer, 0.3, img, 0.7, 0)
    return img, alpha.astype(np.float32) / 255.0


def _pose_matrix(rng: np.random.Generator, out: int, jitter: float) -> np.ndarray:
    """Affine map canvas -> output square: in-plane rotation, scale and shift, amounts times
    jitter."""
    angle = rng.uniform(-15, 15) * jitter
    scale = out / _CANVAS * rng.uniform(1.0 - 0.15 * jitter, 1.0 + 0.05 * jitter)
    m = cv2.getRotationMatrix2D((_CANVAS / 2, _CANVAS / 2), angle, scale)
    m[:, 2] += out / 2 - _CANVAS / 2 + rng.uniform(-0.06, 0.06, size=2) * out * jitter
    return m


def _finish(img: np.ndarray, rng: np.random.Generator, face_side: int) -> np.ndarray:
    """Camera nuisances: brightness/contrast, blur (in proportion to the face) and sensor noise."""
    out = img.astype(np.float32) * rng.uniform(0.75, 1.2) + rng.uniform(-25, 25)
    if rng.random() < 0.4:  # defocus, in proportion to the face so small faces keep their features
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.0) * face_side / 96)
    out += rng.normal(0.0, rng.uniform(0, 8), size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _composite(
    face: np.ndarray, alpha: np.ndarray, background: np.ndarray, matrix: np.ndarray
) -> np.ndarray:
    h, w = background.shape[:2]
    # Warp by a matrix that first shrinks with area averaging: better than bilinear at big
    # reductions.
    warped = cv2.warpAffine(
        face, matrix, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT
    )
    a = cv2.warpAffine(
        alpha, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )[..., None]
    return (warped.astype(np.float32) * a + background.astype(np.float32) * (1 - a)).astype(
        np.uint8
    )


def _check_label(label: str) -> None:
    if label not in EXPRESSIONS:
        raise ConfigError(f"unknown expression {label!r}; expected one of {', '.join(AFFECTNET8)}")


def draw_face(
    label: str, rng: np.random.Generator, size: int = 96, jitter: float = 1.0
) -> np.ndarray:
    """One face showing `label`, filling a (size, size, 3) uint8 RGB image, background behind it.

    jitter in [0, 1] scales the random pose (rotation within ±15°, scale, shift); 0 gives a
    frontal, centred face. The expression's own geometry is sampled at any jitter.
    """
    _check_label(label)
    face, alpha = _draw_face_layer(label, rng)
    # Shrink in two steps (INTER_AREA to 2x the size, then the pose warp) to keep edges smooth.
    inner = min(_CANVAS, 2 * size)
    face_s = cv2.resize(face, (inner, inner), interpolation=cv2.INTER_AREA)
    alpha_s = cv2.resize(alpha, (inner, inner), interpolation=cv2.INTER_AREA)
    m = _pose_matrix(rng, size, jitter)
    m[:, :2] *= _CANVAS / inner
    img = _composite(face_s, alpha_s, draw_background(rng, size, size), m)
    return _finish(img, rng, size)


# Side of a detector's face box relative to the drawn head square: 1 / (1 + 2 * 0.2 margin).
FACE_BOX = 1 / 1.4


def draw_scene(
    label: str,
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    face_range: tuple[float, float] = (0.2, 0.45),
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A cluttered (height, width, 3) uint8 RGB frame with one face showing `label`.

    Returns the frame and the face's box (x, y, w, h) in pixels, as a face detector reports it: the
    central part of the head, brows to chin (FACE_BOX of the square the head is drawn into). Grown
    by a 20 % margin on every side, as the pipeline crops, it is that square again, framed like
    `draw_face`. face_range is the head square's side as a fraction of min(width, height).
    """
    _check_label(label)
    side = int(round(rng.uniform(*face_range) * min(width, height)))
    side = max(16, min(side, width, height))
    x = int(rng.integers(0, width - side + 1))
    y = int(rng.integers(0, height - side + 1))
    face, alpha = _draw_face_layer(label, rng)
    m = _pose_matrix(rng, side, 0.5)
    m[:, 2] += (x, y)
    img = _composite(face, alpha, draw_background(rng, width, height), m)
    inner = int(round(side * FACE_BOX))
    off = (side - inner) // 2
    return _finish(img, rng, side), (x + off, y + off, inner, inner)


def face_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for sample `index` of a data set seeded `seed`: any sample can be drawn
    alone."""
    return np.random.default_rng([seed, index])


def render_faces(
    n: int, labels=FER7, size: int = 64, seed: int = 0, gray: bool = False, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """n faces as (images (n, size, size, C) uint8, targets (n,) int64), classes in turn
    (balanced).

    Sample i is drawn from face_rng(seed, i) with label labels[i % len(labels)].
    """
    labels = tuple(labels)
    images = np.empty((n, size, size, 1 if gray else 3), np.uint8)
    targets = np.arange(n, dtype=np.int64) % len(labels)
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"drawing {n} faces", unit="img", leave=False)
    for i in it:
        face = draw_face(labels[targets[i]], face_rng(seed, i), size=size)
        images[i] = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None] if gray else face
    return images, targets


# ---------------------------------------------------------------------------------------------
# `fer-ros synth`: write a synthetic data set to disk, as a folder per class or a FER2013 CSV.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out", type=Path, help="output folder (images) or .csv file (fer2013 format)"
    )
    parser.add_argument(
        "--format",
        choices=("folder", "fer2013"),
        default=None,
        help="folder: <out>/<split>/<class>/NNNNNN.png; fer2013: emotion,pixels,Usage CSV of "
        "48x48 grey (default: from the output name)",
    )
    parser.add_argument("-n", "--num", type=int, default=700, help="training images (default 700)")
    parser.add_argument("--val", type=int, default=140, help="validation images (default 140)")
    parser.add_argument("--test", type=int, default=140, help="test images (default 140)")
    parser.add_argument("--labels", choices=sorted(LABEL_SETS), default="fer7")
    parser.add_argument(
        "--size", type=int, default=96, help="image side for folder output (default 96)"
    )
    parser.add_argument("--seed", type=int, default=0)


# Disjoint seeds per split: a validation face is never a training face.
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


MAX_SIZE = 1024  # image side of folder output; larger synthetic faces only cost disk


def check_arguments(args: argparse.Namespace, fmt: str) -> None:
    """Every option checked before anything is created: a bad one leaves nothing behind."""
    for option, value in (("-n/--num", args.num), ("--val", args.val), ("--test", args.test)):
        if value < 0:
            raise ConfigError(f"{option} must be 0 or more, not {value}")
    if args.num + args.val + args.test == 0:
        raise ConfigError("nothing to write: -n/--num, --val and --test are all 0")
    if not 16 <= args.size <= MAX_SIZE:
        raise ConfigError(f"--size must be within 16..{MAX_SIZE}, not {args.size}")
    if fmt == "fer2013" and args.out.is_dir():
        raise ConfigError(f"{args.out} is a folder; the fer2013 format writes one .csv file")
    if fmt == "folder" and args.out.exists() and not args.out.is_dir():
        raise ConfigError(
            f"{args.out} is a file; folder output needs a folder (or a .csv name for fer2013)"
        )


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("fer2013" if args.out.suffix == ".csv" else "folder")
    check_arguments(args, fmt)
    labels = LABEL_SETS[args.labels]
    splits = {"train": args.num, "val": args.val, "test": args.test}
    if fmt == "fer2013":
        if labels != FER7:
            raise ConfigError("the fer2013 format has the 7 FER2013 classes only (--labels fer7)")
        usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
        with atomic_file(args.out) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["emotion", "pixels", "Usage"])
            for split, n in splits.items():
                images, targets = render_faces(
                    n, labels, 48, args.seed * 10 + SPLIT_SEEDS[split], gray=True, progress=True
                )
                for img, t in zip(images, targets):
                    w.writerow(
                        [int(t), " ".join(map(str, img.reshape(-1).tolist())), usage[split]]
                    )
    else:
        for split, n in splits.items():
            images, targets = render_faces(
                n, labels, args.size, args.seed * 10 + SPLIT_SEEDS[split], progress=True
            )
            for name in labels:
                (args.out / split / name).mkdir(parents=True, exist_ok=True)
            for i, (img, t) in enumerate(zip(images, targets)):
                cv2.imwrite(
                    str(args.out / split / labels[t] / f"{i:06d}.png"),
                    cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                )
    total = sum(splits.values())
    print(
        f"wrote {total} synthetic faces ({', '.join(f'{k} {v}' for k, v in splits.items())}) to "
        f"{args.out}"
    )
    return 0
