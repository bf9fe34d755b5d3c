"""Face detection and cropping without ROS: the default CNN detector, its landmarks, the fallback
to Haar, refused settings, and the crop rule that reproduces the training faces' framing."""

import os
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from fer_ros.errors import ConfigError
from fer_ros.inference import faces as faces_module
from fer_ros.inference.crops import FRAMINGS, TEMPLATE, face_crop, framed_region
from fer_ros.inference.faces import (
    DetectorOptions,
    Face,
    HaarDetector,
    make_detector,
    resolve_detector,
)
from fer_ros.inference.pipeline import Pipeline, PipelineOptions
from fer_ros.options import from_params

REPO = Path(__file__).resolve().parents[3]
MUXSPACE_TAR = Path(
    os.environ.get("MUXSPACE_TAR") or REPO.parent / "shared" / "data" / "muxspace.tar"
)
needs_muxspace = pytest.mark.skipif(
    not MUXSPACE_TAR.is_file(),
    reason=f"muxspace faces not found at {MUXSPACE_TAR} (set MUXSPACE_TAR to a muxspace.tar)",
)
try:
    import yuface  # noqa: F401

    HAVE_YUFACE = True
except ImportError:
    HAVE_YUFACE = False
# CI's platform has the wheel: there the default detector must be the CNN, not a silent Haar.
needs_yuface = pytest.mark.skipif(
    not HAVE_YUFACE and not os.environ.get("CI"),
    reason="yuface has no wheel for this platform (x86-64 CPython <= 3.11 only)",
)


