"""Frames of any shape within the stated limits (at most MAX_SIDE a side) go through the
detectors and the pipeline: a 16384x1 strip is a legal frame, and shrinking it for the search must
not ask OpenCV for a 0-pixel side (cv2.error, which fer_node logged at ERROR as an internal
failure and the Python API raised)."""

import numpy as np
import pytest

from fer_ros.imagecheck import MAX_SIDE
from fer_ros.inference.engine import Engine
from fer_ros.inference.faces import DetectorOptions, make_detector, resolve_detector, shrink
from fer_ros.inference.pipeline import Pipeline, PipelineOptions

SHAPES = [(MAX_SIDE, 1), (1, MAX_SIDE), (MAX_SIDE, 2), (2, MAX_SIDE), (1, 1), (3, 5)]
DETECTORS = sorted({"haar", "none", resolve_detector("auto")[0]})  # auto: yuface where it imports


def noise(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 31 + width)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
def test_shrink_keeps_every_side_at_least_one_pixel(shape):
    small, scale = shrink(noise(*shape), 0.05)
    assert scale == 0.05 and small.shape[:2] == tuple(max(1, round(s * 0.05)) for s in shape)


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_answers_a_thin_or_tiny_frame(detector):
    find = make_detector(DetectorOptions(detector=detector))
    for shape in SHAPES:
        faces = find(noise(*shape))
        assert detector == "none" or faces == [], (shape, faces)


@pytest.mark.parametrize("detector", DETECTORS)
def test_the_pipeline_processes_thin_frames(small_checkpoint, detector):
    """Searched, then followed (detect_every 3): no exception; a crop too thin to classify gives
    no face."""
    with Engine.from_checkpoint(small_checkpoint, device="cpu") as engine:
        pipeline = Pipeline(engine, PipelineOptions(detector=detector))
        try:
            for shape in SHAPES * 2:
                result = pipeline.process(noise(*shape))
                assert all(np.isfinite(face.probabilities).all() for face in result.faces)
        finally:
            pipeline.close()
