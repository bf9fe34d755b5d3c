"""Per-face brightness and contrast (`Preprocess.face_norm`): the same computation in the engine,
in evaluation and in training, stored in the checkpoint."""

import cv2
import numpy as np
import pytest
import torch

from fer_ros.labels import FER7
from fer_ros.model.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from fer_ros.model.mit import build_model
from fer_ros.model.preprocess import Preprocess, face_normalize
from fer_ros.training.augment import prepare_batch


def faces(n=3, seed=0):
    """Grey faces of different exposures: dark and flat, bright, full range."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 48, 48))
    low = np.array([10, 120, 0])[:n, None, None]
    span = np.array([40, 100, 255])[:n, None, None]
    return (base**2 * span + low).astype(np.uint8)


def test_equalize_is_opencvs_histogram_equalisation():
    grey = faces()
    batch = torch.from_numpy(grey)[:, None].expand(-1, 3, -1, -1)  # grey replicated, as the engine
    out = face_normalize(batch, "equalize")
    assert out.dtype == torch.float32 and out.shape == batch.shape
    for i, face in enumerate(grey):
        ours = (out[i, 0] * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(ours, cv2.equalizeHist(face))


def test_standardize_brings_every_exposure_to_one_mean_and_spread():
    x = face_normalize(torch.from_numpy(faces())[:, None], "standardize")
    mean, spread = x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3))
    assert torch.allclose(mean, torch.full_like(mean, 0.5), atol=0.03)
    assert torch.allclose(spread, torch.full_like(spread, 0.21), atol=0.03)
    # Brightness and contrast changes of one face give (almost) the same input.
    face = torch.from_numpy(faces()[2:3])[:, None].float() / 255
    assert torch.allclose(
        face_normalize(face * 0.6 + 0.1, "standardize"),
        face_normalize(face, "standardize"),
        atol=1e-4,
    )


def test_a_flat_face_is_not_blown_into_noise():
    flat = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    assert torch.allclose(face_normalize(flat, "equalize"), flat.float() / 255)
    assert torch.allclose(face_normalize(flat, "standardize"), torch.full((1, 3, 8, 8), 0.5))
    assert face_normalize(flat, "none") is flat


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="face_norm"):
        Preprocess(64, "gray", face_norm="clahe")
    with pytest.raises(ValueError, match="face_norm"):
        face_normalize(torch.zeros(1, 3, 4, 4), "clahe")


@pytest.mark.parametrize("mode", ["standardize", "equalize"])
def test_engine_and_training_normalise_a_face_alike(mode):
    grey = faces()
    pre = Preprocess(48, "gray", face_norm=mode)
    engine_input = pre(list(grey))
    training_input = prepare_batch(
        torch.from_numpy(grey)[..., None],
        size=48,
        color="gray",
        mean=pre.mean,
        std=pre.std,
        face_norm=mode,
    )
    assert torch.allclose(engine_input, training_input, atol=1e-3)
    assert not torch.allclose(engine_input, Preprocess(48, "gray")(list(grey)), atol=0.1)


def test_the_checkpoint_carries_face_norm(tmp_path):
    model = build_model("mit_b0", num_classes=7).eval()
    meta = ModelMeta(
        labels=list(FER7), preprocess=Preprocess(64, "gray", face_norm="equalize"), dataset="t"
    )
    _, loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, meta))
    assert loaded.preprocess.face_norm == "equalize"
    # A checkpoint written before the field existed reads as "none": what it was trained with.
    old = meta.to_json().replace(', "face_norm": "equalize"', "")
    assert "face_norm" not in old and ModelMeta.from_json(old).preprocess.face_norm == "none"
