"""The frame pipeline without ROS: detection, following, tracking ids, smoothing, threshold."""

import cv2
import numpy as np
import pytest
import skimage.data

from fer_ros.errors import ConfigError
from fer_ros.inference.engine import Engine
from fer_ros.inference.faces import (
    DetectorOptions,
    Face,
    HaarDetector,
    expand_box,
    make_detector,
)
from fer_ros.inference.pipeline import FOLLOW_SIZE, UNKNOWN, Pipeline, PipelineOptions
from fer_ros.inference.tracking import FaceTracker, TrackerOptions, iou
from fer_ros.options import from_params


def astronaut_frame():
    """The astronaut photo (one real frontal face) centred in a 640x480 frame."""
    face = cv2.resize(skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 80:560] = face
    return frame


ASTRONAUT_FACE_CENTRE = (290, 106)  # measured once by eye on the frame above


class FixedEngine:
    """Returns queued probability rows: lets the tests check smoothing and thresholds exactly."""

    labels = ["a", "b", "c"]
    model_id = "fixed"

    def __init__(self, rows):
        self.rows = list(rows)
        self.calls = []

    def predict(self, crops):
        self.calls.append([c.shape for c in crops])
        return np.array([self.rows.pop(0) for _ in crops], np.float32)


def test_haar_finds_the_real_face():
    faces = HaarDetector(DetectorOptions())(astronaut_frame())
    assert len(faces) == 1 and faces[0].landmarks is None
    x, y, w, h = faces[0].box
    cx, cy = x + w / 2, y + h / 2
    assert abs(cx - ASTRONAUT_FACE_CENTRE[0]) < 30 and abs(cy - ASTRONAUT_FACE_CENTRE[1]) < 30
    assert 60 < w < 160


def test_haar_finds_nothing_in_noise_and_respects_min_size():
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert HaarDetector(DetectorOptions())(noise) == []
    assert HaarDetector(DetectorOptions(min_face_size=200))(astronaut_frame()) == []


def test_unknown_detector_and_missing_yunet_model_are_clear_errors():
    with pytest.raises(
        ConfigError, match="detector must be one of"
    ):  # refused as the options are made
        make_detector(DetectorOptions(detector="magic"))
    with pytest.raises(ConfigError, match="yunet_model"):
        make_detector(DetectorOptions(detector="yunet"))


def two_faces_frame(big: int = 300, small: int = 200) -> np.ndarray:
    """Two copies of the astronaut photo, the smaller one on the left."""
    frame = np.zeros((480, 640, 3), np.uint8)
    photo = skimage.data.astronaut()
    frame[:small, :small] = cv2.resize(photo, (small, small), interpolation=cv2.INTER_AREA)
    frame[100 : 100 + big, 320 : 320 + big] = cv2.resize(
        photo, (big, big), interpolation=cv2.INTER_AREA
    )
    return frame


def test_several_faces_come_largest_first_and_max_faces_keeps_the_largest():
    frame = two_faces_frame()  # small faces: searched at full resolution
    both = [
        f.box for f in HaarDetector(DetectorOptions(min_face_size=24, detect_scale=1.0))(frame)
    ]
    assert len(both) == 2
    assert (
        both[0][2] * both[0][3] > both[1][2] * both[1][3] and both[0][0] > 320 > both[1][0]
    )  # big one first
    assert [
        f.box
        for f in HaarDetector(DetectorOptions(min_face_size=24, detect_scale=1.0, max_faces=1))(
            frame
        )
    ] == both[:1]


def test_expand_box_is_clipped_to_the_frame():
    assert expand_box((10, 10, 20, 20), 0.5, 100, 100) == (0, 0, 40, 40)
    assert expand_box((90, 90, 20, 20), 0.25, 100, 100) == (85, 85, 15, 15)


