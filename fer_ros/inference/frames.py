"""Frames handed in by a person (an array, an image file) as the RGB arrays the pipeline takes.

The same limits as the node's message decoders (fer_ros.ros.images): a frame of zero or absurd size
is refused, not allocated; a file goes through fer_ros.imagecheck, as every image file does.
Problems raise FrameError (a FerRosError): one line, exit 2 in the CLI.
"""

import cv2
import numpy as np

from fer_ros import imagecheck
from fer_ros.errors import FrameError
from fer_ros.imagecheck import MAX_SIDE  # the one side limit, for arrays as for encoded images

COLORS = ("rgb", "bgr")


def check_size(width: int, height: int, what: str = "image") -> None:
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise FrameError(
            f"{what} size {width}x{height} is zero or absurd (at most {MAX_SIDE} a side)"
        )


def to_rgb(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from an 8-bit grey, RGB/BGR or RGBA/BGRA array (`color` names
    the order of a colour array's channels)."""
    if color not in COLORS:
        raise FrameError(f"color must be one of {', '.join(COLORS)}, not {color!r}")
    if not isinstance(image, np.ndarray):
        raise FrameError(f"expected a numpy array or an image path, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(
            f"expected 8-bit pixels (uint8), not {image.dtype}: scale and convert first"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise FrameError(
            f"expected an (H, W), (H, W, 3) or (H, W, 4) image, not shape {image.shape}"
        )
    check_size(image.shape[1], image.shape[0])
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if color == "bgr" else cv2.COLOR_RGBA2RGB)
    if color == "bgr":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def read_image(path) -> np.ndarray:
    """An image file as RGB, through the checks every decoder of fer_ros applies
    (fer_ros.imagecheck): a regular JPEG or PNG file whose header's size is within the pixel
    budget, checked before a pixel is decoded."""
    return cv2.cvtColor(imagecheck.read_image(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
