"""The synthetic-face generator: deterministic, every expression drawable, scenes with correct
boxes."""

import argparse

import numpy as np
import pytest

from fer_ros import synthetic as synth
from fer_ros.labels import AFFECTNET8, FER7
from fer_ros.training.datasets import load_splits


@pytest.mark.parametrize("label", AFFECTNET8)
def test_draw_face_shape_and_determinism(label):
    a = synth.draw_face(label, np.random.default_rng(5), size=64)
    b = synth.draw_face(label, np.random.default_rng(5), size=64)
    c = synth.draw_face(label, np.random.default_rng(6), size=64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 10  # not a blank image


def test_expressions_differ_in_the_face_not_only_the_nuisances():
    # With the same seed the nuisances (colours, pose, background) are drawn alike, so the mean
    # image difference between two expressions comes from the face's geometry.
    size = 96
    means = {}
    for label in FER7:
        faces = [
            synth.draw_face(label, np.random.default_rng(i), size=size, jitter=0).astype(
                np.float32
            )
            for i in range(8)
        ]
        means[label] = np.mean(faces, axis=0)
    for a in FER7:
        for b in FER7:
            if a < b:
                assert np.abs(means[a] - means[b]).mean() > 0.5, (a, b)


def test_draw_scene_box_holds_the_face():
    rng = np.random.default_rng(3)
    for label in FER7:
        img, (x, y, w, h) = synth.draw_scene(label, rng, width=320, height=240)
        assert img.shape == (240, 320, 3) and img.dtype == np.uint8
        assert 0 <= x and 0 <= y and x + w <= 320 and y + h <= 240 and w == h >= 11
    a, box_a = synth.draw_scene("happy", np.random.default_rng(1))
    b, box_b = synth.draw_scene("happy", np.random.default_rng(1))
    assert np.array_equal(a, b) and box_a == box_b


def test_unknown_label_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown expression 'bored'"):
        synth.draw_face("bored", np.random.default_rng(0))


def test_render_faces_is_balanced_and_indexable():
    images, targets = synth.render_faces(16, FER7, size=32, seed=4)
    assert images.shape == (16, 32, 32, 3) and np.bincount(targets).tolist() == [3, 3] + [2] * 5
    # Sample i depends on (seed, i) only: it can be redrawn alone.
    again = synth.draw_face(FER7[targets[9]], synth.face_rng(4, 9), size=32)
    assert np.array_equal(images[9], again)


def test_cli_writes_folders_and_fer2013_csv(tmp_path):
    args = argparse.Namespace(
        out=tmp_path / "faces", format=None, num=14, val=7, test=7, labels="fer7", size=48, seed=0
    )
    assert synth.run(args) == 0
    folder = load_splits("auto", tmp_path / "faces", "fer7", color="rgb", size=48)
    assert {k: len(v) for k, v in folder.items()} == {"train": 14, "val": 7, "test": 7}
    assert folder["train"].class_counts().tolist() == [2] * 7
    args.out, args.format = tmp_path / "synthetic.csv", None
    assert synth.run(args) == 0
    fer = load_splits("auto", tmp_path / "synthetic.csv", "fer7")
    assert {k: len(v) for k, v in fer.items()} == {"train": 14, "val": 7, "test": 7}
    assert not all_bad(fer)


def all_bad(splits) -> bool:
    return any(len(ds.report.bad) for ds in splits.values())