def test_tracker_keeps_ids_while_faces_move_and_forgets_lost_ones():
    tracker = FaceTracker(TrackerOptions(track_timeout=1.0))
    first = [t.face_id for t in tracker.match([(0, 0, 50, 50), (200, 0, 50, 50)], now=0.0)]
    moved = [t.face_id for t in tracker.match([(205, 5, 50, 50), (5, 5, 50, 50)], now=0.1)]
    assert first == [1, 2] and moved == [2, 1]
    assert [t.face_id for t in tracker.match([(5, 5, 50, 50)], now=0.9)] == [1]
    assert [t.face_id for t in tracker.match([(5, 5, 50, 50), (200, 0, 50, 50)], now=1.5)] == [
        1,
        3,
    ]
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_ema_and_window_smoothing_per_face():
    frame = np.zeros((40, 40, 3), np.uint8)
    rows = [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    ema = Pipeline(
        FixedEngine(rows), PipelineOptions(detector="none", smoothing="ema", smoothing_alpha=0.5)
    )
    probs = [ema.process(frame, now=i * 0.03).faces[0].probabilities for i in range(3)]
    assert np.allclose(probs[1], [0.5, 0.5, 0]) and np.allclose(probs[2], [0.25, 0.75, 0])
    window = Pipeline(
        FixedEngine(rows), PipelineOptions(detector="none", smoothing="window", smoothing_window=2)
    )
    probs = [window.process(frame, now=i * 0.03).faces[0].probabilities for i in range(3)]
    assert np.allclose(probs[1], [0.5, 0.5, 0]) and np.allclose(probs[2], [0, 1, 0])
    assert all(abs(p.sum() - 1) < 1e-6 for p in probs)


def test_confidence_threshold_gives_unknown_but_keeps_the_confidence():
    pipeline = Pipeline(
        FixedEngine([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]]),
        PipelineOptions(detector="none", confidence_threshold=0.6),
    )
    low, high = (pipeline.process(np.zeros((32, 32, 3), np.uint8)).faces[0] for _ in range(2))
    assert low.label == UNKNOWN and low.confidence == pytest.approx(0.5)
    assert high.label == "a" and high.confidence == pytest.approx(0.9)
    assert not low.too_small and not high.too_small


class FixedBoxes:
    """A detector that finds the same boxes in every frame: lets a test choose the faces' sizes."""

    name = "fixed"
    releases_gil = False

    def __init__(self, boxes):
        self.boxes = boxes

    def __call__(self, rgb, sizes=None):
        return [Face(box) for box in self.boxes]


@pytest.mark.parametrize("min_classify_size", [20, 0])
def test_a_face_too_small_to_read_is_reported_unknown_with_its_box_and_id(
    small_checkpoint, min_classify_size
):
    """A face narrower than min_classify_size (default 20) keeps its box, id, probabilities and
    confidence, but its label is 'unknown' and it is marked too_small; a wider one is read as
    usual, and 0 reads every face."""
    assert PipelineOptions().min_classify_size == 20
    frame = astronaut_frame()
    big, small = (230, 40, 120, 140), (20, 300, 16, 19)
    options = PipelineOptions(
        detector="haar", detect_every=1, detect_async=False, min_classify_size=min_classify_size
    )
    with Engine.from_checkpoint(small_checkpoint, device="cpu") as engine:
        pipeline = Pipeline(engine, options)
        pipeline.detector = FixedBoxes([big, small])
        frames = [pipeline.process(frame, now=i / 30).faces for i in range(2)]
    for faces in frames:
        assert [f.box for f in faces] == [big, small] and [f.face_id for f in faces] == [1, 2]
        assert all(np.isclose(f.probabilities.sum(), 1) for f in faces)
        assert all(f.confidence == pytest.approx(f.probabilities.max()) for f in faces)
        read, unread = faces
        assert read.label in engine.labels and not read.too_small
        if min_classify_size:
            assert unread.label == UNKNOWN and unread.too_small
        else:
            assert unread.label in engine.labels and not unread.too_small


def test_min_classify_size_measures_the_frame_without_a_detector():
    """With detector none the frame is the face: a frame narrower than min_classify_size is too
    small to read; the threshold and the size rule each give 'unknown' on their own."""
    rows = [[0.9, 0.05, 0.05]] * 3
    pipeline = Pipeline(FixedEngine(rows), PipelineOptions(detector="none"))
    narrow = pipeline.process(np.zeros((40, 19, 3), np.uint8)).faces[0]
    wide = pipeline.process(np.zeros((19, 20, 3), np.uint8)).faces[0]
    assert (narrow.label, narrow.too_small, narrow.box) == (UNKNOWN, True, (0, 0, 19, 40))
    assert narrow.confidence == pytest.approx(0.9)
    assert (wide.label, wide.too_small) == ("a", False)
    with pytest.raises(ConfigError, match="min_classify_size"):
        from_params(PipelineOptions, {"min_classify_size": -1})


