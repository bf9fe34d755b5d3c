"""Face crops -> the normalised tensor a model expects: the one place a checkpoint's preprocessing
(input size, colour mode, per-face brightness and contrast, mean/std) is described and applied.
`Preprocess` travels in every checkpoint's metadata; the engine applies it (`Preprocess.__call__`),
evaluation's test-time augmentation starts from `Preprocess.batch`; the data sets use the same
resize rule, and training reuses `face_normalize`, `normalize` and `to_gray3` on the batches it
builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLORS = ("gray", "rgb")
# Per-face brightness and contrast: "none" leaves the face as the camera gave it; "standardize"
# brings each face to one mean and spread; "equalize" flattens each face's histogram.
FACE_NORMS = ("none", "standardize", "equalize")
# Below 32 pixels the first stage's grid (side / 4) is smaller than its 8x8 key/value reduction.
MIN_INPUT_SIZE = 32

# ITU-R BT.601 luma, the weights OpenCV's RGB2GRAY uses.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Preprocess:
    """How crops become model input. `color="gray"`: the model saw grey faces (FER2013), so colour
    crops are converted to grey and the grey plane is replicated to 3 channels."""

    input_size: int = 224
    color: str = "rgb"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    face_norm: str = "none"

    def __post_init__(self):
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {self.color!r}")
        if self.face_norm not in FACE_NORMS:
            raise ValueError(f"face_norm must be one of {FACE_NORMS}, got {self.face_norm!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(
                f"mean and std need 3 values each (std > 0), got {self.mean} / {self.std}"
            )
        if self.input_size < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_size must be at least {MIN_INPUT_SIZE}, got {self.input_size}"
            )

    def resize(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops (uint8 HxWx3 RGB or HxW grey, any size) -> uint8 (N, S, S, 3), colour mode
        applied."""
        s = self.input_size
        out = np.empty((len(crops), s, s, 3), np.uint8)
        for i, crop in enumerate(crops):
            crop = _check_crop(crop, i)
            if self.color == "gray" and crop.ndim == 3:
                crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
            crop = resize_square(crop, s)
            out[i] = crop[..., None] if crop.ndim == 2 else crop  # grey broadcasts to 3 channels
        return out

    def batch(
        self, crops: Sequence[np.ndarray], device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """Crops -> uint8 (N, 3, S, S) on `device`, colour mode applied, not normalised (for
        callers that augment first). A GPU gets it through pinned memory, asynchronously."""
        batch = torch.from_numpy(self.resize(crops))  # (N, S, S, 3) uint8
        if torch.device(device).type != "cpu":
            batch = batch.pin_memory().to(
                device, non_blocking=True
            )  # normalised there, on the GPU
        return batch.permute(0, 3, 1, 2)  # (N, 3, S, S)

    def __call__(
        self, crops: Sequence[np.ndarray], device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """Crops -> float32 (N, 3, S, S) on `device`, normalised: what the model takes."""
        return self.normalize(self.batch(crops, device))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 or float (0..1) -> the model's input: per-face brightness and
        contrast (`face_norm`), then mean/std. Training and evaluation call it too, so every path
        normalises the same way."""
        return normalize(face_normalize(batch, self.face_norm), self.mean, self.std)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """The one resize rule for a face to a model's size x size: area averaging when shrinking (no
    aliasing), bilinear when growing. Data sets use it too, so training sees what inference
    sees."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _check_crop(crop: np.ndarray, index: int) -> np.ndarray:
    crop = np.ascontiguousarray(
        crop
    )  # OpenCV refuses views with negative strides (e.g. BGR->RGB [..., ::-1])
    if crop.dtype != np.uint8:
        raise ValueError(f"crop {index}: expected uint8, got {crop.dtype}")
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop = crop[..., 0]
    if not (crop.ndim == 2 or (crop.ndim == 3 and crop.shape[2] == 3)) or min(crop.shape[:2]) == 0:
        raise ValueError(
            f"crop {index}: expected HxW or HxWx3 with H, W > 0, got shape {crop.shape}"
        )
    return crop


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, 3 or 1, H, W) uint8 (0..255) or float (0..1) -> float32 (N, 3, H, W) normalised, on
    `batch`'s device. One grey channel is replicated to three."""
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1 or 3, H, W), got {tuple(batch.shape)}")
    scale = 1 / 255 if batch.dtype == torch.uint8 else 1.0
    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    # (x * scale - mean) / std folded into one multiply-add
    return (
        torch.addcmul(-mean_t / std_t, batch.float(), scale / std_t)
        .expand(-1, 3, -1, -1)
        .contiguous()
    )


# A flat face (a wall, a blown-out frame) is not stretched into noise: its spread counts as at
# least this much (0..1 scale).
_MIN_SPREAD = 0.02
# Where "standardize" puts every face (0..1 scale): an average FER2013 face (mean brightness 0.51,
# spread 0.21 over its pixels).
_FACE_MEAN, _FACE_SPREAD = 0.5, 0.21


def face_normalize(batch: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, C, H, W) uint8 (0..255) or float (0..1) -> the same faces with per-face brightness and
    contrast normalised (`FACE_NORMS`), float 0..1 (uint8 in, "none": returned as is).

    Both modes work per face on the whole crop (all channels together), in torch, so the engine,
    evaluation and training (on CPU or GPU, after augmentation) compute the same thing.
    """
    if mode == "none":
        return batch
    if mode not in FACE_NORMS:
        raise ValueError(f"face_norm must be one of {FACE_NORMS}, got {mode!r}")
    x = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
    if mode == "standardize":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        spread = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(_MIN_SPREAD)
        return ((x - mean) / spread * _FACE_SPREAD + _FACE_MEAN).clamp_(0.0, 1.0)
    # equalize: each face's levels mapped through its own cumulative histogram (256 bins), as
    # OpenCV's equalizeHist does for one grey plane; a colour face shares one histogram.
    n = x.shape[0]
    levels = (x.clamp(0.0, 1.0) * 255).round().long().reshape(n, -1)
    hist = torch.zeros(n, 256, device=x.device).scatter_add_(
        1, levels, torch.ones(levels.shape, device=x.device)
    )
    cdf = hist.cumsum(1)
    low = cdf.gather(1, (hist > 0).float().argmax(1, keepdim=True))  # count at the darkest level
    span = cdf[:, -1:] - low
    lut = ((cdf - low) / span.clamp_min(1.0)).clamp_(0.0, 1.0)
    # A face of one level has nothing to spread: it stays as it is (OpenCV does the same).
    return torch.where(span > 0, lut.gather(1, levels), x.reshape(n, -1)).reshape(x.shape)


def to_gray3(batch: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) -> grey replicated to (N, 3, H, W), same dtype: what a "gray" model is
    fed."""
    weights = torch.tensor(_LUMA, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    grey = (batch.float() * weights).sum(1, keepdim=True)
    if batch.dtype == torch.uint8:
        grey = grey.round().clamp(0, 255)
    return grey.to(batch.dtype).expand(-1, 3, -1, -1).contiguous()