def astronaut_frame():
    face = cv2.resize(skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = face
    return frame


def padded_muxspace_face(name: str) -> np.ndarray:
    """A news-photo face from muxspace val, in the middle of a canvas three times its side."""
    with tarfile.open(MUXSPACE_TAR) as tar:
        data = tar.extractfile(f"muxspace/val/{name}").read()
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    side = grey.shape[0]
    return cv2.cvtColor(
        cv2.copyMakeBorder(grey, side, side, side, side, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2RGB
    )


@needs_yuface
def test_default_detector_finds_the_astronaut_with_landmarks_in_order():
    assert resolve_detector("auto")[0] == "yuface"
    found = make_detector(DetectorOptions())(astronaut_frame())
    assert len(found) == 1
    face = found[0]
    x, y, w, h = face.box
    assert (
        abs(x + w / 2 - 290) < 30 and abs(y + h / 2 - 106) < 40 and 60 < w < 160
    )  # the astronaut's face
    marks = face.landmarks
    assert marks.shape == (5, 2)
    assert np.all(
        (marks[:, 0] > x) & (marks[:, 0] < x + w) & (marks[:, 1] > y) & (marks[:, 1] < y + h)
    )
    eye_l, eye_r, nose, mouth_l, mouth_r = marks
    assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]  # the image's left first
    assert (
        max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    )  # eyes, then nose, then mouth
    assert 0.5 < face.score <= 1.0


@needs_yuface
@needs_muxspace
@pytest.mark.parametrize("name", ["happy/FaridaJalal_111.jpg", "neutral/HrithikRoshan_79.jpg"])
def test_a_turned_face_that_haar_misses_is_found(name):
    """A three-quarter view and a profile from news photos (not a rotated frontal face)."""
    frame = padded_muxspace_face(name)
    assert HaarDetector(DetectorOptions(min_face_size=24))(frame) == []
    found = make_detector(DetectorOptions())(frame)
    assert len(found) == 1
    x, y, w, h = found[0].box
    assert 128 <= x + w / 2 <= 256 and 128 <= y + h / 2 <= 256  # inside the pasted face


@needs_yuface
def test_a_48_pixel_face_is_found_at_the_default_settings():
    frame = np.full((480, 640, 3), 90, np.uint8)
    photo = skimage.data.astronaut()[
        20:260, 130:320
    ]  # the face (about 90 x 110 px) with its surroundings
    small = cv2.resize(
        photo, None, fx=0.44, fy=0.44, interpolation=cv2.INTER_AREA
    )  # the face 48 px high
    frame[200 : 200 + small.shape[0], 300 : 300 + small.shape[1]] = small
    found = make_detector(DetectorOptions())(frame)
    assert len(found) == 1 and 36 <= found[0].box[3] <= 60


def astronaut_heads(frame_size, face_width: int, places) -> np.ndarray:
    """The astronaut's head scaled so the face is `face_width` px wide, pasted at `places`."""
    frame = np.full((frame_size[1], frame_size[0], 3), 90, np.uint8)
    photo = skimage.data.astronaut()[20:260, 130:320]  # the face (about 90 px wide) and around it
    small = cv2.resize(
        photo, None, fx=face_width / 90, fy=face_width / 90, interpolation=cv2.INTER_AREA
    )
    for x, y in places:
        frame[y : y + small.shape[0], x : x + small.shape[1]] = small
    return frame


@needs_yuface
@pytest.mark.parametrize("frame_size", [(640, 480), (1920, 1080)])
def test_20_pixel_faces_are_found_at_the_default_settings(frame_size):
    """A person 3 m from a 640x480 camera, and the same face in an HD frame (searched whole):
    the defaults find faces down to min_face_size, 20 px; the old default (40) found none."""
    places = [(40, 40), (frame_size[0] // 2, frame_size[1] // 2), (frame_size[0] - 80, 300)]
    frame = astronaut_heads(frame_size, 22, places)
    found = make_detector(DetectorOptions())(frame)
    assert len(found) == 3 and all(15 <= f.box[2] <= 30 for f in found), found
    for f in found:  # each box on a pasted face, its landmarks inside it
        x, y, w, h = f.box
        assert any(px <= x + w / 2 <= px + 30 and py <= y + h / 2 <= py + 40 for px, py in places)
        assert ((f.landmarks >= (x, y)) & (f.landmarks <= (x + w, y + h))).all()
    assert make_detector(DetectorOptions(min_face_size=40))(frame) == []


def test_the_search_scale_brings_the_smallest_face_to_what_a_cnn_finds():
    from fer_ros.inference.search import CNN_MIN_SIDE, MAX_ENLARGE, MAX_SEARCH_PIXELS, search_scale

    vga, four_k = (480, 640), (2160, 3840)
    assert search_scale(0.5, 20, vga, None) == CNN_MIN_SIDE / 20  # 20 px faces: not shrunk
    assert search_scale(0.5, 16, vga, None) == CNN_MIN_SIDE / 16 > 1.0  # enlarged for smaller
    assert search_scale(0.5, 96, vga, None) == 0.5  # detect_scale when min_face_size allows it
    assert search_scale(0.5, 8, vga, None) == MAX_ENLARGE
    # A 4K frame is searched at no more than MAX_SEARCH_PIXELS, whatever min_face_size asks.
    scale = search_scale(0.5, 20, four_k, None)
    assert four_k[0] * four_k[1] * scale**2 <= MAX_SEARCH_PIXELS * 1.0001 and scale < 1.0
    assert search_scale(0.5, 20, vga, (100.0, 150.0)) == 0.64  # a followed face's window


@needs_yuface
def test_yuface_through_ctypes_answers_as_its_binding_and_lets_go_of_the_gil():
    """The node calls yuface's library directly so that a search on a second thread runs beside the
    frames: the same scores, boxes and landmarks as yuface.detect, from several threads at once,
    while Python code keeps running."""
    import threading
    import time

    import yuface

    detect = faces_module.load_yuface()
    assert detect.releases_gil and make_detector(DetectorOptions(detector="yuface")).releases_gil
    bgr = np.ascontiguousarray(astronaut_frame()[:, :, ::-1])
    expected = yuface.detect(bgr, faces_module.YUFACE_SCORE_THRESHOLD)
    assert len(expected[0]) == 1
    answers = []
    threads = [
        threading.Thread(
            target=lambda: answers.extend(
                detect(bgr, faces_module.YUFACE_SCORE_THRESHOLD) for _ in range(5)
            )
        )
        for _ in range(2)
    ]

    def spin(seconds: float) -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            count += 1
        return count

    alone = spin(0.3)
    for t in threads:
        t.start()
    beside = spin(0.3)
    for t in threads:
        t.join()
    assert len(answers) == 10
    assert all(np.array_equal(a, b) for answer in answers for a, b in zip(answer, expected))
    assert beside > alone / 4  # through yuface's own binding this thread got ~15 % of its speed


def test_auto_falls_back_to_haar_with_one_line_when_yuface_cannot_be_imported(monkeypatch):
    monkeypatch.setattr(faces_module, "_yuface_detect", None)
    monkeypatch.setitem(sys.modules, "yuface", None)  # `import yuface` now raises ImportError
    name, note = resolve_detector("auto")
    assert name == "haar" and "yuface" in note and "\n" not in note
    pipeline = Pipeline(engine=None, options=PipelineOptions())
    assert pipeline.detector_name == "haar" and isinstance(pipeline.detector, HaarDetector)
    assert pipeline.detector_note == note
    with pytest.raises(ConfigError, match="needs the yuface package"):
        make_detector(DetectorOptions(detector="yuface"))


def test_bad_detector_settings_are_refused_with_a_reason(tmp_path):
    with pytest.raises(
        ConfigError,
        match="detector must be one of auto, yuface, yunet, haar, none, hri, not 'nope'",
    ):
        from_params(PipelineOptions, {"detector": "nope"})
    with pytest.raises(ConfigError, match="yunet_model"):
        make_detector(DetectorOptions(detector="yunet"))
    with pytest.raises(ConfigError, match="yunet_model"):
        make_detector(
            DetectorOptions(detector="yunet", yunet_model=str(tmp_path / "missing.onnx"))
        )
    with pytest.raises(ConfigError, match="face_crop must be one of framed, box, aligned"):
        from_params(PipelineOptions, {"face_crop": "tight"})


def test_framed_crop_inverts_the_measured_framing():
    """A box where the detector puts it inside a training face gives back that training crop."""
    framing = FRAMINGS["yuface"]
    crop_side = 120.0
    box_side = crop_side / framing.side
    cx, cy = 300.0, 200.0
    bx, by = (
        cx - framing.shift[0] * crop_side,
        cy - framing.shift[1] * crop_side,
    )  # the box's centre
    face = Face(
        (
            int(round(bx - box_side / 2)),
            int(round(by - box_side / 2)),
            int(round(box_side)),
            int(round(box_side)),
        )
    )
    rx, ry, side = framed_region(face, framing, 0.0)
    assert abs(rx - cx) < 1.5 and abs(ry - cy) < 1.5 and abs(side - crop_side) < 1.5
    assert framed_region(face, framing, 0.1)[2] == pytest.approx(side * 1.2)


def test_crops_are_square_and_pad_with_the_frames_edge():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[:, :50] = 200
    corner = face_crop(frame, Face((0, 0, 30, 30)), "yuface")
    assert corner.shape[0] == corner.shape[1] == round(30 * FRAMINGS["yuface"].side)
    assert corner[0, 0].tolist() == [
        200,
        200,
        200,
    ]  # outside the frame: its edge repeated, not black
    inside = face_crop(frame, Face((40, 40, 20, 20)), "haar")
    assert inside.base is not None  # inside the frame: a view, no copy
    assert face_crop(frame, Face((10, 10, 20, 30)), "yuface", "box", 0.0).shape == (30, 20, 3)
    assert face_crop(frame, Face((0, 0, 100, 100)), "none").shape == (100, 100, 3)


def test_aligned_crop_puts_the_landmarks_on_the_template():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    marks = (
        (TEMPLATE - 0.5) * 80
    ) @ rot.T + 100  # a face of side 80 turned by 20 degrees in the image plane
    face = Face((60, 60, 80, 80), marks.astype(np.float32))
    out = face_crop(frame, face, "yuface", "aligned")
    side = out.shape[0]
    matrix, _ = cv2.estimateAffinePartial2D(marks.astype(np.float32), TEMPLATE * side)
    mapped = np.hstack([marks, np.ones((5, 1), np.float32)]) @ matrix.T
    assert np.allclose(mapped, TEMPLATE * side, atol=0.5)
    assert out.shape == (side, side, 3)
    plain = face_crop(
        frame, Face((60, 60, 80, 80)), "yuface", "aligned"
    )  # no landmarks: framed instead
    assert plain.shape[0] == plain.shape[1]
