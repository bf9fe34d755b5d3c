"""The Python API: the node's pipeline and shipped model on a real photo, from arrays, BGR arrays
and files, over a frame sequence with tracking, and the same checks of options and inputs."""

import math
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import skimage.data
from bounded import run_bounded
from hostile import png_bomb

from fer_ros.api import Recognizer, option_names
from fer_ros.errors import ConfigError, FerRosError, FrameError
from fer_ros.video.clip import frames as clip_frames

ASTRONAUT_FACE = (178, 63, 89, 112)  # yuface's box on the 512x512 photo, checked by eye


@pytest.fixture(scope="module")
def recognizer():
    with Recognizer() as r:
        yield r


def overlap(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_the_astronaut_is_found_and_read(recognizer):
    faces = recognizer(skimage.data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert overlap(face.box, ASTRONAUT_FACE) > 0.6, face.box
    assert face.face_id == 1
    assert (
        list(face.probabilities)
        == recognizer.labels
        == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    )
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.confidence == face.probabilities[face.label]
    assert face.label == "happy"  # she smiles; the shipped model says so through the node and here
    x, y, w, h = face.box
    assert len(face.landmarks) == 5 and all(
        x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks
    )
    assert recognizer.detector == "yuface" and recognizer.model_id.startswith("fer2013_mit_b0_64@")
    row = face.row()
    assert (
        row["face_id"] == 1
        and row["label"] == face.label
        and row["p_happy"] == face.probabilities["happy"]
    )


def test_a_face_too_small_to_read_is_found_but_not_read(recognizer):
    """A face narrower than min_classify_size (default 20 px) is still a face, with its box, id,
    probabilities and confidence, but its label is 'unknown' and it is marked too_small."""
    photo = skimage.data.astronaut()
    (read,) = recognizer(photo)
    with Recognizer(min_classify_size=read.box[2] + 1) as strict:
        (unread,) = strict(photo)
    assert unread.box == read.box and unread.face_id == read.face_id == 1
    assert unread.confidence == pytest.approx(read.confidence, abs=1e-5)
    assert unread.probabilities == pytest.approx(read.probabilities, abs=1e-5)
    assert (read.label, read.too_small) == ("happy", False)
    assert (unread.label, unread.too_small) == ("unknown", True)
    row = unread.row()
    assert row["label"] == "unknown" and row["too_small"] is True and row["width"] == read.box[2]


def test_bgr_arrays_and_image_files_give_the_same_reading(recognizer, tmp_path):
    rgb = skimage.data.astronaut()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), bgr)
    reference = recognizer(rgb)[0]
    for faces in (recognizer(bgr, bgr=True), recognizer(path), recognizer(str(path))):
        assert faces[0].box == reference.box
        assert faces[0].probabilities == pytest.approx(reference.probabilities, abs=1e-6)
    swapped = recognizer(bgr)[0]  # BGR read as RGB: a blue face is another input
    assert swapped.probabilities != pytest.approx(reference.probabilities, abs=1e-5)
    grey = recognizer(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert len(grey) == 1 and sum(grey[0].probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_a_stream_keeps_tracking_and_photos_stand_alone(recognizer):
    frames = list(clip_frames(30, 320, 240))
    results, searched = [], []
    for faces in recognizer.stream(frames, fps=15, bgr=True):
        results.append(faces)
        searched.append(recognizer.last.detected)
    assert results[0] == [] and results[-1] == []  # the clip starts and ends with nobody there
    with_face = [faces for faces in results if faces]
    assert len(with_face) >= 20
    assert {f.face_id for faces in with_face for f in faces} == {
        1
    }  # one person, one id throughout
    assert not all(searched)  # between full searches the face was followed, as in the node
    # Stand-alone calls start afresh: the same id and a full search every time.
    assert [recognizer(frames[15], bgr=True)[0].face_id for _ in range(3)] == [1, 1, 1]
    assert recognizer.last.detected


def test_options_are_the_nodes_own_and_checked_the_same_way():
    assert {"detector", "face_crop", "smoothing", "checkpoint", "device"} <= set(option_names())
    assert "qos_depth" not in option_names()  # a ROS subscription setting, not the pipeline's
    from fer_ros.inference.load import DETECT_THREADS
    from fer_ros.ros.params import PARAMS

    assert (
        DETECT_THREADS == PARAMS["detect_threads"].default
    )  # OpenCV's threads as the node sets them
    with pytest.raises(ConfigError, match=r"unknown option detectr; .*detector.*face_margin"):
        Recognizer(detectr="haar")
    with pytest.raises(ConfigError, match="unknown option qos_depth"):
        Recognizer(qos_depth=1)
    with pytest.raises(ConfigError, match="detect_every must be within 1..100"):
        Recognizer(detect_every=0)
    with pytest.raises(ConfigError, match="face_crop must be one of"):
        Recognizer(face_crop="round")
    with pytest.raises(FerRosError, match="does not exist|not found|no such"):
        Recognizer("/nonexistent/model.safetensors")


def test_bad_images_are_refused_with_one_clear_line(recognizer, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    cases = {
        "no image file": tmp_path / "missing.png",
        "only JPEG and PNG": broken,
        "8-bit": np.zeros((64, 64, 3), np.float32),
        "shape": np.zeros((64, 64, 5), np.uint8),
        "zero or absurd": np.zeros((0, 64, 3), np.uint8),
        "numpy array": [[1, 2], [3, 4]],
    }
    for expected, image in cases.items():
        with pytest.raises(FerRosError, match=expected) as err:
            recognizer(image)
        assert "\n" not in str(err.value)


def test_the_api_imports_no_ros():
    code = (
        "import sys, numpy as np; from fer_ros.api import Recognizer; "
        "r = Recognizer(detector='none'); f = r(np.full((64, 64, 3), 128, np.uint8)); r.close(); "
        "assert len(f) == 1 and f[0].box == (0, 0, 64, 64), f; "
        "assert not [m for m in sys.modules if m.startswith(('rclpy', 'rosbags'))], 'ROS imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


def test_an_image_file_is_refused_by_its_header_before_it_is_decoded(recognizer, tmp_path):
    """An 875 KB PNG of 30000x30000 once took 5.6 GB to refuse; now the header refuses it, in a
    child that may use 1 GB. A 5000x5000 one (25 MP) is above the 16 MP budget here too."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30000, 30000))
    done = run_bounded(
        f"""
        from fer_ros.inference.frames import read_image
        try:
            read_image({str(bomb)!r})
        except ValueError as err:
            print(type(err).__name__, err)
    """,
        memory_gb=1.0,
    )
    assert done.returncode == 0 and done.stdout.startswith("FrameError"), done
    assert "30000x30000" in done.stdout
    bomb.write_bytes(png_bomb(5000, 5000))
    with pytest.raises(FrameError, match="5000x5000 .* above max_pixels"):
        recognizer(bomb)


def test_nan_and_inf_options_are_refused_before_the_model_loads():
    """NaN passed every range: smoothing_alpha NaN filled faces.csv with NaN, track_timeout NaN
    gave a new id every frame."""
    for name, value in (
        ("smoothing_alpha", math.nan),
        ("track_timeout", math.nan),
        ("track_timeout", math.inf),
        ("face_margin", -math.inf),
        ("detect_scale", math.nan),
    ):
        with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
            Recognizer(**{name: value})


def test_time_and_fps_must_be_finite_numbers(recognizer):
    image = np.full((64, 64, 3), 128, np.uint8)
    for bad in ("1", math.nan, math.inf, True, [1.0]):
        with pytest.raises(ConfigError, match="time must be a finite number of seconds") as err:
            recognizer(image, time=bad)
        assert "\n" not in str(err.value)
    recognizer(image, time=np.float64(0.5))  # numpy's numbers are numbers
    for bad in (math.nan, math.inf, 0, "30"):
        with pytest.raises(ConfigError, match="fps must be a positive number"):
            list(recognizer.stream([image], fps=bad))


@pytest.mark.parametrize("shape", [(16384, 1, 3), (1, 16384, 3), (16384, 1), (1, 16384, 4)])
def test_one_pixel_wide_or_high_frames_within_the_limits_are_processed(recognizer, shape):
    faces = recognizer(np.full(shape, 128, np.uint8))  # once a cv2.error from deep in the pipeline
    assert isinstance(faces, list)


def test_threads_sharing_a_recognizer_each_get_their_own_answer(recognizer):
    """Stand-alone calls from several threads at once: each is a photo of its own (face id 1, the
    same box as alone). The pipeline is slowed so that, unlocked, calls would interleave."""
    photos = [skimage.data.astronaut(), np.ascontiguousarray(skimage.data.astronaut()[:, ::-1])]
    alone = [recognizer(photo)[0].box for photo in photos]
    answers, process = [], recognizer.pipeline.process

    def slow_process(*args, **kwargs):
        time.sleep(0.005)  # another thread's reset or frame would land here
        return process(*args, **kwargs)

    def work(index):
        for _ in range(6):
            faces = recognizer(photos[index % 2])
            answers.append((index % 2, [(f.face_id, f.box) for f in faces]))

    recognizer.pipeline.process = slow_process
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del recognizer.pipeline.process
    assert len(answers) == 24
    assert all(faces == [(1, alone[which])] for which, faces in answers), answers