def test_faces_are_followed_between_full_detections():
    frame = astronaut_frame()
    calls, bounds = [], []

    class CountingHaar(HaarDetector):
        def __call__(self, rgb, sizes=None):
            calls.append(rgb.shape[:2])
            bounds.append(sizes)
            return super().__call__(rgb, sizes)

    engine = FixedEngine([[1, 0, 0]] * 6)
    pipeline = Pipeline(
        engine, PipelineOptions(detector="haar", detect_every=3, detect_async=False)
    )
    pipeline.detector = CountingHaar(pipeline.options)
    results = [pipeline.process(frame, now=i / 30) for i in range(6)]
    assert [r.detected for r in results] == [True, False, False, True, False, False]
    assert all(len(r.faces) == 1 for r in results)
    assert len({r.faces[0].face_id for r in results}) == 1
    full = [c for c in calls if c == (480, 640)]
    assert len(full) == 2 and len(calls) == 6  # the other four searched a window only
    assert all(c[0] < 480 for c in calls if c != (480, 640))
    # A full search looks for every size; following looks for sizes near the face's last one.
    side = max(results[0].faces[0].box[2:])
    assert [b is None for b in bounds] == [True, False, False, True, False, False]
    assert all(
        lo < side < hi and hi / lo == pytest.approx(FOLLOW_SIZE**2)
        for lo, hi in filter(None, bounds)
    )


def test_haar_size_bounds_keep_or_exclude_a_face():
    frame = astronaut_frame()
    haar = HaarDetector(DetectorOptions())
    (face,) = haar(frame)
    side = max(face.box[2:])
    assert len(haar(frame, (side / 1.5, side * 1.5))) == 1
    assert haar(frame, (side * 1.6, side * 3)) == []  # only larger faces wanted
    assert haar(frame, (10, side / 1.6)) == []  # only smaller faces wanted


def test_real_engine_in_the_pipeline(small_checkpoint):
    engine = Engine.from_checkpoint(small_checkpoint, device="cpu")
    pipeline = Pipeline(engine, PipelineOptions(detector="haar", max_faces=3))
    result = pipeline.process(astronaut_frame())
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.probabilities.shape == (7,) and abs(float(face.probabilities.sum()) - 1) < 1e-5
    assert face.label == engine.labels[int(np.argmax(face.probabilities))]
    assert result.detect_ms > 0 and result.classify_ms > 0
    empty = pipeline.process(np.zeros((480, 640, 3), np.uint8))  # followed, not found: dropped
    assert empty.faces == [] and not empty.detected


def test_options_from_node_params_ignore_other_keys_cast_and_check():
    options = from_params(
        PipelineOptions, {"detector": "none", "face_margin": 1, "checkpoint": "x"}
    )
    assert (
        options.detector == "none"
        and options.face_margin == 1.0
        and isinstance(options.face_margin, float)
    )
    assert options.detect_every == PipelineOptions().detect_every  # not given: the default
    with pytest.raises(ConfigError, match="detect_every takes an integer"):
        from_params(PipelineOptions, {"detect_every": 2.5})
    with pytest.raises(
        ConfigError, match="detector must be one of auto, yuface, yunet, haar, none, hri"
    ):
        from_params(PipelineOptions, {"detector": "magic"})
    with pytest.raises(ConfigError, match="track_iou must be within 0..1"):
        from_params(PipelineOptions, {"track_iou": 1.5})


def test_background_search_finds_a_new_face_while_the_first_is_followed():
    """detect_async: the periodic search runs on its own thread; frames keep being answered from
    the followed face, and a face that appears is added once that search has finished."""
    pipeline = Pipeline(
        FixedEngine([[1, 0, 0]] * 40), PipelineOptions(detector="haar", detect_every=3)
    )
    photo = cv2.resize(skimage.data.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    both = np.zeros((480, 640, 3), np.uint8)
    both[120:420, 20:320], both[100:400, 320:620] = photo, photo
    one = both.copy()
    one[:, :320] = 0  # only the right-hand face
    first = pipeline.process(one, now=0.0)
    assert len(first.faces) == 1 and first.detected  # nothing to follow yet: searched at once
    counts = []
    for i in range(1, 9):
        result = pipeline.process(both, now=i / 30)
        counts.append((len(result.faces), result.detected))
        pipeline.search.close()  # let the search in flight finish, as the next frame's 33 ms would
    # Frames 1-2 follow the first face only; frame 3 starts the background search (still one face),
    # frame 4 takes its result: the left-hand face joins and is followed from then on; frame 6
    # starts the next search, frame 7 takes it (both faces already followed: nothing new).
    assert counts == [
        (1, False),
        (1, False),
        (1, False),
        (2, True),
        (2, False),
        (2, False),
        (2, True),
        (2, False),
    ]
    assert first.faces[0].face_id in {
        f.face_id for f in result.faces
    }  # the first face kept its id
    pipeline.close()
