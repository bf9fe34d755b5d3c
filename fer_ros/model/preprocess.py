"""Face crops -> the normalised tensor a model expects: the one place a checkpoint's preprocessing
(input size, colour mode, mean/std) is described and applied. `Preprocess` travels in every
checkpoint's metadata; the engine applies it (`Preprocess.__call__`), evaluation's test-time
augmentation starts from `Preprocess.batch`; the data sets use the same resize rule, and training
reuses `normalize` and `to_gray3` on the batches it builds.
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

    def __post_init__(self):
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {self.color!r}")
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
        return normalize(self.batch(crops, device), self.mean, self.std)


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


def to_gray3(batch: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) -> grey replicated to (N, 3, H, W), same dtype: what a "gray" model is
    fed."""
    weights = torch.tensor(_LUMA, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    grey = (batch.float() * weights).sum(1, keepdim=True)
    if batch.dtype == torch.uint8:
        grey = grey.round().clamp(0, 255)
    return grey.to(batch.dtype).expand(-1, 3, -1, -1).contiguous()
