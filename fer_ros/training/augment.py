"""Batch augmentation and input preparation on the training device.

Data sets hand over uint8 images, (B, H, W, C) with C = 1 (grey) or 3 (RGB), at their stored size.
Everything after that runs here, on whole batches, on the device the model lives on: the random
flip, rotation, zoom and shift are one affine warp that also resizes to the model's input, so a
48x48 FER2013 batch becomes a 224x224 one in a single `grid_sample` call. On a GPU this costs
microseconds per batch and the CPU workers only have to index arrays; on the CPU it is still
cheaper than per-image OpenCV calls.

Without augmentation (validation, evaluation) the resize is plain bilinear interpolation, as in
`fer_ros.model.preprocess`, so the model sees at training time what it will see at inference time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fer_ros.model.preprocess import face_normalize, normalize, to_gray3
from fer_ros.training.config import AugmentConfig


def _to_float_nchw(images: torch.Tensor, color: str) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C', H, W) in [0, 1]; C' = 1 for grey models, 3 for RGB."""
    if images.dim() != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected uint8 images (B, H, W, 1 or 3), got shape {tuple(images.shape)}"
        )
    x = images.permute(0, 3, 1, 2)  # (B, C, H, W) uint8
    if color == "gray" and x.shape[1] == 3:
        x = to_gray3(x)[:, :1]  # (B, 1, H, W): one plane through the warp, replicated afterwards
    elif color == "rgb" and x.shape[1] == 1:
        raise ValueError("an RGB model was asked to train on grey images; set data.color=gray")
    return x.float().div_(255.0)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to size x size; antialiased when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


def random_affine(
    x: torch.Tensor, size: int, cfg: AugmentConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """Random flip, rotation, zoom and shift of (B, C, H, W), sampled to (B, C, size, size)."""
    b, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, device=dev, generator=generator) * (hi - lo) + lo

    angle = uniform(-cfg.rotate, cfg.rotate) * (math.pi / 180.0)
    zoom = uniform(1.0 - cfg.scale, 1.0 + cfg.scale)
    # A detector's box is not always as wide for its height as the training crops: stretch one way.
    aspect = (
        torch.exp(uniform(-cfg.aspect, cfg.aspect))
        if cfg.aspect > 0
        else torch.ones(b, device=dev)
    )
    flip = torch.ones(b, device=dev)
    if cfg.flip:
        flip = torch.where(torch.rand(b, device=dev, generator=generator) < 0.5, -flip, flip)
    tx, ty = uniform(-cfg.translate, cfg.translate) * 2, uniform(-cfg.translate, cfg.translate) * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    sx, sy = (
        aspect.sqrt(),
        1.0 / aspect.sqrt(),
    )  # input width per output width, and height: area kept
    # theta maps output coordinates to input coordinates, both in [-1, 1]; the flip negates x
    # first.
    theta = torch.stack(
        [
            torch.stack([cos * flip * sx, -sin * sx, tx], dim=1),
            torch.stack([sin * flip * sy, cos * sy, ty], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    if x.shape[-1] > 2 * size:  # strong shrink: antialias first, grid_sample only interpolates
        x = resize(x, size)
    grid = F.affine_grid(
        theta.to(x.dtype), [b, x.shape[1], size, size], align_corners=False
    )  # (B, S, S, 2)
    # "border" repeats the edge into the corners a rotation uncovers; zeros would also darken the
    # outermost pixels of every upsampled image, which inference (a plain resize) never sees.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _camera(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """What other cameras do to a face: low resolution, sensor noise, another response curve."""
    b, dev, s = x.shape[0], x.device, x.shape[-1]
    if cfg.blur > 0:
        hit = torch.rand(b, device=dev, generator=generator) < cfg.blur
        if hit.any():
            side = max(
                8, int(s * (0.35 + 0.45 * float(torch.rand(1, device=dev, generator=generator))))
            )
            low = F.interpolate(
                x[hit], size=(side, side), mode="bilinear", align_corners=False, antialias=True
            )
            x = x.clone()
            x[hit] = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    if cfg.gamma > 0:
        g = torch.exp(
            (torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 - 1) * cfg.gamma
        )
        x = x.clamp(1e-4, 1.0) ** g
    if cfg.noise > 0:
        sigma = torch.rand(b, 1, 1, 1, device=dev, generator=generator) * cfg.noise
        x = (x + torch.randn(x.shape, device=dev, generator=generator) * sigma).clamp_(0.0, 1.0)
    return x


def _photometric(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None
) -> torch.Tensor:
    b, dev = x.shape[0], x.device
    if cfg.color_jitter > 0:
        c = cfg.color_jitter
        brightness = torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 * c + 1 - c
        contrast = torch.rand(b, 1, 1, 1, device=dev, generator=generator) * 2 * c + 1 - c
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean * brightness).clamp_(0.0, 1.0)
    if cfg.erase > 0:
        s = x.shape[-1]
        hit = torch.rand(b, device=dev, generator=generator) < cfg.erase
        side = (
            torch.rand(b, 2, device=dev, generator=generator) * 0.3 + 0.1
        ) * s  # 10-40 % of the side
        corner = torch.rand(b, 2, device=dev, generator=generator) * (s - side)
        ys = torch.arange(s, device=dev).view(1, s, 1)
        xs = torch.arange(s, device=dev).view(1, 1, s)
        inside = (
            (ys >= corner[:, 0, None, None])
            & (ys < (corner[:, 0] + side[:, 0])[:, None, None])
            & (xs >= corner[:, 1, None, None])
            & (xs < (corner[:, 1] + side[:, 1])[:, None, None])
        )
        x = x.masked_fill((inside & hit[:, None, None]).unsqueeze(1), 0.0)  # (B, 1, S, S) mask
    return x


def prepare_batch(
    images: torch.Tensor,
    *,
    size: int,
    color: str,
    mean,
    std,
    augment: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
    face_norm: str = "none",
) -> torch.Tensor:
    """uint8 (B, H, W, C) on any device -> normalised float (B, 3, size, size) model input.

    With `augment` the batch gets that config's random flip/rotation/zoom/shift and photometric
    changes (training); without, only the resize (validation, evaluation). `face_norm` comes
    after the augmentation, as the engine applies it to whatever the camera delivered.
    """
    x = _to_float_nchw(images, color)
    x = random_affine(x, size, augment, generator) if augment is not None else resize(x, size)
    if augment is not None:
        x = _photometric(_camera(x, augment, generator), augment, generator)
    # grey is replicated to the three channels the encoder expects
    x = normalize(face_normalize(x, face_norm), mean, std)
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
